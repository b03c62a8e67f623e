#!/usr/bin/env bash
# Installs Prometheus and promtool (Debian's prometheus package) when missing. Idempotent. Used by
# install-deps.sh: the metrics tests check /metrics with promtool and scrape it with a real
# Prometheus server started on a free port.
set -euo pipefail
command -v prometheus >/dev/null && command -v promtool >/dev/null && exit 0
"$(dirname "$0")/apt-install.sh" prometheus "install Prometheus 2.x" prometheus promtool
# The package starts a system-wide Prometheus on :9090; the tests start their own.
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
