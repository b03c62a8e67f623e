#!/usr/bin/env bash
# Do offline estimates predict what serving does? The protocol of the offline-evaluation goals:
#   0. make the candidates: the shipped model, one retrained on a warm-up of another world seed,
#      and a deliberately worse one (the shipped model with its weights negated: it ranks the
#      least likely buyers first)
#   per run r = 1..RUNS (its own behaviour seed):
#   1. log: serve the shipped model with exploration 0.1, simulate REQUESTS feeds, export every
#      scored candidate (fitrank export --candidates)
#   2. estimate: fitrank evaluate each candidate on that log (IPS, SNIPS, doubly robust, slate)
#   3. truth: serve each candidate alone, no exploration, on the same world and seed; its truth is
#      the world's own expected purchases of what it served, per ranking at the top slot and at
#      each position (the simulator's scorecard), free of the outcome draws' noise
#   4. A/B: serve the three together as the arms of one experiment over all users (a third each),
#      same world and seed, and read each arm's truth the same way
# Then per estimator: how often the 95% interval holds the truth, the mean absolute bias as a
# share of the truth, and whether the estimates order the candidates as serving them does.
# Exports keep rows whose attribution window is open at the log's end (--include-open): the
# simulator sends each impression's outcomes at once, so nothing arrives after a run.
# Usage: scripts/sim-offpolicy.sh [RUNS] [REQUESTS]         (default 5 15000)
# RESCORE=1 OUT=DIR: only re-estimate and summarise the logs and truths already in DIR (after a
# change to the estimators).
# TRUTH_REPEATS=N serves each candidate N times per run (behaviour seeds r, r+100, ...) over the
# same simulated hours and averages them: a truth less noisy than the estimate it judges.
# UNIFORM=U: the logging policy's exploration_uniform_share (default 0.0: cold sessions drawn by score).
# HEAD=H HEAD_SIZE=K: its exploration_head_share and exploration_head_size (default 0.0 and 4).
# WORSE=negate (default): the worse candidate is the shipped model with its weights negated;
# WORSE=noise:S instead adds Gaussian noise of S times each weight's size (w + S·|w|·z, seed 7):
# a worse model that still agrees with the shipped one often enough to be supported.
# WORLD=shoppers SEED=101 SLOTS=8 by default (the smoke protocol's world); WARMUP_SEED=201.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-5}"; REQUESTS="${2:-15000}"; TRUTH_REPEATS="${TRUTH_REPEATS:-1}"
UNIFORM="${UNIFORM:-0.0}"; HEAD="${HEAD:-0.0}"; HEAD_SIZE="${HEAD_SIZE:-4}"
WORLD="${WORLD:-shoppers}"; SEED="${SEED:-101}"; SLOTS="${SLOTS:-8}"; WARMUP_SEED="${WARMUP_SEED:-201}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fitrank/target}"
cargo build --release --workspace --quiet
B="$CARGO_TARGET_DIR/release/fitrank"
OUT="${OUT:-$(mktemp -d)}"; mkdir -p "$OUT/models/default"
[ -n "${RESCORE:-}" ] || cp -r models/default/* "$OUT/models/default/"
SHIPPED="default/$(ls models/default | sort | tail -1)"
ADDR=127.0.0.1:50191
export FITRANK_URL="http://$ADDR"
echo "results in $OUT"

serve() {  # $1 = data dir, $2 = extra TOML
  rm -rf "$1"
  printf 'model_poll_ms = 0\n%s\n[feature_log]\nflush_interval_ms = 200\n' "$2" > "$OUT/fitrank.toml"
  FITRANK_LOG=warn "$B" serve --http-addr 127.0.0.1:0 --config "$OUT/fitrank.toml" --addr "$ADDR" \
    --models "$OUT/models" --data-dir "$1" >> "$OUT/fitrank.log" 2>&1 &
  PID=$!
  for _ in $(seq 50); do "$B" call health >/dev/null 2>&1 && return; sleep 0.2; done
  echo "service did not start; see $OUT/fitrank.log" >&2; exit 1
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
trap 'kill ${PID:-} 2>/dev/null || true' EXIT
simulate() {  # $1 = world seed, $2 = behaviour seed, $3 = requests, $4 = scorecard file (JSON)
  "$B" simulate --world "$WORLD" --seed "$1" --slots "$SLOTS" --requests "$3" --policies fitrank \
    --behaviour-seed "$2" --rows 0 --json > "${4:-/dev/null}"
}

CANDIDATES=("$SHIPPED" default/29990101-000000 default/29990101-000001)
NAMES=(shipped retrained worse)
estimate() {  # $1 = run
  args=(); for c in "${CANDIDATES[@]}"; do args+=(--model "$c"); done
  "$B" evaluate --data "$OUT/log-$1.parquet" --models-dir "$OUT/models" "${args[@]}" --k "$SLOTS" \
    --include-training-rows --json > "$OUT/estimate-$1.json" 2> /dev/null
}
if [ -n "${RESCORE:-}" ]; then
  for r in $(seq "$RUNS"); do estimate "$r"; done
else
echo "== 0. candidates"
serve "$OUT/warmup" $'[policy]\nexploration_share = 0.2'
simulate "$WARMUP_SEED" 1 "$REQUESTS"
stop
"$B" export --log-dir "$OUT/warmup/featurelog" --include-open --out "$OUT/warmup.parquet" > /dev/null
"$B" train --data "$OUT/warmup.parquet" --name default --version 29990101-000000 --models "$OUT/models" 2>&1 | grep -E "purchase_auc" || true
python3 - "$OUT/models/default" "${SHIPPED#default/}" 29990101-000001 "${WORSE:-negate}" <<'PY'
import json, os, random, sys
base, shipped, worse, how = sys.argv[1:]
os.makedirs(f"{base}/{worse}", exist_ok=True)
weights = json.load(open(f"{base}/{shipped}/weights.json"))
rng = random.Random(7)
for head in weights.values():
    if how == "negate":
        head["weights"] = [-w for w in head["weights"]]
    else:
        scale = float(how.removeprefix("noise:"))
        head["weights"] = [w + scale * abs(w) * rng.gauss(0, 1) for w in head["weights"]]
json.dump(weights, open(f"{base}/{worse}/weights.json", "w"))
manifest = json.load(open(f"{base}/{shipped}/manifest.json"))
manifest["version"] = worse
json.dump(manifest, open(f"{base}/{worse}/manifest.json", "w"))
PY

for r in $(seq "$RUNS"); do
  echo "== run $r: log with exploration, estimate, then serve each candidate"
  serve "$OUT/log-$r" $'[policy]\nexploration_share = 0.1\nexploration_uniform_share = '"$UNIFORM"$'\nexploration_head_share = '"$HEAD"$'\nexploration_head_size = '"$HEAD_SIZE"
  "$B" call load-model --name default --version "${SHIPPED#default/}" > /dev/null
  simulate "$SEED" "$r" "$REQUESTS"
  stop
  "$B" export --log-dir "$OUT/log-$r/featurelog" --candidates --include-open --out "$OUT/log-$r.parquet" > /dev/null
  estimate "$r"
  for i in "${!CANDIDATES[@]}"; do
    c="${CANDIDATES[$i]}"
    for k in $(seq "$TRUTH_REPEATS"); do
      serve "$OUT/truth-$r-$i-$k" ""
      "$B" call load-model --name default --version "${c#default/}" > /dev/null
      simulate "$SEED" "$((r + 100 * (k - 1)))" "$REQUESTS" "$OUT/truth-$r-$i-$k.json"
      stop
      rm -rf "$OUT/truth-$r-$i-$k"
    done
  done
  serve "$OUT/ab-$r" ""
  python3 - "${CANDIDATES[@]}" > "$OUT/ab.json" <<'PY'
import json, sys
names = ["shipped", "retrained", "worse"]
arms = [{"name": n, "weight": 1, "model": m} for n, m in zip(names, sys.argv[1:])]
print(json.dumps({"name": "ab", "layer": "offpolicy", "coverage": 1.0, "arms": arms, "control": "shipped"}))
PY
  "$B" call create-experiment --file "$OUT/ab.json" > /dev/null
  simulate "$SEED" "$r" "$REQUESTS" "$OUT/ab-$r.json"
  stop
  rm -rf "$OUT/ab-$r"
done
fi

python3 - "$OUT" "$RUNS" "$TRUTH_REPEATS" "${NAMES[@]}" <<'PY'
import json, sys
out, runs, repeats, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]

def merged_truth(r, i):
    # The repeats' truths pooled: per-position rates weighted by their rankings.
    arms = [json.load(open(f"{out}/truth-{r}-{i}-{k}.json"))["arms"]["fitrank"] for k in range(1, repeats + 1)]
    n = sum(a["rankings"] for a in arms)
    depth = min(len(a["expected_purchases_per_ranking_at_position"]) for a in arms)
    return {
        "positions": [sum(a["expected_purchases_per_ranking_at_position"][p] * a["rankings"] for a in arms) / n
                      for p in range(depth)],
        "top_se": sum((a["rankings"] * a["expected_top_purchases_standard_error"]) ** 2 for a in arms) ** 0.5 / n,
    }

rows = []
for r in range(1, runs + 1):
    est = json.load(open(f"{out}/estimate-{r}.json"))["models"]
    for i, name in enumerate(names):
        rows.append((r, name, est[i], merged_truth(r, i)))
def summary(label, get_est, get_truth):
    covered, bias, n = 0, [], 0
    for r, name, e, t in rows:
        v, (lo, hi) = get_est(e)
        truth = get_truth(e, t)
        if v is None or truth is None or truth == 0:
            continue
        n += 1
        covered += lo <= truth <= hi
        bias.append(abs(v - truth) / truth)
    if n:
        print(f"{label:<28} interval holds the truth in {covered}/{n} ({100*covered/n:.0f}%), "
              f"mean |bias| {100*sum(bias)/n:.1f}% of the truth")

def summary_with_truth_noise(label, get_est, get_truth, truth_se):
    # The truth is itself measured on a finite run (the users who came and what was live differ
    # from the log's). This widens the comparison by the truth's own standard error:
    # |estimate - truth| <= 1.96 * sqrt(se_estimate^2 + se_truth^2).
    covered, n = 0, 0
    for r, name, e, t in rows:
        v, (lo, hi) = get_est(e)
        truth = get_truth(e, t)
        if v is None or not truth:
            continue
        n += 1
        se_e = (hi - lo) / (2 * 1.959964)
        covered += abs(v - truth) <= 1.959964 * (se_e ** 2 + truth_se(t) ** 2) ** 0.5
    if n:
        print(f"{label:<28} within the combined 95% interval of estimate and measured truth in {covered}/{n} ({100*covered/n:.0f}%)")
top = lambda key: (lambda e: (e["off_policy"][key], e["off_policy"][key + "_ci"]) if e.get("off_policy") else (None, (0, 0)))
slate = lambda key: (lambda e: (e["off_policy_slate"][key], e["off_policy_slate"][key + "_ci"]) if e.get("off_policy_slate") else (None, (0, 0)))
top_truth = lambda e, t: t["positions"][0] if t["positions"] else None
# The slate's truth over the positions the estimate covers (it leaves out unsupported ones).
def slate_truth_at(e, t):
    d = (e.get("off_policy_slate") or {}).get("depth")
    return sum(t["positions"][:d]) if d else None
print("\nper run and candidate: top-slot truth | SNIPS | DR ; slate truth | slate SNIPS")
for r, name, e, t in rows:
    o, s = e.get("off_policy") or {}, e.get("off_policy_slate") or {}
    print(f"  run {r} {name:<10} {top_truth(e, t) or 0:.4f} | {o.get('snips', 0):.4f} | {o.get('doubly_robust', 0):.4f} ;"
          f" {slate_truth_at(e, t) or 0:.4f} | {s.get('snips', 0):.4f} over {s.get('depth', 0)} positions"
          f"   (ESS {o.get('effective_sample_size', 0):.0f})")
print()
def bias(label, get_est, get_truth):
    # Bias: the mean over runs of (estimate - truth), per candidate, as a share of its mean truth;
    # the runs' noise averages out of it, unlike a per-run |error|.
    shares = []
    for name in names:
        pairs = [(get_est(e)[0], get_truth(e, t)) for (_, n, e, t) in rows if n == name]
        pairs = [(v, t) for v, t in pairs if v is not None and t]
        if pairs:
            mean_truth = sum(t for _, t in pairs) / len(pairs)
            errors = [v - t for v, t in pairs]
            mean_error = sum(errors) / len(errors)
            # The standard error of that mean, from the runs' spread: how much of it is noise.
            se = (sum((x - mean_error) ** 2 for x in errors) / max(len(errors) - 1, 1) / len(errors)) ** 0.5
            shares.append(abs(mean_error) / mean_truth)
            print(f"  {label:<26} {name:<10} bias {100 * mean_error / mean_truth:+.1f}% "
                  f"(standard error {100 * se / mean_truth:.1f}%) of {mean_truth:.4f}")
    if shares:
        print(f"{label:<28} mean absolute bias over candidates {100 * sum(shares) / len(shares):.1f}%")
summary("top slot, IPS", top("ips"), top_truth)
summary("top slot, SNIPS", top("snips"), top_truth)
summary("top slot, doubly robust", top("doubly_robust"), top_truth)
top_truth_se = lambda t: t["top_se"]
summary_with_truth_noise("top slot, SNIPS", top("snips"), top_truth, top_truth_se)
summary_with_truth_noise("top slot, doubly robust", top("doubly_robust"), top_truth, top_truth_se)
summary("slate, IPS", slate("ips"), slate_truth_at)
summary("slate, SNIPS", slate("snips"), slate_truth_at)
summary("slate, doubly robust", slate("doubly_robust"), slate_truth_at)
print()
bias("top slot, SNIPS", top("snips"), top_truth)
bias("top slot, doubly robust", top("doubly_robust"), top_truth)
bias("top slot, direct method", lambda e: ((e.get("off_policy") or {}).get("direct_method"), (0, 0)), top_truth)
bias("slate, SNIPS", slate("snips"), slate_truth_at)
bias("slate, doubly robust", slate("doubly_robust"), slate_truth_at)
def ordering(label, key):
    agree = 0
    for r in range(1, runs + 1):
        rr = [(name, e, t) for (q, name, e, t) in rows if q == r]
        by_truth = [n for n, e, t in sorted(rr, key=lambda x: -(top_truth(x[1], x[2]) or 0))]
        by_estimate = [n for n, e, t in sorted(rr, key=lambda x: -((x[1].get("off_policy") or {}).get(key, 0)))]
        agree += by_truth == by_estimate
    print(f"{label} orders the candidates as serving does in {agree}/{runs} runs")
ordering("doubly robust", "doubly_robust")
ordering("SNIPS", "snips")
# Pairwise: does the offline difference of two candidates have the sign of their served one?
pairs, agree_dr, agree_snips = 0, 0, 0
for r in range(1, runs + 1):
    rr = [(name, e, t) for (q, name, e, t) in rows if q == r]
    for a in range(len(rr)):
        for b in range(a + 1, len(rr)):
            truth = (top_truth(rr[a][1], rr[a][2]) or 0) - (top_truth(rr[b][1], rr[b][2]) or 0)
            dr = (rr[a][1].get("off_policy") or {}).get("doubly_robust", 0) - (rr[b][1].get("off_policy") or {}).get("doubly_robust", 0)
            sn = (rr[a][1].get("off_policy") or {}).get("snips", 0) - (rr[b][1].get("off_policy") or {}).get("snips", 0)
            pairs += 1
            agree_dr += (truth > 0) == (dr > 0)
            agree_snips += (truth > 0) == (sn > 0)
print(f"pairs of candidates whose offline difference has the served sign: DR {agree_dr}/{pairs}, SNIPS {agree_snips}/{pairs}")
# Against an A/B test of the three: the arms' truths (expected top-slot purchases per ranking) and
# their realised purchases per 1,000 impressions, in each run.
agree = {"DR expected": 0, "SNIPS expected": 0, "DR realised": 0, "SNIPS realised": 0}
ab_pairs = 0
for r in range(1, runs + 1):
    try:
        arms = json.load(open(f"{out}/ab-{r}.json"))["arms"]
    except FileNotFoundError:
        continue
    est = {name: e.get("off_policy") or {} for (q, name, e, t) in rows if q == r}
    arm = lambda n: arms[f"fitrank ab/{n}"]
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            x, y = names[a], names[b]
            ab_pairs += 1
            top = lambda n: arm(n)["expected_purchases_per_ranking_at_position"][0]
            expected = top(x) - top(y)
            realised = arm(x)["purchases_per_1000_impressions"] - arm(y)["purchases_per_1000_impressions"]
            for key, label in (("doubly_robust", "DR"), ("snips", "SNIPS")):
                offline = est[x].get(key, 0) - est[y].get(key, 0)
                agree[f"{label} expected"] += (offline > 0) == (expected > 0)
                agree[f"{label} realised"] += (offline > 0) == (realised > 0)
if ab_pairs:
    print("pairs whose offline difference has the sign of the A/B test's: "
          + ", ".join(f"{k} {v}/{ab_pairs}" for k, v in agree.items()))
PY
