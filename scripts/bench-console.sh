#!/usr/bin/env bash
# How fast each console page renders with 2,000 live sessions and 100,000 users loaded: a release
# build on the embedded store, three experiments over every user, the catalog and events loaded by
# fitrank-bench (ingest, then rank so that placements and arms are counted), then a headless
# Chromium opens each page and the console's own timings are read (scripts/bench-console.py). Usage: scripts/bench-console.sh [RENDERS_PER_PAGE]
set -euo pipefail
cd "$(dirname "$0")/.."
RENDERS=${1:-20}
scripts/install-chromium.sh
cargo build --release --quiet -p fitrank -p fitrank-bench
T=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GRPC=$(port); HTTP=$(port)
OP=bench-console-operator; FEED=bench-console-feed
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
cat > "$work/access.toml" <<TOML
[[token]]
name = "bench-operator"
roles = ["operator"]
sha256 = "$(sha $OP)"

[[token]]
name = "bench-feed"
roles = ["feed"]
sha256 = "$(sha $FEED)"
TOML
cat > "$work/fitrank.toml" <<TOML
[console]
refresh_ms = 250
TOML
"$T/fitrank" serve --config "$work/fitrank.toml" --models models --data-dir "$work/data" \
  --access-file "$work/access.toml" --addr "127.0.0.1:$GRPC" --http-addr "127.0.0.1:$HTTP" \
  > "$work/serve.log" 2>&1 &
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$HTTP/healthz" >/dev/null && break; sleep 0.1; done
URL="http://127.0.0.1:$GRPC"
# Three experiments covering every user, so the experiments page reads out arms of 100,000 users.
for e in ranking-a ranking-b policy-c; do
  printf '{"name":"%s","layer":"%s","coverage":1.0,"arms":[{"name":"control","weight":1},{"name":"treatment","weight":1}]}' \
    "$e" "layer-$e" > "$work/$e.json"
  "$T/fitrank" call --url "$URL" --token "$OP" create-experiment --file "$work/$e.json" >/dev/null
done
echo "loading 2,000 sessions and 100,000 users, then events and rankings..." >&2
"$T/fitrank-bench" ingest --url "$URL" --token "$FEED" --users 100000 --duration 5 --warmup 0 --json >/dev/null
"$T/fitrank-bench" rank --url "$URL" --token "$FEED" --users 100000 --no-setup --candidates 500 --limit 20 \
  --duration 5 --warmup 0 --json >/dev/null
sleep 11  # the console samples live sessions every 10 s (five service samples)
echo "$(date -u +%F), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
python3 scripts/bench-console.py "http://127.0.0.1:$HTTP/console/" "$OP" bench-s0 "$RENDERS"
