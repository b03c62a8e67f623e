#!/usr/bin/env bash
# Installs a Debian package when any of the commands it provides is missing. Idempotent.
# Usage: scripts/apt-install.sh PACKAGE "WHAT TO INSTALL WITHOUT APT" COMMAND...
set -euo pipefail
package="$1"; without_apt="$2"; shift 2
missing=0
for c in "$@"; do command -v "$c" >/dev/null || missing=1; done
[ "$missing" -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "$* missing and apt-get is not available: $without_apt" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
# Tests install what they need when run on their own, so two may install at once: wait for the
# other's dpkg lock instead of failing.
LOCK=(-o DPkg::Lock::Timeout=600)
$SUDO apt-get "${LOCK[@]}" update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get "${LOCK[@]}" install -y -qq --no-install-recommends "$package" >/dev/null
for c in "$@"; do command -v "$c" >/dev/null; done
