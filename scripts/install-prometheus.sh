#!/usr/bin/env bash
# Installs Prometheus and promtool (Debian's prometheus package) when missing. Idempotent. Used by
# install-deps.sh: the metrics tests check /metrics with promtool and scrape it with a real
# Prometheus server started on a free port.
set -euo pipefail
command -v prometheus >/dev/null && command -v promtool >/dev/null && exit 0
if ! command -v apt-get >/dev/null; then
  echo "prometheus/promtool are missing and apt-get is not available: install Prometheus 2.x" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package starts a system-wide Prometheus on :9090; the tests start their own.
$SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
command -v prometheus >/dev/null && command -v promtool >/dev/null
