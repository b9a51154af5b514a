#!/usr/bin/env bash
# The fast suite: unit tests only, no rig (no dockerd, registry or mosquitto), for the edit-test loop.
# `npm test` runs these too, with everything else, against the rig.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-node-deps.sh
rm -rf build
bash scripts/build.sh
RIG=0 exec npx --no-install mocha --no-config --require build/test/setup.js --reporter test/reporter.cjs \
  --timeout 20000 --exit 'build/test/unit/**/*.test.js' "$@"
