#!/usr/bin/env bash
# Installs redis-server (Debian's package) when it is missing. Idempotent. Used by install-deps.sh and
# by the tests, which start their own redis-server on a free port.
set -euo pipefail
"$(dirname "$0")/apt-install.sh" redis-server "install Redis 6.2 or newer" redis-server
