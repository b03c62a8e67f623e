"""The baseline a team would otherwise build: a Python gRPC ranking service.

grpcio server generated from fitrank's own proto; the same 259 features (ported to numpy,
vectorised over candidates, positions looked up by name in the model manifest); scikit-learn
LogisticRegression heads loaded with the same coefficients as fitrank's model. It implements what
the load generator calls: CatalogService.UpsertUsers / UpsertSessions and RankingService.Rank.

Usage: python server.py --port 50091 --model ../../models/default/20261202-180000 [--workers 8]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent import futures

import numpy as np


# fitrank's default policy (src/ranking/policy.rs, Policy::default); verify.py checks the scores agree.
ENGAGE_WEIGHT = 0.01
ON_TARGET_WEIGHT = 0.12

def generate_stubs(proto_dir):
    out = tempfile.mkdtemp(prefix="fitrank-py-")
    files = [os.path.join("fitrank/v1", f) for f in sorted(os.listdir(os.path.join(proto_dir, "fitrank/v1")))]
    subprocess.check_call(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}"]
        + files
    )
    sys.path.insert(0, out)


AGE_RANGES = [None, (13, 17), (18, 24), (25, 34), (35, 44), (45, 54), (55, 64), (65, 90)]
AGE_NAMES = ["unknown", "13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
GENDER_NAMES = ["unknown", "female", "male", "other"]
SURFACE_NAMES = ["unknown", "home_feed", "search", "following", "notification"]
CATEGORY_NAMES = ["fashion", "sportswear", "beauty", "jewelry", "electronics", "home", "food", "toys",
                  "collectibles", "health", "outdoor", "other"]
PRICE_NAMES = ["budget", "mid", "premium", "luxury"]


def region_contains(target, user):
    t, u = target.lower(), user.lower()
    return u == t or (len(u) > len(t) and u[len(t)] == "-" and u.startswith(t))


class Features:
    """Positions by name, from the manifest."""

    def __init__(self, names):
        self.n = len(names)
        self.pos = {name: i for i, name in enumerate(names)}

    def __getitem__(self, name):
        return self.pos[name]


class Session:
    __slots__ = ("sid", "category", "price", "language", "region", "start", "min_age", "max_age", "genders",
                 "regions", "interests", "live")


def fit_components(user, s):
    """Audience fit components (domain/audience.rs)."""
    declared = unknown = 0
    comps = []
    has_age = s.min_age > 0 or s.max_age > 0
    rng = AGE_RANGES[user["age"]]
    for is_declared, value in (
        (has_age, None if rng is None else
         max(0, min(rng[1], s.max_age if s.max_age else 120) + 1 - max(rng[0], s.min_age)) / (rng[1] - rng[0] + 1)),
        (bool(s.genders), None if user["gender"] == 0 else float(user["gender"] in s.genders)),
        (bool(s.regions), None if not user["region"] else float(any(region_contains(r, user["region"]) for r in s.regions))),
        (bool(s.interests), None if not user["interests"] else float(any(i in s.interests for i in user["interests"]))),
    ):
        if not is_declared:
            comps.append(1.0)
            continue
        declared += 1
        if value is None:
            unknown += 1
            comps.append(0.5)
        else:
            comps.append(value)
    return comps, declared, unknown


def build_matrix(F, user, sessions, time_ms, surface):
    n = len(sessions)
    X = np.zeros((n, F.n), dtype=np.float32)
    age, gender = user["age"], user["gender"]
    X[:, F[f"user.age_band={AGE_NAMES[age]}"]] = 1
    X[:, F[f"user.gender={GENDER_NAMES[gender]}"]] = 1
    X[:, F[f"ctx.surface={SURFACE_NAMES[surface]}"]] = 1
    hour = (time_ms % 86_400_000) / 3_600_000.0
    X[:, F["ctx.hour_sin"]] = np.sin(2 * np.pi * hour / 24)
    X[:, F["ctx.hour_cos"]] = np.cos(2 * np.pi * hour / 24)
    # zero live stats and no user activity (the benchmark sends no events): smoothed priors
    X[:, F["live.log_view_rate"]] = np.log(1 / 10)
    X[:, F["live.log_purchase_per_view"]] = np.log(0.4 / 20)
    X[:, F["live.log_purchase_per_impression"]] = np.log(0.2 / 100)
    X[:, F["live.interaction_rate"]] = 1 / 10
    X[:, F["live.return_rate"]] = 0.5 / 5
    X[:, F["live.hide_rate"]] = 0.5 / 50
    X[:, F["live.on_target_view_share"]] = 0.5
    X[:, F["live.cold"]] = 1
    for w in ("1m", "5m", "1h"):
        X[:, F[f"live.log_view_rate_{w}"]] = np.log(1 / 10)
    for w in ("5m", "1h"):
        X[:, F[f"live.log_purchase_rate_{w}"]] = np.log(0.2 / 100)
    X[:, F["live.segment_view_lift"]] = 0.0
    X[:, F["user.log_view_rate"]] = np.log(1 / 5)
    X[:, F["user.view_logit"]] = np.log(1 / 4)
    X[:, F["live.view_logit"]] = np.log(1 / 9)
    a, g = AGE_NAMES[age], GENDER_NAMES[gender]
    for i, s in enumerate(sessions):
        c, p = CATEGORY_NAMES[s.category], PRICE_NAMES[s.price]
        X[i, F[f"session.category={c}"]] = 1
        X[i, F[f"session.price_band={p}"]] = 1
        X[i, F[f"x.age_band={a}&category={c}"]] = 1
        X[i, F[f"x.gender={g}&category={c}"]] = 1
        X[i, F[f"x.age_band={a}&price_band={p}"]] = 1
        comps, declared, unknown = fit_components(user, s)
        overall = comps[0] * comps[1] * comps[2] * comps[3]
        X[i, F[f"x.fit&category={c}"]] = overall
        X[i, F["match.language"]] = 0.5 if not user["language"] else float(user["language"].lower() == s.language.lower())
        X[i, F["match.region"]] = 0.5 if not user["region"] else float(region_contains(s.region, user["region"]))
        X[i, F["fit.age"]], X[i, F["fit.gender"]], X[i, F["fit.region"]], X[i, F["fit.interests"]] = comps
        X[i, F["fit.overall"]] = overall
        X[i, F["fit.declared_share"]] = declared / 4
        X[i, F["fit.unknown_share"]] = 0.0 if declared == 0 else unknown / declared
        X[i, F["user.interest_in_category"]] = float(c in user["interests"])
        X[i, F["live.log_minutes_live"]] = np.log1p(max(0, time_ms - s.start) / 60_000)
    return X


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=50091)
    ap.add_argument("--model", required=True)
    ap.add_argument("--proto", default=os.path.join(os.path.dirname(__file__), "../../proto"))
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args()

    generate_stubs(os.path.abspath(args.proto))
    import grpc
    from sklearn.linear_model import LogisticRegression
    from fitrank.v1 import catalog_pb2, catalog_pb2_grpc, ranking_pb2, ranking_pb2_grpc

    manifest = json.load(open(os.path.join(args.model, "manifest.json")))
    weights = json.load(open(os.path.join(args.model, "weights.json")))
    F = Features(manifest["feature_names"])
    heads = {}
    for name in ("engage", "purchase"):
        lr = LogisticRegression()
        lr.coef_ = np.array([weights[name]["weights"]], dtype=np.float64)
        lr.intercept_ = np.array([weights[name]["intercept"]], dtype=np.float64)
        lr.classes_ = np.array([0, 1])
        heads[name] = lr
    model_version = f"{manifest['name']}/{manifest['version']}"

    users, sessions = {}, {}

    class Catalog(catalog_pb2_grpc.CatalogServiceServicer):
        def UpsertUsers(self, request, context):
            for u in request.users:
                a = u.attributes
                users[u.user_id] = {"age": a.age_band, "gender": a.gender, "region": a.region, "language": a.language,
                                    "interests": [i.lower() for i in a.interests]}
            return catalog_pb2.UpsertUsersResponse(upserted=len(request.users))

        def UpsertSessions(self, request, context):
            for s in request.sessions:
                x = Session()
                x.sid, x.category, x.price = s.session_id, s.category - 1, s.price_band - 1
                x.language, x.region, x.start = s.language, s.region, s.start_time_unix_ms
                t = s.target
                x.min_age, x.max_age = t.min_age, t.max_age
                x.genders, x.regions, x.interests = list(t.genders), list(t.regions), [i.lower() for i in t.interests]
                x.live = s.status in (0, 2)
                sessions[x.sid] = x
            return catalog_pb2.UpsertSessionsResponse(upserted=len(request.sessions))

    class Ranking(ranking_pb2_grpc.RankingServiceServicer):
        def Rank(self, request, context):
            if not request.user_id:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "user_id: is required")
            user = users.get(request.user_id, {"age": 0, "gender": 0, "region": "", "language": "", "interests": []})
            cands = [sessions[c] for c in request.candidate_session_ids if c in sessions and sessions[c].live]
            now = request.context.time_unix_ms or int(time.time() * 1000)
            X = build_matrix(F, user, cands, now, request.context.surface).astype(np.float64)
            pe = heads["engage"].predict_proba(X)[:, 1] if cands else np.zeros(0)
            pp = heads["purchase"].predict_proba(X)[:, 1] if cands else np.zeros(0)
            fit = X[:, F["fit.overall"]]
            # Inside the declared target: overall fit at least 0.5 with no declared dimension unknown.
            inside = (fit >= 0.5) & (X[:, F["fit.unknown_share"]] == 0)
            score = pp + ENGAGE_WEIGHT * pe + ON_TARGET_WEIGHT * inside  # fitrank's default policy
            order = np.argsort(-score, kind="stable")[: (request.limit or 50)]
            items = [ranking_pb2.RankedItem(session_id=cands[i].sid, score=score[i], p_engage=pe[i], p_purchase=pp[i],
                                            audience_fit=fit[i], in_target=bool(inside[i])) for i in order]
            return ranking_pb2.RankResponse(ranking_id=uuid.uuid4().hex, model_version=model_version, items=items,
                                            scored=len(cands))

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers))
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(Catalog(), server)
    ranking_pb2_grpc.add_RankingServiceServicer_to_server(Ranking(), server)
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"python baseline serving on 127.0.0.1:{args.port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
