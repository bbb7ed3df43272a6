// Plays AWS Lambda for tests/e2e/test_lambda.py with @vercel/fun: creates a
// `provided`-runtime function from a directory (its `bootstrap` runs
// `thaw lambda`), invokes it with each payload of a JSON list, and prints
// one JSON line per invocation: {StatusCode, FunctionError, Payload, ms}.
//   node invoke.mjs SPEC.json   SPEC: {directory, handler, memory_mb, env, payloads: [...]}
import { readFileSync } from "node:fs";
import { createFunction } from "@vercel/fun";

const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
const fn = await createFunction({
  Code: { Directory: spec.directory },
  Handler: spec.handler,
  Runtime: "provided",
  MemorySize: spec.memory_mb,
  Environment: { Variables: spec.env ?? {} },
});
try {
  for (const payload of spec.payloads) {
    const t0 = process.hrtime.bigint();
    const result = await fn.invoke({ Payload: JSON.stringify(payload) });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    console.log(JSON.stringify({ StatusCode: result.StatusCode, FunctionError: result.FunctionError ?? null,
                                 Payload: String(result.Payload), ms }));
  }
} finally {
  await fn.destroy();
}
