"""End-to-end test of thaw as a KServe ModelMesh serving runtime (`thaw serve --grpc-port N --modelmesh on`): a gRPC
client plays ModelMesh's calls in order against mmesh.ModelRuntime (src/grpc/model_runtime.proto) and
inference.GRPCInferenceService on the same port: runtimeStatus (capacity, the forwarded methods), then
predictModelSize / loadModel / ModelInfer as an LRU cache over that capacity, unloading the least recently used model
when the reported sizes pass it (memory pressure); an unloaded model is NOT_FOUND and loads again; bad paths and
models that cannot load are errors that leave nothing loaded; a second runtimeStatus purges what the mesh loaded.

Run: /usr/bin/python3 tests/e2e/test_modelmesh.py"""
import collections
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import EXAMPLE_MODELS, THAW, check, check_outputs, finish, free_port, grpc_stubs, load, stop_server  # noqa: E402,E501

TMP = tempfile.mkdtemp(prefix="thaw_e2e_modelmesh_")
PORT, GRPC_PORT = free_port(), free_port()
CAPACITY_MB = 4000
grpc, pb, services = grpc_stubs(os.path.join(TMP, "stubs"))
mm = importlib.import_module("model_runtime_pb2")
mm_services = importlib.import_module("model_runtime_pb2_grpc")
state = {}


class Mesh:
    """What ModelMesh does with one runtime pod: an LRU cache of models over the runtime's capacity."""

    def __init__(self, channel):
        self.runtime = mm_services.ModelRuntimeStub(channel)
        self.infer_stub = services.GRPCInferenceServiceStub(channel)
        self.loaded = collections.OrderedDict()  # model id -> size in bytes, least recently used first
        self.unloads = []

    def start(self):
        status = self.runtime.runtimeStatus(mm.RuntimeStatusRequest(), timeout=30)
        self.capacity = status.capacityInBytes
        return status

    def ensure(self, model_id, path):
        if model_id in self.loaded:
            self.loaded.move_to_end(model_id)
            return
        predicted = self.runtime.predictModelSize(mm.PredictModelSizeRequest(modelId=model_id, modelPath=path),
                                                  timeout=10).sizeInBytes
        while self.loaded and sum(self.loaded.values()) + predicted > self.capacity:
            self.evict()
        size = self.runtime.loadModel(mm.LoadModelRequest(modelId=model_id, modelType="pytorch", modelPath=path),
                                      timeout=120).sizeInBytes
        assert size > 0, f"{model_id}: loadModel reported size 0"
        self.loaded[model_id] = size
        while sum(self.loaded.values()) > self.capacity and len(self.loaded) > 1:
            self.evict()

    def evict(self):
        victim, _ = self.loaded.popitem(last=False)
        self.runtime.unloadModel(mm.UnloadModelRequest(modelId=victim), timeout=60)
        self.unloads.append(victim)

    def infer(self, model_id, base):
        """ModelInfer as ModelMesh forwards it: the model id injected at field 1 (model_name)."""
        (tensor,) = load("requests", base)["inputs"]
        request = pb.ModelInferRequest(model_name=model_id)
        t = request.inputs.add()
        t.name, t.datatype = tensor["name"], tensor["datatype"]
        t.shape.extend(tensor["shape"])
        if tensor["datatype"] == "FP32":
            t.contents.fp32_contents.extend(tensor["data"])
        else:
            t.contents.int64_contents.extend(tensor["data"])
        response = self.infer_stub.ModelInfer(request, timeout=60)
        outputs = []
        for i, o in enumerate(response.outputs):
            data = list(o.contents.fp32_contents)
            if not data and response.raw_output_contents:
                data = list(memoryview(response.raw_output_contents[i]).cast("f"))
            outputs.append({"name": o.name, "datatype": o.datatype, "shape": list(o.shape), "data": data})
        check_outputs(base, outputs)


def start_server():
    empty = os.path.join(TMP, "empty-repo")
    os.makedirs(empty)
    log = open(os.path.join(TMP, "serve.log"), "w")
    server = subprocess.Popen([THAW, "serve", "--repo", empty, "--port", str(PORT), "--grpc-port", str(GRPC_PORT),
                               "--modelmesh", "on", "--memory-mb", str(CAPACITY_MB), "--memory-charge", "configured",
                               "--usage-log", ""], stdout=log, stderr=subprocess.STDOUT, cwd=TMP)
    deadline = time.time() + 60
    while True:
        run = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                              f"http://127.0.0.1:{PORT}/v2/health/ready"], capture_output=True, text=True)
        if run.stdout == "200":
            break
        assert time.time() < deadline and server.poll() is None, open(os.path.join(TMP, "serve.log")).read()
        time.sleep(0.2)
    state["server"], state["log"] = server, log
    state["channel"] = grpc.insecure_channel(f"127.0.0.1:{GRPC_PORT}")
    state["mesh"] = Mesh(state["channel"])


def runtime_status():
    status = state["mesh"].start()
    assert status.status == mm.RuntimeStatusResponse.READY, status
    assert status.capacityInBytes == CAPACITY_MB << 20, status.capacityInBytes
    assert list(status.methodInfos["inference.GRPCInferenceService/ModelInfer"].idInjectionPath) == [1], status
    assert status.modelLoadingTimeoutMs > 0 and status.defaultModelSizeInBytes > 0 and status.runtimeVersion


def load_infer_unload_under_pressure():
    mesh = state["mesh"]
    path = lambda m: os.path.join(EXAMPLE_MODELS, m)  # noqa: E731
    sequence = ["fraud", "fraud-xgb", "fashion", "fraud", "textenc", "fashion-onnx", "fraud-xgb", "fashion"]
    for base in sequence:
        model_id = f"{base}__isvc-1"
        mesh.ensure(model_id, path(base))
        mesh.infer(model_id, base)
        size = mesh.runtime.modelSize(mm.ModelSizeRequest(modelId=model_id), timeout=10).sizeInBytes
        assert size == mesh.loaded[model_id], (size, mesh.loaded[model_id])
    assert mesh.unloads, f"no model was unloaded: capacity {CAPACITY_MB} MB never reached ({dict(mesh.loaded)})"
    for victim in mesh.unloads:
        if victim in mesh.loaded:
            continue
        try:
            mesh.infer(victim, victim.split("__")[0])
            raise AssertionError(f"{victim} answered after unloadModel")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
        break
    print(f"  {len(sequence)} loads over {CAPACITY_MB} MB: unloaded {mesh.unloads}; loaded now "
          f"{ {k: v >> 20 for k, v in mesh.loaded.items()} } MB", flush=True)


def bad_loads_leave_nothing():
    mesh = state["mesh"]
    try:
        mesh.runtime.loadModel(mm.LoadModelRequest(modelId="ghost__1", modelPath=os.path.join(TMP, "nope")), timeout=30)
        raise AssertionError("a missing modelPath loaded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "modelPath" in e.details(), e
    broken = os.path.join(TMP, "broken")
    shutil.copytree(os.path.join(EXAMPLE_MODELS, "fraud"), broken)
    with open(os.path.join(broken, "model.pt"), "wb") as f:
        f.write(b"not a model")
    try:
        mesh.runtime.loadModel(mm.LoadModelRequest(modelId="broken__1", modelPath=broken), timeout=120)
        raise AssertionError("a corrupt model loaded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INTERNAL and "broken__1" in e.details(), e
    for model_id in ("ghost__1", "broken__1"):
        try:
            mesh.runtime.modelSize(mm.ModelSizeRequest(modelId=model_id), timeout=10)
            raise AssertionError(f"{model_id} is loaded after a failed load")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
    mesh.runtime.unloadModel(mm.UnloadModelRequest(modelId="never-loaded"), timeout=10)  # OK, as ModelMesh expects


def runtime_status_purges():
    mesh = state["mesh"]
    loaded = list(mesh.loaded)
    assert loaded
    mesh.start()
    for model_id in loaded:
        try:
            mesh.runtime.modelSize(mm.ModelSizeRequest(modelId=model_id), timeout=10)
            raise AssertionError(f"{model_id} survived runtimeStatus")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e


def main():
    check("thaw serve --modelmesh on with an empty repository: ready", start_server)
    if state.get("mesh"):
        check("runtimeStatus: READY, capacity = --memory-mb, ModelInfer forwarded with the id at field 1", runtime_status)
        check("loadModel / ModelInfer / unloadModel as ModelMesh's LRU under memory pressure; unloaded is NOT_FOUND",
              load_infer_unload_under_pressure)
        check("a missing path or a corrupt model: an error, nothing left loaded; unloading an unknown id is OK",
              bad_loads_leave_nothing)
        check("runtimeStatus again (a restarted mesh) purges what the mesh loaded", runtime_status_purges)
        state["channel"].close()
        stop_server(state["server"], state["log"])
    finish("modelmesh", TMP)


if __name__ == "__main__":
    main()
