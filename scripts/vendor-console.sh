#!/usr/bin/env bash
# Fetches the console's chart library from the npm registry into src/console/assets/vendor/ and
# checks it against the digest it was vendored with. Run it to re-vendor (or to verify) uPlot;
# the build never fetches anything.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=1.6.32
SHA256=4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$VERSION" >/dev/null)
echo "$SHA256  $work/uplot-$VERSION.tgz" | sha256sum -c --quiet
tar -xzf "$work/uplot-$VERSION.tgz" -C "$work"
dest=src/console/assets/vendor/uplot
mkdir -p "$dest"
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" "$work/package/LICENSE" "$dest/"
echo "uPlot $VERSION in $dest"
