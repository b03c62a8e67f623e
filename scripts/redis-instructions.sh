#!/usr/bin/env bash
# Redis's instructions per ingested event, counted by callgrind: a number that does not depend on
# how busy the host is, for comparing ingest code side by side (events per Redis CPU-second drift
# by a third between hours on a shared VM). A redis-server of this script's own runs under
# `valgrind --tool=callgrind` (AOF on, appendfsync everysec, rewrites rare); a replica on it takes
# `fitrank bench ingest` at RATE batches of 1,000 a second: a first pass of 4 s creates every
# blob, then the counters are zeroed and the measured pass runs for SECONDS.
# SIDE=replica counts the replica's instructions instead (fitrank under callgrind, Redis plain):
# its CPU per ingested event, everything the process ran included (its console's history sampling
# adds some 6 million a second whatever the load).
# EVENTS_PER_CALL=N sets the replica's redis.events_per_call (default 1024); BATCH=N the events per
# `Ingest` call (default 1,000).
# CLUSTER=1 runs Redis as a cluster of one node (all slots), the replica on its cluster path.
# Usage: [DEDUP_WINDOW_SECS=4] [SIDE=replica] [EVENTS_PER_CALL=N] [BATCH=N] [CLUSTER=1] scripts/redis-instructions.sh [SECONDS [RATE [FITRANK_BINARY [BENCH ARGS...]]]]
#   e.g. scripts/redis-instructions.sh 8 2 "" --event-sessions 20
# FITRANK_BINARY defaults to this checkout's release build; fitrank-bench is taken from beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
S="${1:-8}"; RATE="${2:-2}"; BIN="${3:-}"; shift $(( $# < 3 ? $# : 3 ))
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fitrank/target}"
scripts/install-redis.sh
scripts/apt-install.sh valgrind "install valgrind" valgrind
if [ -z "$BIN" ]; then
  cargo build --release --quiet -p fitrank -p fitrank-bench
  BIN="$CARGO_TARGET_DIR/release/fitrank"
fi
BENCH="$CARGO_TARGET_DIR/release/fitrank-bench"
[ -x "$BENCH" ] || cargo build --release --quiet -p fitrank-bench
OUT="${OUT:-$(mktemp -d)}"; mkdir -p "$OUT"
source scripts/bench-lib.sh
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
CLUSTER_ARGS=(); STORE_URL=redis
if [ -n "${CLUSTER:-}" ]; then
  RPORT=$(cluster_port); CLUSTER_ARGS=(--cluster-enabled yes); STORE_URL=redis+cluster
else
  RPORT=$(port)
fi
GPORT=$(port)
SIDE="${SIDE:-redis}"
CG=(valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.%p")
REDIS_CG=(); REPLICA_CG=()
case "$SIDE" in
  redis) REDIS_CG=("${CG[@]}") ;;
  replica) REPLICA_CG=("${CG[@]}") ;;
  *) echo "SIDE is redis or replica" >&2; exit 2 ;;
esac
"${REDIS_CG[@]}" redis-server --port "$RPORT" --bind 127.0.0.1 \
  --save "" --appendonly yes --appendfsync everysec --auto-aof-rewrite-min-size 4gb --dir "$OUT" --daemonize no "${CLUSTER_ARGS[@]}" \
  > "$OUT/redis.log" 2>&1 &
RS=$!
FR=""
trap 'kill $RS $FR 2>/dev/null || true' EXIT
until redis-cli -p "$RPORT" ping >/dev/null 2>&1; do sleep 0.2; done
if [ -n "${CLUSTER:-}" ]; then
  redis-cli -p "$RPORT" cluster addslotsrange 0 16383 > /dev/null
  until redis-cli -p "$RPORT" cluster info | grep -q cluster_state:ok; do sleep 0.2; done
fi
# Redis runs some 50 times slower under callgrind: deadlines to match.
# DEDUP_WINDOW_SECS short (4) fills every de-duplication bucket within the run, as a day's
# traffic fills them in production; the default window (a day) leaves the older buckets empty.
printf 'worker_threads = 1\ndata_dir = "%s/data"\n%b[redis]\nwrite_timeout_ms = 20000\nread_timeout_ms = 15000\n%b' \
  "$OUT" "${DEDUP_WINDOW_SECS:+dedup_window_secs = $DEDUP_WINDOW_SECS\n}" \
  "${EVENTS_PER_CALL:+events_per_call = $EVENTS_PER_CALL\n}" > "$OUT/fitrank.toml"
FITRANK_LOG=warn "${REPLICA_CG[@]}" "$BIN" serve --http-addr 127.0.0.1:0 --config "$OUT/fitrank.toml" --addr "127.0.0.1:$GPORT" \
  --store "$STORE_URL://127.0.0.1:$RPORT" > "$OUT/fitrank.log" 2>&1 &
FR=$!
# The replica starts some 50 times slower under callgrind.
[ "$SIDE" = replica ] && sleep 6
sleep 3
ingest() { "$BENCH" ingest --url "http://127.0.0.1:$GPORT" --rate "$RATE" --batch "${BATCH:-1000}" --warmup 0 --json "$@"; }
# The setup's first calls can miss redis-rs's own response deadline while callgrind translates
# Redis's code: the first pass is tried up to three times.
for try in 1 2 3; do
  ingest --duration 4 "$@" > /dev/null 2> "$OUT/setup.err" && break
  [ "$try" -lt 3 ] || { cat "$OUT/setup.err" >&2; exit 1; }
done
sleep 2
MEASURED=$RS; [ "$SIDE" = replica ] && MEASURED=$FR
callgrind_control -z "$MEASURED" > /dev/null 2>&1
run=$(ingest --duration "$S" --no-setup "$@")
sleep 2
callgrind_control -d "$MEASURED" > /dev/null 2>&1
sleep 1
dump=$(ls -t "$OUT"/callgrind.* | head -1)
ir=$(awk '/^(summary|totals):/{print $2; exit}' "$dump")
python3 - "$run" "$ir" "$BIN" "$SIDE" <<'PY'
import json, sys
run, ir, side = json.loads(sys.argv[1]), int(sys.argv[2]), {"redis": "Redis", "replica": "the replica"}[sys.argv[4]]
events = run["items_per_second"] * run["seconds"]
print(f"{sys.argv[3]}: {events:.0f} events ({run['items_per_second']:.0f}/s, {run.get('errors', 0)} errors); "
      f"{side} executed {ir:,} instructions: {ir / max(1, events):,.0f} per event")
PY
