#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver when missing. Idempotent. Used by install-deps.sh and
# by the console's browser tests (tests/console.rs), which drive a headless Chromium through
# ChromeDriver.
set -euo pipefail
here="$(dirname "$0")"
"$here/apt-install.sh" chromium "install Chromium (the console's browser tests drive it)" chromium
"$here/apt-install.sh" chromium-driver "install ChromeDriver matching Chromium" chromedriver
