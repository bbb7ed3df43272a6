#!/usr/bin/python3
"""Train the example models on real data and export them as TorchScript.

    /usr/bin/python3 models/build_models.py [--only fraud|fraud-xgb|fashion|fashion-onnx|textenc|textcls] [--out examples]

For each model it writes <out>/models/<name>/{model.pt,config.json,accuracy.json}
(plus labels.txt, and vocab.txt for textenc), a KServe v2 sample request
<out>/requests/<name>.json and the expected outputs <out>/references/<name>.json.
The saved models are scripted but not frozen: the server's backend freezes them
and runs optimize_for_inference itself, and the references are computed the
same way from the saved file.

Data:
  fraud    sklearn's bundled breast-cancer Wisconsin data (Debian packages no
           credit-card fraud data set; this stands in as a tabular risk task).
  fraud-xgb  the same data and split as fraud, gradient-boosted trees
           (Debian python3-xgboost 1.7, saved as UBJSON for the xgboost
           backend); its reference is XGBoost's own prediction in Python.
  fashion  Fashion-MNIST from /usr/share/datasets/fashion-mnist (IDX, gzip).
  fashion-onnx  fashion's weights as ONNX (opset 10) for the onnx backend;
           its accuracy measured with OpenCV DNN (python3-opencv).
  textenc  Debian package descriptions from /var/lib/apt/lists/*_Packages*,
           labelled by their Section.
  textcls  textenc's model (symbolic links to its files) behind a BYTES input:
           raw text in, tokenized in the model process by the "tokenizer" of
           its config, which is `tokenize` and `encode` below; no training.
           Also writes src/text/testdata/words_reference.jsonl, Python's
           words for test-set texts and hard cases, for the C++ tokenizer's test.
"""

import argparse
import collections
import glob
import gzip
import json
import lzma
import math
import os
import re
import struct
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

TRAINED_BY = "models/build_models.py"


def pick_two(labels):
    """Indices of the first sample and the first later one with another label."""
    first = 0
    for i in range(1, len(labels)):
        if labels[i] != labels[first]:
            return [first, i]
    return [0, 1]


def accuracy_of_saved(model_path, batches):
    """Accuracy of the saved model after freeze + optimize_for_inference.
    batches: iterable of (input tensor, label tensor)."""
    m = torch.jit.load(model_path, map_location="cpu")
    m.eval()
    correct = total = 0
    with torch.no_grad():
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(m))
        for x, y in batches:
            pred = frozen(x).argmax(dim=1)
            correct += int((pred == y).sum())
            total += int(y.numel())
    return correct / total, total


def write_lines(path, lines):
    with open(path, "w") as f:
        for line in lines:
            f.write(line + "\n")


# --------------------------------------------------------------------------
# fraud: tabular MLP risk classifier
# --------------------------------------------------------------------------

class RiskMLP(nn.Module):
    """Raw features in, class probabilities out. Standardisation is part of
    the model so callers send unscaled measurements."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.net = nn.Sequential(
            nn.Linear(30, 64), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(64, 32), nn.ReLU(),
            nn.Linear(32, 2),
        )

    @torch.jit.export
    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features - self.mean) / self.std)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.logits(features), dim=1)


def fraud_data():
    """The breast-cancer data and the one split fraud and fraud-xgb share."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    x = data.data.astype(np.float32)
    # sklearn: 0 = malignant, 1 = benign. Make class 1 the risk (malignant) class.
    y = (1 - data.target).astype(np.int64)
    return train_test_split(x, y, test_size=0.2, random_state=common.SEED, stratify=y)


def build_fraud(out):
    common.seed_everything()
    name = "fraud"
    mdir = os.path.join(out, "models", name)
    x_tr, x_te, y_tr, y_te = fraud_data()

    t0 = time.time()
    model = RiskMLP(x_tr.mean(axis=0), x_tr.std(axis=0) + 1e-6)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(common.SEED)
    model.train()
    for _ in range(50):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(model.logits(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    train_s = time.time() - t0
    model.eval()
    common.save_scripted(model, os.path.join(mdir, "model.pt"))

    xte, yte = torch.from_numpy(x_te), torch.from_numpy(y_te)
    acc, n = accuracy_of_saved(os.path.join(mdir, "model.pt"), [(xte, yte)])
    print(f"[{name}] train {len(x_tr)} samples in {train_s:.1f}s, test accuracy {acc:.4f} on {n}")

    common.write_config(mdir, [("features", "FP32", [-1, 30])],
                        [("probabilities", "FP32", [-1, 2], "labels.txt")], memory_mb=512)
    write_lines(os.path.join(mdir, "labels.txt"), ["benign", "malignant"])
    common.write_json(os.path.join(mdir, "accuracy.json"), {
        "dataset": "Breast Cancer Wisconsin (diagnostic), sklearn.datasets.load_breast_cancer; "
                   "stand-in for fraud data, class 1 = malignant (risk)",
        "train_samples": len(x_tr),
        "test_samples": n,
        "test_accuracy": round(acc, 4),
        "trained_by": TRAINED_BY,
        "seed": common.SEED,
    })
    sel = pick_two(y_te.tolist())
    common.write_request_and_reference(
        out, name, ["features"], [xte[sel]], "probabilities", [int(y_te[i]) for i in sel])
    return acc, train_s


def build_fraud_xgb(out):
    """Gradient-boosted trees on fraud's data and split; the server's xgboost
    backend turns the positive-class probability into both classes'."""
    import xgboost as xgb

    name = "fraud-xgb"
    mdir = os.path.join(out, "models", name)
    os.makedirs(mdir, exist_ok=True)
    x_tr, x_te, y_tr, y_te = fraud_data()
    t0 = time.time()
    params = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.1, "subsample": 0.9,
              "colsample_bytree": 0.8, "seed": common.SEED, "nthread": 1, "eval_metric": "logloss"}
    booster = xgb.train(params, xgb.DMatrix(x_tr, label=y_tr), num_boost_round=200)
    train_s = time.time() - t0
    model_path = os.path.join(mdir, "model.ubj")
    booster.save_model(model_path)
    saved = xgb.Booster(model_file=model_path)
    saved.set_param({"nthread": 1})
    p = saved.inplace_predict(x_te)
    acc = float(((p > 0.5).astype(np.int64) == y_te).mean())
    print(f"[{name}] {len(x_tr)} samples, 200 trees in {train_s:.1f}s, test accuracy {acc:.4f} on {len(y_te)}")

    common.write_config(mdir, [("features", "FP32", [-1, 30])],
                        [("probabilities", "FP32", [-1, 2], "labels.txt")],
                        backend="xgboost", model_file="model.ubj", memory_mb=256)
    write_lines(os.path.join(mdir, "labels.txt"), ["benign", "malignant"])
    common.write_json(os.path.join(mdir, "accuracy.json"), {
        "dataset": "Breast Cancer Wisconsin (diagnostic), sklearn.datasets.load_breast_cancer; "
                   "stand-in for fraud data, class 1 = malignant (risk); the same split as fraud",
        "train_samples": len(x_tr),
        "test_samples": len(y_te),
        "test_accuracy": round(acc, 4),
        "trees": 200,
        "trained_by": TRAINED_BY,
        "seed": common.SEED,
    })
    # fraud's request rows, so the two engines answer the same request.
    sel = pick_two(y_te.tolist())
    rows = torch.from_numpy(x_te[sel])
    positive = saved.inplace_predict(x_te[sel]).astype(np.float32)
    probabilities = torch.from_numpy(np.stack([1 - positive, positive], axis=1))
    common.write_json(os.path.join(out, "requests", f"{name}.json"),
                      {"id": f"{name}-1", "inputs": [common.v2_tensor("features", rows)]}, compact=True)
    common.write_json(os.path.join(out, "references", f"{name}.json"), {
        "model": name, "outputs": [common.v2_tensor("probabilities", probabilities)],
        "labels": [int(y_te[i]) for i in sel],
        "predicted": [int(i) for i in probabilities.argmax(dim=1).tolist()]}, compact=True)
    return acc, train_s


# --------------------------------------------------------------------------
# fashion: MobileNetV2-style CNN
# --------------------------------------------------------------------------

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    return data.reshape(dims)


def conv_bn(cin, cout, kernel, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return layers


class InvertedResidual(nn.Module):
    """1x1 expansion -> 3x3 depthwise -> 1x1 linear projection, with a skip
    connection when the shape is kept."""

    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = []
        if expand != 1:
            layers += conv_bn(cin, hidden, 1)
        layers += conv_bn(hidden, hidden, 3, stride, groups=hidden)
        layers += conv_bn(hidden, cout, 1, act=False)
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.residual:
            return x + self.block(x)
        return self.block(x)


class FashionNet(nn.Module):
    # (expansion, out channels, repeats, first stride)
    SETTINGS = [(1, 16, 1, 1), (4, 24, 2, 2), (4, 48, 2, 2), (4, 64, 2, 1)]

    def __init__(self, mean, std, num_classes=10, stem=16, settings=None, head=160):
        """stem, settings and head shape smaller students (models/optimize.py); the defaults are fashion's."""
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        layers = conv_bn(1, stem, 3)
        cin = stem
        for t, c, n, s in settings or self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers += conv_bn(cin, head, 1)
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = (image - self.mean) / self.std
        x = self.features(x)
        x = x.mean(dim=(2, 3))
        return self.classifier(self.dropout(x))


class SmallCNN(nn.Module):
    """The distilled fashion student (models/optimize.py): two plain 3x3 convolutions with max pooling and a
    small dense head. Dense convolutions on a 28x28 image cost far less per call on a CPU than the teacher's
    depthwise-separable blocks, which spend their time in many small kernels."""

    def __init__(self, mean, std, channels=(16, 32), hidden=64, num_classes=10):
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(c2 * 7 * 7, hidden), nn.ReLU(inplace=True),
                                        nn.Linear(hidden, num_classes))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features((image - self.mean) / self.std))


def augment(x, gen):
    """Random horizontal flip and a shift of up to 2 pixels (batch-wise)."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    dx, dy = torch.randint(-2, 3, (2,), generator=gen).tolist()
    x = F.pad(x, (2, 2, 2, 2))
    return x[:, :, 2 + dy:30 + dy, 2 + dx:30 + dx]


def fashion_data():
    """Fashion-MNIST's 60k training and 10k test images (N, 1, 28, 28) in [0, 1] and their labels, as
    fashion and its variants (models/optimize.py) use them."""
    def images(name):
        return torch.from_numpy(read_idx(os.path.join(FASHION_DIR, name)).astype(np.float32) / 255.0).unsqueeze(1)

    def labels(name):
        return torch.from_numpy(read_idx(os.path.join(FASHION_DIR, name)).astype(np.int64))

    return (images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz"),
            images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz"))


def fashion_loss(model, x, y):
    return F.cross_entropy(model(x), y, label_smoothing=0.05)


def run_epochs(model, count, batch, epochs, opt, sched, batch_loss, tag, clip_norm=None):
    """Seeded epochs over `count` samples in shuffled batches: batch_loss(idx, gen)
    gives a batch's loss (gen: the seeded generator, for augmentation); one
    optimiser and scheduler step per batch, gradients clipped at clip_norm if
    set. The training loop of every model here (train_fashion, train_text)."""
    gen = torch.Generator().manual_seed(common.SEED)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(count, generator=gen)
        total = 0.0
        for i in range(0, count, batch):
            idx = perm[i:i + batch]
            loss = batch_loss(idx, gen)
            opt.zero_grad()
            loss.backward()
            if clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"[{tag}] epoch {epoch + 1}/{epochs} loss {total / count:.4f} "
              f"({time.time() - t0:.0f}s)", flush=True)
    model.eval()
    return model


def train_fashion(model, xt, yt, epochs, lr, loss_fn, tag):
    """AdamW with a one-cycle schedule over augmented batches of 128, seeded;
    loss_fn(model, x, y). fashion's training, and models/optimize.py's
    fine-tuning and distillation."""
    batch = 128
    steps = epochs * math.ceil(len(xt) / batch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    return run_epochs(model, len(xt), batch, epochs, opt, sched,
                      lambda idx, gen: loss_fn(model, augment(xt[idx], gen), yt[idx]), tag)


def build_fashion(out, epochs):
    common.seed_everything()
    name = "fashion"
    mdir = os.path.join(out, "models", name)
    xt, yt, xe, ye = fashion_data()

    model = FashionNet(xt.mean().item(), xt.std().item())
    nparams = sum(p.numel() for p in model.parameters())
    t0 = time.time()
    train_fashion(model, xt, yt, epochs, 4e-3, fashion_loss, name)
    train_s = time.time() - t0
    model.eval()
    path = os.path.join(mdir, "model.pt")
    common.save_scripted(model, path)

    acc, n = accuracy_of_saved(
        path, [(xe[i:i + 1000], ye[i:i + 1000]) for i in range(0, len(xe), 1000)])
    print(f"[{name}] {nparams} parameters, trained {epochs} epochs in {train_s:.0f}s, "
          f"test accuracy {acc:.4f} on {n}")

    common.write_config(mdir, [("image", "FP32", [-1, 1, 28, 28], "NCHW")],
                        [("logits", "FP32", [-1, 10], "labels.txt")], memory_mb=1024)
    write_lines(os.path.join(mdir, "labels.txt"), FASHION_CLASSES)
    common.write_json(os.path.join(mdir, "accuracy.json"), {
        "dataset": "Fashion-MNIST (debian package dataset-fashion-mnist)",
        "train_samples": len(xt),
        "test_samples": n,
        "test_accuracy": round(acc, 4),
        "epochs": epochs,
        "trained_by": TRAINED_BY,
        "seed": common.SEED,
    })
    sel = pick_two(ye.tolist())
    common.write_request_and_reference(
        out, name, ["image"], [xe[sel]], "logits", [int(ye[i]) for i in sel])
    return acc, train_s


def build_fashion_onnx(out):
    """fashion's weights exported to ONNX for the onnx backend (OpenCV DNN
    4.6): opset 10, since at opset >= 11 ReLU6 becomes a Clip with min/max
    inputs, which OpenCV 4.6's importer rejects. Its request and reference are
    fashion's: the served ONNX model must answer what TorchScript answers.
    The test accuracy is measured on the 10k test set with OpenCV's DNN in
    Python (python3-opencv) when it is installed."""
    name = "fashion-onnx"
    src = os.path.join(out, "models", "fashion")
    mdir = os.path.join(out, "models", name)
    os.makedirs(mdir, exist_ok=True)
    scripted = torch.jit.load(os.path.join(src, "model.pt"))
    model = FashionNet(0.0, 1.0)
    model.load_state_dict(scripted.state_dict())  # mean and std are buffers: loaded too
    model.eval()
    path = os.path.join(mdir, "model.onnx")
    t0 = time.time()
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), path, opset_version=10, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=True)
    export_s = time.time() - t0
    x_te = read_idx(os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz"))
    y_te = read_idx(os.path.join(FASHION_DIR, "t10k-labels-idx1-ubyte.gz"))
    images = (x_te.astype(np.float32) / 255.0)[:, None, :, :]
    with torch.no_grad():
        torch_logits = torch.cat([model(torch.from_numpy(images[i:i + 1000])) for i in range(0, len(images), 1000)])
    acc = None
    try:
        import cv2
        net = cv2.dnn.readNetFromONNX(path)
        logits = []
        for i in range(0, len(images), 1000):
            net.setInput(images[i:i + 1000])
            logits.append(net.forward())
        logits = np.concatenate(logits)
        acc = float((logits.argmax(axis=1) == y_te).mean())
        diff = float(np.abs(logits - torch_logits.numpy()).max())
        print(f"[{name}] OpenCV {cv2.__version__} vs TorchScript on 10k test images: max |diff| {diff:.3g}")
    except ImportError:
        print(f"[{name}] python3-opencv is not installed: accuracy not measured")
    torch_acc = float((torch_logits.argmax(dim=1).numpy() == y_te).mean())
    print(f"[{name}] exported in {export_s:.1f}s; test accuracy {acc} (OpenCV DNN), {torch_acc:.4f} (torch)")
    common.write_config(mdir, [("image", "FP32", [-1, 1, 28, 28], "NCHW")],
                        [("logits", "FP32", [-1, 10], "labels.txt")],
                        backend="onnx", model_file="model.onnx", memory_mb=1024)
    write_lines(os.path.join(mdir, "labels.txt"), FASHION_CLASSES)
    common.write_json(os.path.join(mdir, "accuracy.json"), {
        "dataset": "Fashion-MNIST (debian package dataset-fashion-mnist)",
        "test_samples": len(y_te),
        "test_accuracy": None if acc is None else round(acc, 4),
        "measured_with": "OpenCV DNN (python3-opencv) on model.onnx",
        "exported_from": "examples/models/fashion/model.pt, ONNX opset 10",
        "trained_by": TRAINED_BY,
    })
    for kind in ("requests", "references"):
        doc = json.load(open(os.path.join(out, kind, "fashion.json")))
        if kind == "references":
            doc["model"] = name
        else:
            doc["id"] = f"{name}-1"
        common.write_json(os.path.join(out, kind, f"{name}.json"), doc, compact=True)
    return acc if acc is not None else torch_acc, export_s


# --------------------------------------------------------------------------
# textenc: TinyBERT-sized transformer encoder over package descriptions
# --------------------------------------------------------------------------

PAD, UNK, CLS = 0, 1, 2
SPECIALS = ["[PAD]", "[UNK]", "[CLS]"]
MAX_POSITIONS = 128
TRAIN_LEN = 64          # tokens per training sample, [CLS] included
VOCAB_WORDS = 8000
NUM_SECTIONS = 8
PER_CLASS = 2000


def tokenize(text):
    """Lower-case, keep runs of ASCII letters and digits as words."""
    return re.findall(r"[a-z0-9]+", text.lower())


def read_packages_lists():
    """Yield the text of every Packages list apt keeps, whatever the compression."""
    for path in sorted(glob.glob("/var/lib/apt/lists/*_Packages*")):
        if path.endswith("_Packages"):
            with open(path, encoding="utf-8", errors="replace") as f:
                yield f.read()
        elif path.endswith(".lz4"):
            yield subprocess.run(["lz4cat", path], check=True, capture_output=True).stdout.decode(
                "utf-8", errors="replace")
        elif path.endswith(".xz"):
            with lzma.open(path, "rt", encoding="utf-8", errors="replace") as f:
                yield f.read()
        elif path.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
                yield f.read()


def package_descriptions():
    """{package: (description text, section)}; the long description is appended
    when the list carries one (bookworm's Packages lists only have the short
    line, the rest lives in Translation files)."""
    packages = {}
    for text in read_packages_lists():
        for para in text.split("\n\n"):
            fields, key = {}, None
            for line in para.split("\n"):
                if line.startswith((" ", "\t")):
                    if key == "Description" and line.strip() != ".":
                        fields[key] += " " + line.strip()
                    continue
                key, _, value = line.partition(":")
                fields[key] = value.strip()
            if "Package" in fields and "Description" in fields and "Section" in fields:
                section = fields["Section"].split("/")[-1]  # drop contrib/ etc.
                packages.setdefault(fields["Package"], (fields["Description"], section))
    return packages


def load_text_dataset():
    packages = package_descriptions()
    if not packages:
        raise SystemExit("no apt Packages lists found; run apt-get update first")
    counts = collections.Counter(sec for _, sec in packages.values())
    sections = sorted(counts, key=lambda s: (-counts[s], s))[:NUM_SECTIONS]
    # Identical descriptions filed under different sections cannot be learnt:
    # keep each distinct (lower-cased) text once, and only when unambiguous.
    by_text = collections.defaultdict(set)
    first_text = {}
    for pkg in sorted(packages):
        desc, sec = packages[pkg]
        key = desc.lower()
        by_text[key].add(sec)
        first_text.setdefault(key, desc)
    per_class = collections.defaultdict(list)
    for key in sorted(by_text):
        secs = by_text[key]
        if len(secs) == 1:
            sec = next(iter(secs))
            if sec in sections:
                per_class[sec].append(first_text[key])
    rng = np.random.RandomState(common.SEED)
    train, test = [], []
    for label, sec in enumerate(sections):
        texts = per_class[sec]
        order = rng.permutation(len(texts))[:PER_CLASS]
        chosen = [texts[i] for i in order]
        cut = int(round(len(chosen) * 0.8))
        train += [(t, label) for t in chosen[:cut]]
        test += [(t, label) for t in chosen[cut:]]
    train = [train[i] for i in rng.permutation(len(train))]
    test = [test[i] for i in rng.permutation(len(test))]
    return sections, train, test


def build_vocab(texts):
    counts = collections.Counter(w for t in texts for w in tokenize(t))
    words = sorted(counts, key=lambda w: (-counts[w], w))[:VOCAB_WORDS]
    return SPECIALS + words


def encode(text, index, max_len=TRAIN_LEN):
    ids = [CLS] + [index.get(w, UNK) for w in tokenize(text)]
    return ids[:max_len]


def pad_batch(seqs):
    width = max(len(s) for s in seqs)
    out = torch.zeros(len(seqs), width, dtype=torch.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s, dtype=torch.int64)
    return out


class SelfAttention(nn.Module):
    def __init__(self, hidden, heads, dropout):
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim) + bias
        attn = self.dropout(torch.softmax(scores, dim=-1))
        ctx = torch.matmul(attn, v).transpose(1, 2).reshape(b, t, h)
        return self.out(ctx)


class EncoderLayer(nn.Module):
    """Post-LayerNorm block as in BERT."""

    def __init__(self, hidden, heads, ffn, dropout):
        super().__init__()
        self.attn = SelfAttention(hidden, heads, dropout)
        self.norm1 = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, ffn), nn.GELU(), nn.Linear(ffn, hidden))
        self.norm2 = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.attn(x, bias)))
        return self.norm2(x + self.dropout(self.ffn(x)))


class TextEncoder(nn.Module):
    """Token ids (0 = padding) -> class logits. Masked mean pooling over the
    non-padding tokens; sequences longer than 128 are cut to 128."""

    def __init__(self, vocab_size, num_classes, hidden=312, layers=4, heads=12, ffn=1200,
                 max_positions=MAX_POSITIONS, dropout=0.1):
        super().__init__()
        self.max_positions = max_positions
        self.tokens = nn.Embedding(vocab_size, hidden, padding_idx=PAD)
        self.positions = nn.Embedding(max_positions, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList([EncoderLayer(hidden, heads, ffn, dropout)
                                     for _ in range(layers)])
        self.pool = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, num_classes)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.Embedding) and m.padding_idx is not None:
            with torch.no_grad():
                m.weight[m.padding_idx].zero_()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        input_ids = input_ids[:, :self.max_positions]
        mask = input_ids != 0
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.tokens(input_ids) + self.positions(positions).unsqueeze(0)
        x = self.dropout(self.norm(x))
        bias = (~mask).to(x.dtype).mul(-1e9)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias)
        weights = mask.to(x.dtype).unsqueeze(-1)
        pooled = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        pooled = self.dropout(torch.tanh(self.pool(pooled)))
        return self.classifier(pooled)


def train_text(model, x_tr, y_tr, epochs, batch, opt, sched, loss_fn, tag):
    """Seeded epochs over token-id lists x_tr, padded per batch, gradients
    clipped at 1.0; loss_fn(model, ids, y). textenc's training and
    models/optimize.py's distillation of it."""
    return run_epochs(model, len(x_tr), batch, epochs, opt, sched,
                      lambda idx, gen: loss_fn(model, pad_batch([x_tr[j] for j in idx]), y_tr[idx]), tag,
                      clip_norm=1.0)


def build_textenc(out, epochs):
    common.seed_everything()
    name = "textenc"
    mdir = os.path.join(out, "models", name)
    os.makedirs(mdir, exist_ok=True)
    sections, train, test = load_text_dataset()
    vocab = build_vocab([t for t, _ in train])
    index = {w: i for i, w in enumerate(vocab)}
    write_lines(os.path.join(mdir, "vocab.txt"), vocab)
    write_lines(os.path.join(mdir, "labels.txt"), sections)
    print(f"[{name}] sections {sections}; {len(train)} train / {len(test)} test texts; "
          f"vocab {len(vocab)}", flush=True)

    x_tr = [encode(t, index) for t, _ in train]
    y_tr = torch.tensor([y for _, y in train], dtype=torch.int64)
    model = TextEncoder(len(vocab), len(sections))
    nparams = sum(p.numel() for p in model.parameters())
    batch = 32
    steps = epochs * math.ceil(len(x_tr) / batch)
    warmup = steps // 10
    decay, no_decay = [], []
    for pname, p in model.named_parameters():
        (no_decay if p.dim() < 2 or "norm" in pname else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=5e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup))))
    t0 = time.time()
    train_text(model, x_tr, y_tr, epochs, batch, opt, sched,
               lambda m, ids, y: F.cross_entropy(m(ids), y), name)
    train_s = time.time() - t0
    model.eval()
    path = os.path.join(mdir, "model.pt")
    common.save_scripted(model, path)

    x_te = [encode(t, index) for t, _ in test]
    y_te = torch.tensor([y for _, y in test], dtype=torch.int64)
    acc, n = accuracy_of_saved(path, [(pad_batch(x_te[i:i + 256]), y_te[i:i + 256])
                                      for i in range(0, len(x_te), 256)])
    print(f"[{name}] {nparams} parameters, trained {epochs} epochs in {train_s:.0f}s, "
          f"test accuracy {acc:.4f} on {n}")
    check_lengths(path, x_te)

    common.write_config(mdir, [("input_ids", "INT64", [-1, -1])],
                        [("logits", "FP32", [-1, len(sections)], "labels.txt")], memory_mb=1024)
    common.write_json(os.path.join(mdir, "accuracy.json"), {
        "dataset": "Debian bookworm package descriptions (apt Packages lists), "
                   f"labelled by Section, {len(sections)} most frequent sections, "
                   f"at most {PER_CLASS} distinct descriptions each",
        "train_samples": len(train),
        "test_samples": n,
        "test_accuracy": round(acc, 4),
        "epochs": epochs,
        "trained_by": TRAINED_BY,
        "seed": common.SEED,
    })
    sel = pick_two(y_te.tolist())
    write_lines(os.path.join(out, "requests", "textenc.txt"), [test[i][0] for i in sel])
    common.write_request_and_reference(
        out, name, ["input_ids"], [pad_batch([x_te[i] for i in sel])], "logits",
        [int(y_te[i]) for i in sel])
    return acc, train_s


# Texts whose lower-casing or splitting is easy to get wrong, beside the test set.
HARD_TEXTS = [
    "", "   ", "MiXeD CaSe 123abc ABC-def_ghi.jkl", "tab\tand\nnewline\r\nend",
    "Kelvin: 5\u212a and \u212aelvin", "\u0130stanbul \u0130I i\u0307", "\u00c0\u00c9\u00ce \u00dcn\u00efcode fa\u00e7ade",
    "emoji \U0001f600ok\U0001f600", "\u01c5 titlecase \ufb01 ligature \u00df sharp", "full-width \uff21\uff22\uff23 123",
    "\u03a3\u03c3\u03c2 Greek, \u0414\u0436 Cyrillic", "a" * 300, "x" + "1 2 3 " * 50, "GNU/Linux C++ lib64 x86_64 UTF-8",
]


def build_textcls(out):
    """textcls: textenc's files linked, a BYTES input with a tokenizer, a request of raw texts and the
    reference computed here with the Python tokenizer the model was trained with."""
    name = "textcls"
    source = os.path.join(out, "models", "textenc")
    mdir = os.path.join(out, "models", name)
    os.makedirs(mdir, exist_ok=True)
    for f in ("model.pt", "vocab.txt", "labels.txt"):
        if not os.path.exists(os.path.join(source, f)):
            raise SystemExit(f"[{name}] needs {source}/{f}: build textenc first")
        link = os.path.join(mdir, f)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.join("..", "textenc", f), link)
    with open(os.path.join(source, "vocab.txt"), encoding="utf-8") as f:
        vocab = f.read().split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    index = {w: i for i, w in enumerate(vocab)}
    with open(os.path.join(source, "labels.txt"), encoding="utf-8") as f:
        sections = [line for line in f.read().split("\n") if line]
    tokenizer = {"kind": "words", "vocab": "vocab.txt", "feeds": "input_ids", "begin": SPECIALS[CLS],
                 "unknown": SPECIALS[UNK], "pad": SPECIALS[PAD], "max_tokens": TRAIN_LEN}
    common.write_config(mdir, [("text", "BYTES", [-1], tokenizer)],
                        [("logits", "FP32", [-1, len(sections)], "labels.txt")], memory_mb=1024)
    with open(os.path.join(out, "requests", "textenc.txt"), encoding="utf-8") as f:
        texts = [line for line in f.read().split("\n") if line]
    ids = pad_batch([encode(t, index) for t in texts])
    logits, diff, scale = common.run_saved(os.path.join(source, "model.pt"), [ids])
    print(f"[{name}] frozen+optimized vs plain: max |diff| = {diff:.3g} (max |output| = {scale:.3g})")
    with open(os.path.join(out, "references", "textenc.json")) as f:
        labels = json.load(f)["labels"]
    common.write_json(os.path.join(out, "requests", f"{name}.json"),
                      {"id": f"{name}-1", "inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES",
                                                      "data": texts}]}, compact=True)
    predicted = [int(i) for i in logits.argmax(dim=1).tolist()]
    common.write_json(os.path.join(out, "references", f"{name}.json"),
                      {"model": name, "outputs": [common.v2_tensor("logits", logits.contiguous())],
                       "labels": labels, "predicted": predicted, "token_ids": ids.tolist()}, compact=True)
    print(f"[{name}] reference predicted={predicted} labels={labels}")

    # The C++ tokenizer's test reads Python's words and ids for these texts.
    _, _, test = load_text_dataset()
    cases = HARD_TEXTS + [t for t, _ in test[:300]]
    testdata = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "text", "testdata")
    os.makedirs(testdata, exist_ok=True)
    with open(os.path.join(testdata, "words_reference.jsonl"), "w", encoding="utf-8") as f:
        for text in cases:
            f.write(json.dumps({"text": text, "words": tokenize(text), "ids": encode(text, index)}) + "\n")
    print(f"[{name}] wrote {len(cases)} tokenizer reference cases to {testdata}/words_reference.jsonl")
    return None


def check_lengths(path, seqs):
    """The saved model must take any length 1..128, and padding must not change
    the result."""
    m = torch.jit.load(path)
    m.eval()
    with torch.no_grad():
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(m))
        short = pad_batch(seqs[:4])
        long = torch.zeros(4, MAX_POSITIONS, dtype=torch.int64)
        long[:, :short.shape[1]] = short
        one = torch.full((1, 1), CLS, dtype=torch.int64)
        for runner, label in ((m, "plain"), (frozen, "frozen")):
            a, b = runner(short), runner(long)
            c = runner(one)
            diff = (a - b).abs().max().item()
            print(f"[textenc] {label}: lengths {short.shape[1]} and {long.shape[1]} "
                  f"agree within {diff:.2g}; length 1 -> {tuple(c.shape)}")
            if diff > 1e-4:
                raise SystemExit("textenc output depends on padding length")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["fraud", "fraud-xgb", "fashion", "fashion-onnx", "textenc", "textcls"],
                        help="build just this model")
    parser.add_argument("--out", default=None,
                        help="examples directory (default: <repo>/examples)")
    parser.add_argument("--fashion-epochs", type=int, default=3)
    parser.add_argument("--textenc-epochs", type=int, default=5)
    args = parser.parse_args()
    out = args.out or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                   "examples")
    builders = {
        "fraud": lambda: build_fraud(out),
        "fraud-xgb": lambda: build_fraud_xgb(out),
        "fashion": lambda: build_fashion(out, args.fashion_epochs),
        "fashion-onnx": lambda: build_fashion_onnx(out),  # after fashion: its weights
        "textenc": lambda: build_textenc(out, args.textenc_epochs),
        "textcls": lambda: build_textcls(out),  # after textenc: it reuses textenc's files
    }
    results = {}
    for name, build in builders.items():
        if args.only in (None, name):
            results[name] = build()
    for name, result in results.items():
        if result is None:
            continue
        acc, secs = result
        print(f"{name}: test accuracy {acc:.4f}, training {secs:.0f}s")


if __name__ == "__main__":
    main()
