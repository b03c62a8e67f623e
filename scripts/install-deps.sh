#!/usr/bin/env bash
# Installs what building and testing fitrank needs beyond a Rust toolchain. Idempotent.
# protoc is not needed: build.rs compiles the protos with protox.
set -euo pipefail
if ! command -v cargo >/dev/null; then
  echo "cargo is missing: install a Rust toolchain (1.88 or newer) first" >&2
  exit 1
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy 2>/dev/null || true
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
# The Redis store's tests start their own redis-server on a free port.
"$(dirname "$0")/install-redis.sh"
# The metrics tests use promtool and a real Prometheus server.
"$(dirname "$0")/install-prometheus.sh"
# The console's end-to-end tests drive a headless Chromium through ChromeDriver.
"$(dirname "$0")/install-chromium.sh"
