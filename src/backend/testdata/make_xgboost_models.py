# Regenerates the tiny XGBoost boosters used by xgboost_backend_test and
# their expected predictions (xgb_reference.json, from XGBoost in Python):
#   /usr/bin/python3 src/backend/testdata/make_xgboost_models.py
# Needs Debian's python3-xgboost (1.7) and python3-numpy.
import json
import os

import numpy as np
import xgboost as xgb

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(7)
x = rng.normal(size=(300, 4)).astype(np.float32)
# Three classes from two features; a target that is a smooth function of all four.
label = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
target = x[:, 0] * 2 - x[:, 2] + 0.5 * x[:, 3]

models = {
    "xgb_softprob": ({"objective": "multi:softprob", "num_class": 3, "max_depth": 3}, label),
    "xgb_regression": ({"objective": "reg:squarederror", "max_depth": 3}, target),
}
probe = np.array([[0.5, 1.0, -0.2, 0.1], [-1.0, 0.0, 0.3, np.nan], [2.0, -1.0, 1.0, -2.0]], dtype=np.float32)
reference = {"probe": [[None if np.isnan(v) else float(v) for v in row] for row in probe]}
for name, (params, y) in models.items():
    booster = xgb.train({**params, "seed": 7, "nthread": 1}, xgb.DMatrix(x, label=y), num_boost_round=20)
    path = os.path.join(HERE, name + ".ubj")
    booster.save_model(path)
    loaded = xgb.Booster(model_file=path)
    out = loaded.inplace_predict(probe, missing=np.nan, strict_shape=True)
    reference[name] = [float(v) for v in np.asarray(out, dtype=np.float32).reshape(-1)]
with open(os.path.join(HERE, "xgb_reference.json"), "w") as f:
    json.dump(reference, f, indent=1)
    f.write("\n")
print("wrote", ", ".join(n + ".ubj" for n in models), "and xgb_reference.json")
