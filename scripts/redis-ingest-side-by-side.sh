#!/usr/bin/env bash
# Ingest on one Redis for two fitrank binaries in turn, in alternating pairs: events per second and
# events per Redis CPU-second for each run. Redis's throughput on this shared VM drifts by a third
# between hours, so only binaries measured in the same pairs compare (the instruction counts of
# scripts/redis-instructions.sh do not drift at all).
# Redis: AOF on, appendfsync everysec, rewrites rare; flushed before each run. Each run: a replica
# of the binary, then this checkout's `fitrank-bench ingest --concurrency 8 --batch 1000` for SECONDS
# after a warm-up of 2 s, with BENCH ARGS (e.g. --event-sessions 20).
# A_REDIS and B_REDIS add lines to each binary's [redis] section (e.g. B_REDIS="events_per_call =
# 4096" compares a setting, with the same binary as A and B). Each run also prints how long Redis
# took per script call (EVALSHA's p50 and p99, from INFO latencystats; compactions included): what
# a ranking's read can wait behind.
# Usage: [DEDUP_WINDOW_SECS=4] [A_REDIS=...] [B_REDIS=...] scripts/redis-ingest-side-by-side.sh BINARY_A BINARY_B [PAIRS [SECONDS [BENCH ARGS...]]]
set -euo pipefail
cd "$(dirname "$0")/.."
A="$1"; B_="$2"; PAIRS="${3:-2}"; SECONDS_PER_RUN="${4:-10}"; shift $(( $# < 4 ? $# : 4 ))
BENCH_ARGS=("$@")
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fitrank/target}"
scripts/install-redis.sh
# One load generator for both: this checkout's fitrank-bench.
BENCH="$CARGO_TARGET_DIR/release/fitrank-bench"
[ -x "$BENCH" ] || cargo build --release --quiet -p fitrank-bench
OUT="${OUT:-$(mktemp -d)}"; mkdir -p "$OUT"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync everysec \
  --auto-aof-rewrite-min-size 4gb --dir "$OUT" --daemonize no > "$OUT/redis.log" 2>&1 &
RS=$!
FR=""
trap 'kill $RS $FR 2>/dev/null || true' EXIT
until redis-cli -p "$RPORT" ping >/dev/null 2>&1; do sleep 0.1; done
rcpu() { redis-cli -p "$RPORT" info cpu | awk -F: '/^used_cpu_(sys|user):/{s+=$2} END{print s}'; }
# DEDUP_WINDOW_SECS short (4) fills every de-duplication bucket within a run, as a day's traffic
# fills them in production; the default window (a day) leaves the older buckets empty.
config() { # extra [redis] lines
  printf 'worker_threads = 1\ndata_dir = "%s/data"\n%b[redis]\n%s\n' "$OUT" \
    "${DEDUP_WINDOW_SECS:+dedup_window_secs = $DEDUP_WINDOW_SECS\n}" "$1" > "$OUT/fitrank.toml"
}
call_usec() { redis-cli -p "$RPORT" info latencystats | awk -F'[,=]' '/^latency_percentiles_usec_evalsha:/{print $2, $4}'; }

run() { # binary label [redis] lines
  config "$3"
  redis-cli -p "$RPORT" flushall > /dev/null
  redis-cli -p "$RPORT" config resetstat > /dev/null
  local gport; gport=$(port)
  FITRANK_LOG=warn "$1" serve --http-addr 127.0.0.1:0 --config "$OUT/fitrank.toml" --addr "127.0.0.1:$gport" \
    --store "redis://127.0.0.1:$RPORT" > "$OUT/fitrank.log" 2>&1 &
  FR=$!
  sleep 2
  local c0 c1 j
  c0=$(rcpu)
  j=$("$BENCH" ingest --url "http://127.0.0.1:$gport" --concurrency 8 --batch 1000 --duration "$SECONDS_PER_RUN" \
    --warmup 2 --json "${BENCH_ARGS[@]}")
  c1=$(rcpu)
  local usec; usec=$(call_usec)
  kill "$FR"; wait "$FR" 2>/dev/null || true; FR=""
  python3 - "$2" "$j" "$c0" "$c1" ${usec:-0 0} <<'PY'
import json, sys
label, j, c0, c1 = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
p50, p99 = float(sys.argv[5]) / 1000, float(sys.argv[6]) / 1000
cpu = c1 - c0
# Redis's CPU covers the whole run (setup and warm-up included): the measured rate is scaled to it.
per_cpu = j["items_per_second"] / max(1e-9, cpu / (j["seconds"] + 2))
print(f"{label}: {j['items_per_second']:,.0f} events/s, Redis busy {cpu:.1f} CPU-s, "
      f"{per_cpu:,.0f} events per Redis CPU-second, script calls p50 {p50:.1f} ms p99 {p99:.1f} ms, {j.get('errors', 0)} errors")
PY
}
for p in $(seq 1 "$PAIRS"); do
  if [ $((p % 2)) -eq 1 ]; then run "$A" "A $A" "${A_REDIS:-}"; run "$B_" "B $B_" "${B_REDIS:-}"
  else run "$B_" "B $B_" "${B_REDIS:-}"; run "$A" "A $A" "${A_REDIS:-}"; fi
done
