"""scikit-learn's LogisticRegression (lbfgs) on the rows fitrank trains on, for the training-speed
comparison in scripts/bench-training.sh. Same split (the first rows train, by time), same L2
strength (alpha = 1/C), same iteration cap, one head at a time.
Usage: python bench-training.py TABLE.parquet ALPHA MAX_ITER TEST_SHARE"""

import json
import sys
import time

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

path, alpha, max_iter, test = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
df = pd.read_parquet(path).sort_values("time_ms", kind="stable")
features = [c for c in df.columns if c.startswith("f.")]
X = df[features].to_numpy(dtype=np.float64)
n_train = len(df) - round(len(df) * test)
out = {"rows": len(df), "train_rows": n_train, "features": len(features)}
for head in ("engage", "purchase"):
    y = df[f"label_{head}"].to_numpy()
    model = LogisticRegression(solver="lbfgs", C=1.0 / alpha, max_iter=max_iter)
    start = time.perf_counter()
    model.fit(X[:n_train], y[:n_train])
    seconds = time.perf_counter() - start
    auc = roc_auc_score(y[n_train:], model.predict_proba(X[n_train:])[:, 1])
    out[head] = {"seconds": round(seconds, 2), "rows_per_second": round(n_train / seconds), "iterations": int(model.n_iter_[0]),
                 "test_auc": round(auc, 4)}
print(json.dumps(out))
