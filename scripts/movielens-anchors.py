#!/usr/bin/env python3
"""Which fields the MovieLens-100k anchors of issue 3 need: scikit-learn logistic regression and
LightGBM on the raw fields, same protocol as `fitrank movielens` (ratings of 3 dropped,
> 3 positive, random 80/10/10 split by seed, test AUC on the last 10%; numpy's permutation, so
the split differs from fitrank's for the same seed). Fields are one-hot for the linear model and
categorical for LightGBM; the 19 genre flags are always included.

    pip install pandas scikit-learn lightgbm scipy
    python3 scripts/movielens-anchors.py ../shared/data/ml-100k

Prints the mean test AUC over seeds 1-4 per field set.
"""
import sys

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix, hstack
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

data = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/ml-100k"
ratings = pd.read_csv(f"{data}/u.data", sep="\t", names=["user", "item", "rating", "time"])
users = pd.read_csv(f"{data}/u.user", sep="|", names=["user", "age", "gender", "occupation", "zip"])
items = pd.read_csv(f"{data}/u.item", sep="|", encoding="latin-1", header=None)
genres = [f"genre{k}" for k in range(19)]
items = pd.concat([items[[0]].rename(columns={0: "item"}), items.iloc[:, 5:24].set_axis(genres, axis=1)], axis=1)

ratings = ratings[ratings.rating != 3].copy()
ratings["y"] = (ratings.rating > 3).astype(int)
df = ratings.merge(users, on="user").merge(items, on="item")
df["age_band"] = pd.cut(df.age, [0, 17, 24, 34, 44, 49, 55, 200]).cat.codes
df["zip1"] = df.zip.str[0]

FIELD_SETS = {
    "demographics (age band, gender, occupation) + genres": ["age_band", "gender", "occupation"],
    "+ zip prefix": ["age_band", "gender", "occupation", "zip1"],
    "+ movie id": ["age_band", "gender", "occupation", "item"],
    "+ movie id + user id": ["age_band", "gender", "occupation", "item", "user"],
}

results = {name: [] for name in FIELD_SETS}
for seed in [1, 2, 3, 4]:
    order = np.random.RandomState(seed).permutation(len(df))
    n = len(df)
    train, test = df.iloc[order[: int(0.8 * n)]], df.iloc[order[int(0.9 * n) :]]
    for name, fields in FIELD_SETS.items():
        enc = OneHotEncoder(handle_unknown="ignore")
        x_train = hstack([enc.fit_transform(train[fields].astype(str)), csr_matrix(train[genres].values)]).tocsr()
        x_test = hstack([enc.transform(test[fields].astype(str)), csr_matrix(test[genres].values)]).tocsr()
        lr = LogisticRegression(max_iter=1000).fit(x_train, train.y)
        auc_lr = roc_auc_score(test.y, lr.predict_proba(x_test)[:, 1])
        c_train, c_test = train[fields + genres].copy(), test[fields + genres].copy()
        for f in fields:
            c_train[f] = c_train[f].astype(str).astype("category")
            cats = c_train[f].cat.categories
            seen = c_test[f].astype(str).where(lambda v: v.isin(cats))  # unseen values become missing
            c_test[f] = pd.Categorical(seen, categories=cats)
        gbm = lgb.LGBMClassifier(n_estimators=300, learning_rate=0.05, verbose=-1).fit(c_train, train.y)
        auc_gbm = roc_auc_score(test.y, gbm.predict_proba(c_test)[:, 1])
        results[name].append((auc_lr, auc_gbm))

print(f"{'fields':<56} {'logistic':>9} {'LightGBM':>9}")
for name, r in results.items():
    lr, gbm = np.mean(r, axis=0)
    print(f"{name:<56} {lr:>9.4f} {gbm:>9.4f}")
