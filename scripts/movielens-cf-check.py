"""What a collaborative feature would add on MovieLens 100k, checked with scikit-learn before it is
built into fitrank (docs/PERFORMANCE.md, MovieLens section).

Same protocol as `fitrank movielens` (ratings of 3 dropped, > 3 positive, random 80/10/10
split; here numpy's RandomState(seed) permutation, not fitrank's split), history features from
training ratings only (out-of-fold in five folds for training rows), logistic regression (C=1)
on a handful of dense features:

  rates   the user's and the movie's smoothed positive rates (logits)
  nocf    + the user's affinity over *all* of the movie's genres, movie x age band and movie x
          gender rates (what fitrank's features approximate with one category slot per movie)
  +ucf    + user-based collaborative filtering the live service could maintain: every session
          (movie) j has a fixed random +-1 vector e_j (K dimensions, from its id); a user's taste
          p_u = sum of +-e_j over their ratings, normalised; a session's audience a_m = sum of
          +-p_v over its raters; feature = p_u . a_m / (n_m + 1) and / sqrt(n_m + 1)
  +icf    + item-based collaborative filtering (cosine similarity of movies' rating columns)
  all     both

Usage: python3 scripts/movielens-cf-check.py ../shared/data/ml-100k [K]   (K = 256 by default; about 25 s)
"""

import sys

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

D = sys.argv[1].rstrip("/") + "/"
r = pd.read_csv(D + "u.data", sep="\t", names=["u", "m", "r", "t"])
r = r[r.r != 3].reset_index(drop=True)
r["y"] = (r.r > 3).astype(int)
users = pd.read_csv(D + "u.user", sep="|", names=["u", "age", "g", "occ", "zip"]).set_index("u")
items = pd.read_csv(D + "u.item", sep="|", header=None, encoding="latin-1")
nu, nm = r.u.max() + 1, items[0].max() + 1
G = np.zeros((nm, 19))
G[items[0].values] = items.iloc[:, 5:24].values
age_band = np.zeros(nu, int)
gender = np.zeros(nu, int)
age_band[users.index] = np.digitize(users.age, [18, 25, 35, 45, 55])
gender[users.index] = users.g == "M"
K = int(sys.argv[2]) if len(sys.argv) > 2 else 256
E = np.random.RandomState(99).choice([-1.0, 1.0], size=(nm, K))


def logit(p):
    return np.log(p / (1 - p))


def features(hist, rows):
    y = hist.y.values
    s = (2 * y - 1).astype(float)
    U, M = hist.u.values, hist.m.values
    cu, pu = np.bincount(U, minlength=nu), np.bincount(U, weights=y, minlength=nu)
    cm, pm = np.bincount(M, minlength=nm), np.bincount(M, weights=y, minlength=nm)
    g = y.mean()
    ur, mr = (pu + 5 * g) / (cu + 5), (pm + 5 * g) / (cm + 5)
    u, m = rows.u.values, rows.m.values
    out = [logit(ur[u]), logit(mr[m])]
    cg, pg = np.zeros((nu, 19)), np.zeros((nu, 19))
    np.add.at(cg, U, G[M])
    np.add.at(pg, U, G[M] * y[:, None])
    rg = (pg + 5 * ur[:, None]) / (cg + 5)
    gm = G[m]
    out.append((logit(rg[u]) * gm).sum(1) / np.maximum(gm.sum(1), 1) - logit(ur[u]))
    for key, nk in [(age_band, 6), (gender, 2)]:
        c, p = np.zeros((nm, nk)), np.zeros((nm, nk))
        np.add.at(c, (M, key[U]), 1)
        np.add.at(p, (M, key[U]), y)
        out.append(logit(((p + 5 * mr[:, None]) / (c + 5))[m, key[u]]) - logit(mr[m]))
    P = np.zeros((nu, E.shape[1]))
    np.add.at(P, U, s[:, None] * E[M])
    P /= np.linalg.norm(P, axis=1, keepdims=True) + 1e-9
    A = np.zeros((nm, E.shape[1]))
    np.add.at(A, M, s[:, None] * P[U])
    dot = np.einsum("ik,ik->i", P[u], A[m])
    out += [dot / (cm[m] + 1), dot / np.sqrt(cm[m] + 1)]
    R = np.zeros((nu, nm))
    R[U, M] = s
    C = R.T @ R
    norm = np.sqrt(np.diag(C)) + 1e-9
    S = C / np.outer(norm, norm)
    np.fill_diagonal(S, 0)
    out.append((R @ S)[u, m] / (cu[u] + 1))
    return np.column_stack(out)


SETS = {"rates": [0, 1], "nocf": [0, 1, 2, 3, 4], "+ucf": [0, 1, 2, 3, 4, 5, 6], "+icf": [0, 1, 2, 3, 4, 7],
        "all": list(range(8))}
results = {k: [] for k in SETS}
for seed in [1, 2, 3, 4]:
    idx = np.random.RandomState(seed).permutation(len(r))
    n = len(r)
    train, test = r.iloc[idx[: int(0.8 * n)]], r.iloc[idx[int(0.9 * n):]]
    folds = np.arange(len(train)) % 5
    Xtr = np.zeros((len(train), 8))
    for f in range(5):
        Xtr[folds == f] = features(train[folds != f], train[folds == f])
    Xte = features(train, test)
    for name, cols in SETS.items():
        model = LogisticRegression(C=1, max_iter=1000).fit(Xtr[:, cols], train.y)
        results[name].append(roc_auc_score(test.y, model.predict_proba(Xte[:, cols])[:, 1]))
for name, aucs in results.items():
    print(f"{name:6} " + " ".join(f"{a:.4f}" for a in aucs) + f"  mean {np.mean(aucs):.4f}")
