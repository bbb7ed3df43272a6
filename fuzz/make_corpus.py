#!/usr/bin/python3
"""Writes the committed seed corpora in fuzz/corpus/<target>/ from the example
requests and configs and from cases in the unit tests; the IPC seeds come from
the real encoders (make_ipc_corpus, built by scripts/fuzz). Run again after
changing a format: `fuzz/make_corpus.py` (then scripts/fuzz --make-ipc-corpus)."""
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")


def example(*parts):
    with open(os.path.join(ROOT, "examples", *parts), "rb") as f:
        return f.read()


def bytes_elements(*values):
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


def binary_request(inputs, outputs=None):
    """(header, body) for the binary tensor extension: inputs are (name, datatype, shape, data bytes)."""
    doc = {"inputs": [{"name": n, "datatype": t, "shape": s, "parameters": {"binary_data_size": len(d)}}
                      for n, t, s, d in inputs]}
    if outputs is not None:
        doc["outputs"] = outputs
    head = json.dumps(doc, separators=(",", ":")).encode()
    return head, head + b"".join(d for _, _, _, d in inputs)


def http(method, target, body=b"", headers=()):
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"] + list(headers)
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def main():
    seeds = {t: {} for t in ["http_request", "infer_request", "bytes_tensor", "model_config", "usage_record",
                             "profile", "tokenizer"]}
    fraud = example("requests", "fraud.json").strip()
    textenc = example("requests", "textenc.json").strip()
    fashion = example("requests", "fashion.json").strip()
    fp32_head, fp32_body = binary_request([("features", "FP32", [1, 30], struct.pack("<30f", *range(30)))],
                                          outputs=[{"name": "probability", "parameters": {"binary_data": True}}])
    bytes_head, bytes_body = binary_request([("text", "BYTES", [2], bytes_elements(b"hello", b"\xc3\xa9t\xc3\xa9")),
                                             ("x", "FP16", [2], struct.pack("<2e", 1.5, -2.0))])

    s = seeds["infer_request"]
    for name, body in [("fraud", fraud), ("textenc", textenc), ("fashion", fashion)]:
        s[name] = b"\0" + body
    s["nested"] = b"\0" + b'{"id":"n","inputs":[{"name":"x","shape":[2,2],"datatype":"INT32","data":[[1,2],[3,4]]}],' \
                          b'"outputs":[{"name":"y"}],"parameters":{"timeout_ms":100,"binary_data_output":true}}'
    s["types"] = b"\0" + json.dumps({"inputs": [
        {"name": "b", "shape": [2], "datatype": "BOOL", "data": [True, False]},
        {"name": "h", "shape": [1], "datatype": "FP16", "data": [0.5]},
        {"name": "d", "shape": [1], "datatype": "FP64", "data": [1e300]},
        {"name": "u", "shape": [1], "datatype": "UINT64", "data": [18446744073709551615]},
        {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["a", "\u00e9\\\""]}]}).encode()
    s["binary_fp32"] = b"\1" + struct.pack("<I", len(fp32_head)) + fp32_body
    s["binary_bytes"] = b"\1" + struct.pack("<I", len(bytes_head)) + bytes_body

    s = seeds["http_request"]
    s["infer_json"] = b"\0" + http("POST", "/v2/models/fraud/infer", textenc, ["Content-Type: application/json"])
    s["infer_binary"] = b"\0" + http("POST", "/v2/models/fraud/infer", fp32_body,
                                     [f"Inference-Header-Content-Length: {len(fp32_head)}",
                                      "Content-Type: application/octet-stream"])
    s["pipelined"] = b"\0" + http("GET", "/v2/health/ready") + http("HEAD", "/v2/models/fraud") + \
        http("PUT", "/v2/models/fraud/config", b'{"max_concurrency":2}') + \
        http("POST", "/v2/repository/index", headers=["Connection: close"])
    s["small_reads"] = b"\3" + http("POST", "/v2/models/textenc/infer", textenc, ["Expect: 100-continue"])
    s["chunked"] = b"\0" + (b"POST /v2/models/fraud/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"5\r\n{\"inp\r\n3;ext=1\r\nuts\r\n0\r\nTrailer: t\r\n\r\n")
    s["http10"] = b"\0" + b"GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /v2 HTTP/1.0\r\n\r\n"
    s["bad_header_length"] = b"\0" + http("POST", "/v2/models/fraud/infer", b"{}",
                                          ["Inference-Header-Content-Length: -1"])

    s = seeds["bytes_tensor"]
    s["two_by_two"] = bytes([2, 2, 0x1b]) + bytes_elements(b"a", b"", b"\xff\xfe", b"\xe2\x82\xac")
    s["whole_elements"] = bytes([0x80, 0, 0x06]) + bytes_elements(b"hello", b"w\x00rld", b"\"\\\n") + b"\x07\0"
    s["empty"] = bytes([0, 0, 0])

    s = seeds["model_config"]
    for m in ["fraud", "fashion", "textenc", "large"]:
        s[m] = example("models", m, "config.json")
    s["batching_fixed"] = json.dumps({
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
        "batching": "fixed", "max_batch_size": 16, "max_queue_delay_us": 2500, "preferred_batch_sizes": [4, 16],
        "start_path": "zygote", "template_standby": False, "keep_alive_policy": "histogram",
        "histogram_bin_ms": 1000, "histogram_range_s": 60, "target_concurrency": 1.5,
        "provisioned_schedule": [{"days": ["mon", "fri"], "start": "08:00", "end": "18:00", "min_instances": 1}]},
        indent=1).encode()
    s["put_settings"] = b'{"max_concurrency": 5, "keep_alive_policy": "histogram", "batching": "adaptive", ' \
                        b'"slo_p99_ms": 20, "timeout_ms": 100}'
    s["put_model_field"] = b'{"inputs": []}'

    s = seeds["usage_record"]
    s["invocation"] = (b'{"kind":"invocation","model":"fraud","request_id":7,"instance_id":2,'
                       b'"arrival_wall_us":1795896000000000,"latency_us":2950,"queue_us":120,"batch_wait_us":300,'
                       b'"compute_us":2400,"http_status":200,"memory_mb":1024,"batch_rows":4,"batch_requests":4,'
                       b'"share":0.25,"cold_start":false,"init_us":0,"provisioned":false,"start_path":"template"}')
    s["instance"] = (b'{"kind":"instance","model":"we\\"ird\\\\name\\n","instance_id":2,"start_path":"template",'
                     b'"memory_mb":1024,"start_wall_us":1000,"stop_wall_us":5000,"init_us":100,"busy_us":2000,'
                     b'"idle_us":1900,"provisioned":false,"stop_reason":"keep_alive"}')
    s["provisioned"] = (b'{"kind":"provisioned","model":"fashion","memory_mb":2048,"instances":3,'
                        b'"start_wall_us":1000,"end_wall_us":2000}')
    s["held"] = (b'{"kind":"held","model":"fraud","held_kind":"template","memory_mb":1024,'
                 b'"start_wall_us":1000,"end_wall_us":2000}')
    s["held_zygote"] = (b'{"kind":"held","model":"","held_kind":"zygote","memory_mb":256,'
                        b'"start_wall_us":1000,"end_wall_us":2000}')
    s["minimal"] = b'{"kind":"invocation","model":"m","http_status":429}'

    s = seeds["profile"]
    s["full"] = json.dumps({
        "model": "fraud", "measured": "2026-11-28T21:50:00Z",
        "exec_us_by_rows": {"1": 180, "16": 230, "4": 190}, "exec_us_by_threads": {"2": {"1": 150, "4": 160}},
        "exec_cv": 0.12, "start_us": {"exec": 471500, "zygote": 65000, "template": 1200},
        "memory_kb": {"rss": 72540, "pss": 17171, "private": 508}}, indent=1).encode()
    s["spread"] = json.dumps({"exec_us_by_rows": {"1": 100},
                              "exec_spread": [round(0.8 + i / 500, 3) for i in range(1001)]}).encode()
    s["minimal"] = b'{"exec_us_by_rows": {"1": 100}}'

    # tokenizer: byte 0 is max_tokens - 1 (low 4 bits) and "use [CLS]" (high bit); the rest is the text.
    s = seeds["tokenizer"]
    s["ascii"] = b"\x85GNU/Linux C++ lib64, x86_64!"
    s["utf8"] = b"\x83" + "Kelvin 5\u212a \u0130stanbul fa\u00e7ade ".encode() + b"\xff\xfe"
    s["bytes_tensor"] = b"\x8f" + bytes_elements(b"ab", b"x86", b"")

    for target, files in seeds.items():
        directory = os.path.join(CORPUS, target)
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
        for name, data in files.items():
            with open(os.path.join(directory, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
