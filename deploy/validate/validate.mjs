// Validates the objects `thaw deploy render` wrote against the engines' real
// schemas, offline: Knative Services with @kubernetes-models/knative; KServe's
// ServingRuntime and InferenceService (no schema package exists for KServe)
// through the Kubernetes types they embed, with kubernetes-models: each
// container, its resources and probes, inside a Pod; a CloudFormation
// template's resources against CloudFormation's resource schemas as
// @aws-cdk/aws-service-spec ships them (types, required and unknown
// properties, allowed values; intrinsic functions taken as any value). Then
// thaw's checks of meaning the schemas cannot express (apiVersion/kind pairs,
// names, numbers in range, annotations Knative reads as numbers or
// durations, Lambda's limits, Ref and GetAtt targets).
//   node deploy/validate/validate.mjs DIR...   (exit 1 naming each problem)
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { Service } from "@kubernetes-models/knative/serving.knative.dev/v1/Service";
import { Pod } from "kubernetes-models/v1/Pod";

const problems = [];
let checked = 0;

function schema(file, make) {
  try {
    make().validate();
  } catch (e) {
    problems.push(`${file}: schema: ${e.message}`);
  }
}

function expect(file, ok, what) {
  if (!ok) problems.push(`${file}: ${what}`);
}

const dnsLabel = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const duration = /^[0-9]+(\.[0-9]+)?(s|m|h)$/;

function checkAutoscaling(file, annotations) {
  const a = (k) => annotations[`autoscaling.knative.dev/${k}`];
  expect(file, a("metric") === "concurrency", "autoscaling metric is not concurrency");
  for (const k of ["min-scale", "max-scale", "target"]) {
    if (a(k) === undefined) continue;
    expect(file, /^[0-9]+(\.[0-9]+)?$/.test(a(k)), `${k} '${a(k)}' is not a number`);
  }
  if (a("min-scale") !== undefined && a("max-scale") !== undefined)
    expect(file, Number(a("min-scale")) <= Number(a("max-scale")), "min-scale > max-scale");
  const window = a("window");
  expect(file, duration.test(window ?? ""), `window '${window}' is not a duration`);
  const seconds = parseFloat(window) * { s: 1, m: 60, h: 3600 }[window.slice(-1)];
  expect(file, seconds >= 6 && seconds <= 3600, `window ${window} is outside 6s..1h`);
  expect(file, duration.test(a("scale-to-zero-pod-retention-period") ?? ""), "retention period is not a duration");
  const panic = Number(a("panic-window-percentage"));
  expect(file, panic >= 1 && panic <= 100, `panic-window-percentage ${panic} is outside 1..100`);
}

function checkContainer(file, c, port) {
  expect(file, typeof c.image === "string" && c.image.length > 0, "container without an image");
  const mem = c.resources?.limits?.memory;
  expect(file, mem === c.resources?.requests?.memory, "memory request != limit");
  for (const probe of [c.readinessProbe, c.livenessProbe])
    expect(file, probe?.httpGet?.port === port, "a probe not on the container's port");
  expect(file, c.securityContext?.runAsNonRoot === true, "not runAsNonRoot");
}

function checkKnative(file, o) {
  schema(file, () => new Service(o));
  expect(file, dnsLabel.test(o.metadata?.name ?? ""), `name '${o.metadata?.name}' is not a DNS-1123 label`);
  const t = o.spec.template;
  checkAutoscaling(file, t.metadata.annotations);
  const s = t.spec;
  expect(file, Number.isInteger(s.containerConcurrency) && s.containerConcurrency >= 1, "containerConcurrency < 1");
  expect(file, s.timeoutSeconds >= 1 && s.timeoutSeconds <= 600, `timeoutSeconds ${s.timeoutSeconds} outside 1..600`);
  expect(file, s.containers.length === 1, "Knative takes one serving container");
  const c = s.containers[0];
  checkContainer(file, c, c.ports?.[0]?.containerPort);
  const i = c.args.indexOf("--models");
  expect(file, i >= 0 && c.args[i + 1] === o.metadata.name, "the pod does not serve its model alone (--models)");
}

function checkServingRuntime(file, o) {
  expect(file, o.apiVersion === "serving.kserve.io/v1alpha1", `apiVersion ${o.apiVersion}`);
  const s = o.spec;
  if (s.multiModel) return checkModelMeshRuntime(file, o);
  expect(file, s.protocolVersions?.includes("v2"), "protocolVersions without v2");
  expect(file, (s.supportedModelFormats ?? []).every((f) => typeof f.name === "string"), "a model format without a name");
  expect(file, s.containers?.[0]?.name === "kserve-container", "the serving container is not kserve-container");
  schema(file, () => new Pod({ metadata: { name: o.metadata.name }, spec: { containers: s.containers } }));
  const c = s.containers[0];
  checkContainer(file, { ...c, resources: { limits: {}, requests: {} } }, c.ports?.[0]?.containerPort);
  const repo = c.args.indexOf("--repo");
  expect(file, repo >= 0 && c.args[repo + 1] === "/mnt/models", "the runtime does not serve /mnt/models");
  return new Set((s.supportedModelFormats ?? []).map((f) => f.name));
}

// ModelMesh: one container serving the model-runtime API and inference on the endpoints it names.
function checkModelMeshRuntime(file, o) {
  const s = o.spec;
  schema(file, () => new Pod({ metadata: { name: o.metadata.name }, spec: { containers: s.containers } }));
  const port = (endpoint) => Number(/^port:([0-9]+)$/.exec(endpoint ?? "")?.[1]);
  const c = s.containers?.[0] ?? { args: [] };
  expect(file, port(s.grpcEndpoint) > 0 && port(s.grpcDataEndpoint) > 0, "grpcEndpoint/grpcDataEndpoint not port:N");
  const grpc = c.args.indexOf("--grpc-port");
  expect(file, grpc >= 0 && Number(c.args[grpc + 1]) === port(s.grpcEndpoint), "thaw's --grpc-port is not grpcEndpoint");
  const mesh = c.args.indexOf("--modelmesh");
  expect(file, mesh >= 0 && c.args[mesh + 1] === "on", "thaw runs without --modelmesh on");
  expect(file, s.protocolVersions?.includes("grpc-v2"), "protocolVersions without grpc-v2");
  return new Set((s.supportedModelFormats ?? []).map((f) => f.name));
}

function checkInferenceService(file, o, formats) {
  expect(file, o.apiVersion === "serving.kserve.io/v1beta1", `apiVersion ${o.apiVersion}`);
  expect(file, dnsLabel.test(o.metadata?.name ?? ""), `name '${o.metadata?.name}' is not a DNS-1123 label`);
  if (o.metadata?.annotations?.["serving.kserve.io/deploymentMode"] === "ModelMesh") {
    const m = o.spec.predictor.model;
    expect(file, formats?.has(m.modelFormat?.name), `model format '${m.modelFormat?.name}' is not the runtime's`);
    expect(file, /^[a-z0-9]+:\/\//.test(m.storageUri ?? ""), `storageUri '${m.storageUri}' is not a URI`);
    return;
  }
  checkAutoscaling(file, o.metadata.annotations);
  const p = o.spec.predictor;
  for (const k of ["minReplicas", "scaleTarget", "containerConcurrency", "timeout"])
    expect(file, Number.isInteger(p[k]) && p[k] >= 0, `predictor.${k} '${p[k]}' is not an integer >= 0`);
  if (p.maxReplicas !== undefined) expect(file, p.minReplicas <= p.maxReplicas, "minReplicas > maxReplicas");
  expect(file, p.scaleMetric === "concurrency", `scaleMetric ${p.scaleMetric}`);
  const m = p.model;
  expect(file, m.protocolVersion === "v2", "protocolVersion is not v2");
  expect(file, m.runtime === "thaw", "runtime is not thaw");
  expect(file, formats?.has(m.modelFormat?.name), `model format '${m.modelFormat?.name}' is not the runtime's`);
  expect(file, /^[a-z0-9]+:\/\//.test(m.storageUri ?? ""), `storageUri '${m.storageUri}' is not a URI`);
  // The model spec embeds a container's fields (resources, args): valid as one.
  schema(file, () => new Pod({ metadata: { name: o.metadata.name },
                               spec: { containers: [{ name: "kserve-container", image: "x", args: m.args,
                                                      resources: m.resources }] } }));
}


// CloudFormation: the resource schemas, loaded once when a template is seen.
let cfnSpec;
function cfnSchemas() {
  if (cfnSpec) return cfnSpec;
  const require = createRequire(import.meta.url);
  const file = join(dirname(require.resolve("@aws-cdk/aws-service-spec/package.json")), "db.json.gz");
  const db = JSON.parse(gunzipSync(readFileSync(file)));
  const resources = new Map(Object.values(db.schema.resource.entities).map((r) => [r.cloudFormationType, r]));
  const types = new Map(Object.values(db.schema.typeDefinition.entities).map((t) => [t.$id, t]));
  return (cfnSpec = { resources, types });
}

const isIntrinsic = (v) => v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1 &&
  (Object.keys(v)[0] === "Ref" || Object.keys(v)[0].startsWith("Fn::"));

function checkCfnValue(file, where, type, value) {
  if (isIntrinsic(value)) return;
  const { types } = cfnSchemas();
  const bad = (what) => problems.push(`${file}: schema: ${where} ${what}`);
  switch (type.type) {
    case "string":
      if (typeof value !== "string") return bad("must be a string");
      if (type.allowedValues && !type.allowedValues.includes(value)) bad(`must be one of ${type.allowedValues}`);
      return;
    case "integer":
      return Number.isInteger(value) ? undefined : bad("must be an integer");
    case "number":
      return typeof value === "number" ? undefined : bad("must be a number");
    case "boolean":
      return typeof value === "boolean" ? undefined : bad("must be a boolean");
    case "array":
      if (!Array.isArray(value)) return bad("must be an array");
      return value.forEach((v, i) => checkCfnValue(file, `${where}[${i}]`, type.element, v));
    case "map":
      if (typeof value !== "object" || Array.isArray(value)) return bad("must be an object");
      return Object.entries(value).forEach(([k, v]) => checkCfnValue(file, `${where}.${k}`, type.element, v));
    case "tag":
      return typeof value?.Key === "string" && typeof value?.Value === "string" ? undefined : bad("must be a tag");
    case "ref":
      return checkCfnProperties(file, where, types.get(type.reference.$ref).properties, value);
    default:  // json, date-time, unions: not checked further
      return;
  }
}

function checkCfnProperties(file, where, schema, value) {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return problems.push(`${file}: schema: ${where} must be an object`);
  for (const [name, p] of Object.entries(schema))
    if (p.required && !(name in value)) problems.push(`${file}: schema: ${where} lacks required ${name}`);
  for (const [name, v] of Object.entries(value)) {
    if (!(name in schema)) problems.push(`${file}: schema: ${where} has no property ${name}`);
    else checkCfnValue(file, `${where}.${name}`, schema[name].type, v);
  }
}

function checkCloudFormation(file, t) {
  const { resources } = cfnSchemas();
  const names = new Set([...Object.keys(t.Parameters ?? {}), ...Object.keys(t.Resources ?? {})]);
  const refs = [];
  const walk = (v) => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (v && typeof v === "object") {
      if ("Ref" in v) refs.push(v.Ref);
      if ("Fn::GetAtt" in v) refs.push(v["Fn::GetAtt"][0]);
      Object.values(v).forEach(walk);
    }
  };
  for (const [id, r] of Object.entries(t.Resources ?? {})) {
    checked++;
    expect(file, /^[A-Za-z0-9]+$/.test(id), `logical id ${id} is not alphanumeric`);
    const schema = resources.get(r.Type);
    if (!schema) {
      problems.push(`${file}: schema: ${id}: no resource type ${r.Type}`);
      continue;
    }
    checkCfnProperties(file, `${id}.Properties`, schema.properties, r.Properties ?? {});
    walk(r.Properties);
    const p = r.Properties ?? {};
    if (r.Type === "AWS::Lambda::Function") {
      expect(file, p.MemorySize >= 128 && p.MemorySize <= 10240, `${id}: MemorySize ${p.MemorySize} outside 128..10240`);
      expect(file, p.Timeout >= 1 && p.Timeout <= 900, `${id}: Timeout ${p.Timeout} outside 1..900`);
      expect(file, p.ReservedConcurrentExecutions >= 1, `${id}: ReservedConcurrentExecutions < 1`);
      const alias = Object.values(t.Resources).find((a) => a.Type === "AWS::Lambda::Alias" &&
                                                          a.Properties.FunctionName?.Ref === id);
      const provisioned = alias?.Properties.ProvisionedConcurrencyConfig?.ProvisionedConcurrentExecutions ?? 0;
      expect(file, provisioned <= p.ReservedConcurrentExecutions, `${id}: provisioned over reserved concurrency`);
    }
  }
  for (const ref of refs) expect(file, names.has(ref), `Ref/GetAtt to ${ref}, which the template does not define`);
}

for (const dir of process.argv.slice(2)) {
  const files = readdirSync(dir).filter((f) => f.endsWith(".json")).sort();
  const objects = files.map((f) => [join(dir, f), JSON.parse(readFileSync(join(dir, f), "utf8"))]);
  const runtime = objects.find(([, o]) => o.kind === "ServingRuntime");
  const formats = runtime ? checkServingRuntime(...runtime) : undefined;
  for (const [file, o] of objects) {
    if (o.AWSTemplateFormatVersion) {
      checkCloudFormation(file, o);
      continue;
    }
    checked++;
    if (o.kind === "Service" && o.apiVersion === "serving.knative.dev/v1") checkKnative(file, o);
    else if (o.kind === "InferenceService") checkInferenceService(file, o, formats);
    else if (o.kind !== "ServingRuntime") problems.push(`${file}: unexpected ${o.apiVersion} ${o.kind}`);
  }
}
for (const p of problems) console.error(p);
console.log(`validate: ${checked} objects, ${problems.length} problems`);
process.exit(problems.length || checked === 0 ? 1 : 0);
