"""End-to-end test of `thaw deploy render` and `thaw deploy mappings`: the example repository rendered for Knative,
KServe and AWS Lambda (CloudFormation), every object validated offline against the engines' real schemas
(deploy/validate: npm kubernetes-models, @kubernetes-models/knative and @aws-cdk/aws-service-spec, installed with
`npm ci` from its lock file) plus thaw's semantic checks; the validator
refuses broken objects; docs/deploy.md's mapping tables are what `thaw deploy mappings` prints; bad arguments and values
are clear errors with nothing written; `thaw serve --models` deploys only the named models.

Run: /usr/bin/python3 tests/e2e/test_deploy.py"""
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import EXAMPLE_MODELS, ROOT, THAW, check, finish, free_port, npm_ci, run_thaw  # noqa: E402

TMP = tempfile.mkdtemp(prefix="thaw_e2e_deploy_")
VALIDATE = os.path.join(ROOT, "deploy", "validate")
state = {}


def install_npm_packages():
    npm_ci(VALIDATE, "@aws-cdk/aws-service-spec")
    state["npm"] = True


def validate(*dirs):
    return subprocess.run(["node", os.path.join(VALIDATE, "validate.mjs"), *dirs], capture_output=True, text=True,
                          timeout=120)


def render(target, out, *extra):
    return run_thaw("deploy", "render", "--target", target, "--repo", EXAMPLE_MODELS, "--out", out, *extra, cwd=TMP)


def models():
    return sorted(d for d in os.listdir(EXAMPLE_MODELS) if os.path.exists(os.path.join(EXAMPLE_MODELS, d, "config.json")))


def render_and_validate_all():
    kn, ks, lam = os.path.join(TMP, "knative"), os.path.join(TMP, "kserve"), os.path.join(TMP, "lambda")
    run = render("knative", kn, "--max-scale", "8")
    assert run.returncode == 0, run.stderr
    run = render("kserve", ks, "--storage-uri", "s3://thaw-models/examples")
    assert run.returncode == 0, run.stderr
    assert sorted(os.listdir(kn)) == sorted(m + ".json" for m in models()), os.listdir(kn)
    assert sorted(os.listdir(ks)) == sorted([m + ".json" for m in models()] + ["servingruntime-thaw.json"])
    run = render("lambda", lam)
    assert run.returncode == 0, run.stderr
    assert os.listdir(lam) == ["template.json"], os.listdir(lam)
    template = json.load(open(os.path.join(lam, "template.json")))
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert len(functions) == len(models()), len(functions)
    mesh = os.path.join(TMP, "modelmesh")
    run = render("modelmesh", mesh, "--storage-uri", "s3://thaw-models/examples", "--capacity-mb", "8192")
    assert run.returncode == 0, run.stderr
    runtime = json.load(open(os.path.join(mesh, "servingruntime-thaw-modelmesh.json")))
    assert runtime["spec"]["multiModel"] is True and "8192" in runtime["spec"]["containers"][0]["args"], runtime
    result = validate(kn, ks, lam, mesh)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = 3 * len(models()) + 2 + len(template["Resources"])
    assert f"validate: {expected} objects, 0 problems" in result.stdout, result.stdout
    fraud = json.load(open(os.path.join(kn, "fraud.json")))
    config = json.load(open(os.path.join(EXAMPLE_MODELS, "fraud", "config.json")))
    spec = fraud["spec"]["template"]["spec"]
    assert spec["containerConcurrency"] == config.get("max_concurrency", 4) * config.get("instance_concurrency", 1)
    annotations = fraud["spec"]["template"]["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/scale-to-zero-pod-retention-period"] == \
        f"{config.get('keep_alive_s', 600)}s", annotations
    assert annotations["autoscaling.knative.dev/max-scale"] == "8"
    state["dirs"] = (kn, ks, lam)


def validator_refuses_broken_objects():
    kn, ks, lam = state["dirs"]
    broken = os.path.join(TMP, "broken")
    os.makedirs(broken)
    service = json.load(open(os.path.join(kn, "fraud.json")))
    cases = []
    s = copy.deepcopy(service)
    s["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] = 3  # a number, not a string
    cases.append(("numeric-annotation", s, "min-scale must be string"))
    s = copy.deepcopy(service)
    s["spec"]["template"]["spec"]["containerConcurrency"] = "two"
    cases.append(("concurrency-text", s, "containerConcurrency must be integer"))
    s = copy.deepcopy(service)
    s["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/window"] = "2s"
    cases.append(("short-window", s, "outside 6s..1h"))
    isvc = json.load(open(os.path.join(ks, "fraud.json")))
    i = copy.deepcopy(isvc)
    i["spec"]["predictor"]["model"]["resources"]["limits"]["memory"] = ["1Gi"]
    cases.append(("isvc-memory-list", i, "memory"))
    template = json.load(open(os.path.join(lam, "template.json")))
    t = copy.deepcopy(template)
    t["Resources"]["FraudFunction"]["Properties"]["MemorySize"] = "512"
    cases.append(("cfn-memory-text", t, "FraudFunction.Properties.MemorySize must be an integer"))
    t = copy.deepcopy(template)
    t["Resources"]["FraudFunction"]["Properties"]["Concurrency"] = 2
    cases.append(("cfn-unknown-property", t, "FraudFunction.Properties has no property Concurrency"))
    t = copy.deepcopy(template)
    t["Resources"]["FraudFunction"]["Properties"]["Timeout"] = 1200
    cases.append(("cfn-timeout", t, "Timeout 1200 outside 1..900"))
    for name, obj, _ in cases:
        d = os.path.join(broken, name)
        os.makedirs(d)
        json.dump(obj, open(os.path.join(d, "template.json" if name.startswith("cfn") else "fraud.json"), "w"))
        if name.startswith("isvc"):
            json.dump(json.load(open(os.path.join(ks, "servingruntime-thaw.json"))),
                      open(os.path.join(d, "servingruntime-thaw.json"), "w"))
    for name, _, expected in cases:
        result = validate(os.path.join(broken, name))
        assert result.returncode == 1, f"{name}: the validator accepted it\n{result.stdout}"
        assert expected in result.stderr, f"{name}: expected '{expected}' in\n{result.stderr}"


def deploy_doc_tables_are_the_mappings():
    readme = open(os.path.join(ROOT, "docs", "deploy.md")).read()
    for target in ("knative", "kserve", "lambda", "modelmesh"):
        run = run_thaw("deploy", "mappings", "--target", target, cwd=TMP)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() in readme, f"docs/deploy.md lacks the {target} table `thaw deploy mappings` prints"
        rows = [line for line in run.stdout.splitlines() if line.startswith("| `")]
        assert len(rows) == 29, f"{target}: {len(rows)} settings"


def clear_errors_and_nothing_written():
    cases = [
        (["deploy", "render", "--out", "x"], 2, "needs --target knative, kserve, lambda or modelmesh"),
        (["deploy", "render", "--target", "openwhisk", "--out", "x"], 2, "--target: bad value 'openwhisk'"),
        (["deploy", "publish", "--target", "knative"], 2, "unknown action 'publish'"),
        (["deploy", "render", "--target", "kserve", "--out", "x", "--repo", EXAMPLE_MODELS], 1, "needs a storage URI"),
        (["deploy", "render", "--target", "knative", "--out", "x", "--repo", EXAMPLE_MODELS, "--models", "nope"], 1,
         "no model 'nope'"),
        (["deploy", "render", "--target", "knative", "--out", "x", "--namespace", "Bad_NS"], 2, "namespace"),
    ]
    for args, code, message in cases:
        run = run_thaw(*args, cwd=TMP)
        assert run.returncode == code, f"{args}: exit {run.returncode}, expected {code}\n{run.stderr}"
        assert message in run.stderr, f"{args}: '{message}' not in '{run.stderr.strip()}'"
    assert not os.path.exists(os.path.join(TMP, "x")), "a refused render wrote files"
    # A value Knative cannot take: the model and field named, nothing written.
    repo = os.path.join(TMP, "repo")
    shutil.copytree(os.path.join(EXAMPLE_MODELS, "fraud"), os.path.join(repo, "slow"))
    config = json.load(open(os.path.join(repo, "slow", "config.json")))
    config["timeout_ms"] = 900000
    json.dump(config, open(os.path.join(repo, "slow", "config.json"), "w"))
    run = run_thaw("deploy", "render", "--target", "knative", "--repo", repo, "--out", os.path.join(TMP, "y"), cwd=TMP)
    assert run.returncode == 1 and "model 'slow': timeout_ms: 900000 ms is over" in run.stderr, run.stderr
    assert not os.path.exists(os.path.join(TMP, "y"))


def serve_models_deploys_only_those():
    port = free_port()
    log = open(os.path.join(TMP, "serve.log"), "w")
    server = subprocess.Popen([THAW, "serve", "--repo", EXAMPLE_MODELS, "--models", "fraud,fashion", "--port", str(port),
                               "--usage-log", ""], stdout=log, stderr=subprocess.STDOUT, cwd=TMP)
    try:
        def get(path):
            run = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}{path}"],
                                 capture_output=True, text=True, timeout=30)
            return int(run.stdout or 0)
        deadline = time.time() + 60
        while get("/v2/health/live") != 200:
            assert time.time() < deadline and server.poll() is None, open(os.path.join(TMP, "serve.log")).read()
            time.sleep(0.2)
        assert get("/v2/models/fraud") == 200 and get("/v2/models/fashion") == 200
        assert get("/v2/models/textenc") == 404, "a model not named by --models was deployed"
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    run = run_thaw("serve", "--repo", EXAMPLE_MODELS, "--models", "fraud,nope", "--port", "0", cwd=TMP, timeout=30)
    assert run.returncode == 2 and "--models: no model 'nope'" in run.stderr, run.stderr


def main():
    check("npm ci: kubernetes-models, @kubernetes-models/knative, @aws-cdk/aws-service-spec (deploy/validate)",
          install_npm_packages)
    if state.get("npm"):
        check("render knative, kserve, lambda and modelmesh for every example model; all objects validate",
              render_and_validate_all)
    if state.get("dirs"):
        check("the validator refuses broken objects (schema and meaning)", validator_refuses_broken_objects)
    check("docs/deploy.md's mapping tables are `thaw deploy mappings`, every setting listed", deploy_doc_tables_are_the_mappings)
    check("bad arguments and values: clear errors, exit 2 / 1, nothing written", clear_errors_and_nothing_written)
    check("thaw serve --models deploys only the named models; an unknown name is an error",
          serve_models_deploys_only_those)
    finish("deploy", TMP)


if __name__ == "__main__":
    main()
