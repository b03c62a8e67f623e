#!/usr/bin/env bash
# Installs redis-server (Debian's package) when it is missing. Idempotent. Used by install-deps.sh and
# by the tests, which start their own redis-server on a free port.
set -euo pipefail
command -v redis-server >/dev/null && exit 0
if ! command -v apt-get >/dev/null; then
  echo "redis-server is missing and apt-get is not available: install Redis 6.2 or newer" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
command -v redis-server >/dev/null
