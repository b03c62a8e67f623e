#!/usr/bin/env bash
# Cold start and the cost of exploration, each policy running the whole platform: three fresh
# services on the default world (seed 7, shipped model), the same behaviour seed, REQUESTS feed
# requests each in simulated time (3 per simulated second from hour 4 of the world's day; the
# world's sessions go live and end at their own times, and those going live during the run are
# new to the service):
#   1. fitrank, exploration off
#   2. fitrank, exploration on (policy.exploration_share = SHARE, policy.cold_impressions = COLD)
#   3. popularity (the simulator orders by recent views; the service only stores the events)
# Prints purchases per 1,000 impressions (with the exploration run's change against run 1 and its
# standard error) and, for the new sessions, over their first COLD_MINUTES (default 60) simulated
# minutes: how many sold, impressions each, and the minutes from going live to their first
# purchase (median, restricted mean and censored-data mean; see crates/fitrank-lab/src/simulate.rs).
# The three run two at a time on this 2-core machine.
# Usage: scripts/sim-cold-start.sh [REQUESTS] [SEED]   (default 100000 3; SHARE=0.05 COLD=10)
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS="${1:-100000}"; SEED="${2:-3}"; SHARE="${SHARE:-0.05}"; COLD="${COLD:-10}"; COLD_MINUTES="${COLD_MINUTES:-60}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fitrank/target}"
cargo build --release --workspace --quiet
B="$CARGO_TARGET_DIR/release/fitrank"
OUT="${OUT:-$(mktemp -d)}"; mkdir -p "$OUT"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT

run() { # name port share cold policy
  local dir="$OUT/$1"; rm -rf "$dir"; mkdir -p "$dir/models"; cp -r models/default "$dir/models/"
  printf '[policy]\nexploration_share = %s\ncold_impressions = %s\n' "$3" "$4" > "$dir/fitrank.toml"
  FITRANK_LOG=warn "$B" serve --http-addr 127.0.0.1:0 --config "$dir/fitrank.toml" --addr "127.0.0.1:$2" --models "$dir/models" \
    --data-dir "$dir/data" > "$dir/fitrank.log" 2>&1 &
  local pid=$!; PIDS+=("$pid")
  for _ in $(seq 100); do FITRANK_URL="http://127.0.0.1:$2" "$B" call health >/dev/null 2>&1 && break; sleep 0.2; done
  "$B" simulate --url "http://127.0.0.1:$2" --requests "$REQUESTS" --behaviour-seed "$SEED" --policies "$5" --cold-minutes "$COLD_MINUTES" --json \
    > "$OUT/$1.json"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run off 50301 0 "$COLD" fitrank &
run explore 50302 "$SHARE" "$COLD" fitrank &
wait
run popularity 50303 0 "$COLD" popularity

echo "$REQUESTS requests per policy, behaviour seed $SEED, exploration share $SHARE, cold below $COLD impressions; logs in $OUT"
python3 - "$OUT" <<'PY'
import json, math, sys
out = sys.argv[1]
runs = {n: json.load(open(f"{out}/{n}.json")) for n in ("off", "explore", "popularity")}
arm = lambda n: next(iter(runs[n]["arms"].values()))
print()
print("| policy | impressions | purchases / 1k | net / 1k | on-target share | new sessions sold | impressions each | median minutes to 1st purchase | restricted mean | censored-data mean |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name, label in (("off", "fitrank, exploration off"), ("explore", "fitrank, exploration on"), ("popularity", "popularity")):
    a = arm(name)
    c = next(iter(runs[name]["cold_start"].values()), None)
    if c is None:
        cold = "| (no new sessions) | | | | "
    else:
        est = c["estimated_mean_minutes_to_first_purchase"]
        med = c["median_minutes_to_first_purchase"]
        cold = (f"| {c['with_a_purchase']} of {c['new_sessions']} | {c['impressions_per_new_session']:.1f} "
                f"| " + (f"{med:.1f}" if med is not None else f"> {c['horizon_minutes']:.0f}")
                + f" | {c['mean_minutes_to_first_purchase']:.1f} | " + (f"{est:.1f}" if est else "none sold"))
    print(f"| {label} | {a['impressions']} | {a['purchases_per_1000_impressions']:.2f} "
          f"| {a['net_purchases_per_1000_impressions']:.2f} | {a['on_target_share']:.3f} {cold} |")
off, on = arm("off"), arm("explore")
change = on["purchases_per_1000_impressions"] / off["purchases_per_1000_impressions"] - 1
se = math.sqrt(1 / max(on["purchases"], 1) + 1 / max(off["purchases"], 1))
print(f"\nexploration's change in purchases per 1,000 impressions: {100 * change:+.1f}% (standard error {100 * se:.1f}%)")
PY
