#!/usr/bin/env bash
# Exactly-once ingest on Redis while things fail: a replica on a redis-server of this script's own
# (AOF on, appendfsync everysec), and `fitrank bench verify` sending IngestBatch calls for SECONDS,
# each retried with the same event ids until acknowledged. Meanwhile the script kills the replica
# (SIGKILL, mid-batch) and starts it again, then restarts Redis (SHUTDOWN, which writes the AOF
# out, and a new redis-server on the same files). The verifier then compares every session's
# counters with what was acknowledged and fails on any event lost or counted twice.
# REDIS_KILL=1 kills Redis with SIGKILL instead (a process crash: the AOF writes already made are
# in the kernel, so none is lost with everysec either; a power loss is what everysec can lose a
# second to, docs/DEPLOYMENT.md). APPENDFSYNC sets the AOF's fsync policy (default everysec).
# Usage: [APPENDFSYNC=always] [REDIS_KILL=1] scripts/verify-redis-exactly-once.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_SECONDS="${1:-30}"
APPENDFSYNC="${APPENDFSYNC:-everysec}"
REDIS_KILL="${REDIS_KILL:-0}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fitrank/target}"
OUT="${OUT:-$(mktemp -d)}"; mkdir -p "$OUT"
scripts/install-redis.sh
cargo build --release --quiet -p fitrank -p fitrank-bench
T="$CARGO_TARGET_DIR/release"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(port); GPORT=$(port)
RS=""; FR=""
trap 'kill $RS $FR 2>/dev/null || true' EXIT
redis() {
  redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync "$APPENDFSYNC" \
    --dir "$OUT" --daemonize no >> "$OUT/redis.log" 2>&1 &
  RS=$!
  until redis-cli -p "$RPORT" ping >/dev/null 2>&1; do sleep 0.1; done
}
serve() {
  FITRANK_LOG=warn "$T/fitrank" serve --store "redis://127.0.0.1:$RPORT" --addr "127.0.0.1:$GPORT" \
    --http-addr 127.0.0.1:0 --data-dir "$OUT/data" --models models >> "$OUT/fitrank.log" 2>&1 &
  FR=$!
  until "$T/fitrank" call --url "http://127.0.0.1:$GPORT" health >/dev/null 2>&1; do sleep 0.1; done
}
redis
serve
"$T/fitrank-bench" verify --url "http://127.0.0.1:$GPORT" --duration "$RUN_SECONDS" --batch 1000 \
  --concurrency 4 > "$OUT/verify.out" 2>&1 &
V=$!
step=$(python3 -c "print($RUN_SECONDS / 4)")
sleep "$step"
echo "killing the replica (SIGKILL) and starting it again" >&2
kill -9 "$FR"; wait "$FR" 2>/dev/null || true
sleep 1
serve
sleep "$step"
if [ "$REDIS_KILL" = 1 ]; then
  echo "killing Redis (SIGKILL, appendfsync $APPENDFSYNC), then a new redis-server on the same AOF" >&2
  kill -9 "$RS"
else
  echo "restarting Redis (SHUTDOWN, then a new redis-server on the same AOF)" >&2
  redis-cli -p "$RPORT" shutdown >/dev/null 2>&1 || true
fi
wait "$RS" 2>/dev/null || true
sleep 1
redis
status=0
wait "$V" || status=$?
cat "$OUT/verify.out"
echo "($(date -u +%F), $(nproc) cores, appendfsync $APPENDFSYNC, Redis $([ "$REDIS_KILL" = 1 ] && echo killed || echo restarted); logs in $OUT)"
exit "$status"
