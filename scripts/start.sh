#!/usr/bin/env bash
# Runs the agent from a fresh clone: installs node deps, builds, then runs on the embedded
# defaults (config/default.yaml) unless arguments say otherwise, e.g. `npm start -- --config FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-node-deps.sh
if [ ! -f build/agent/main.js ] || [ -n "$(find agent config -newer build/agent/main.js -print -quit)" ]; then
  npx --no-install tsc -p tsconfig.json
  node scripts/build-page.mjs
fi
exec node build/agent/main.js run "$@"
