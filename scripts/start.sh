#!/usr/bin/env bash
# Runs the agent from a fresh clone: installs node deps, builds, then runs on the embedded
# defaults (config/default.yaml) unless arguments say otherwise, e.g. `npm start -- --config FILE`.
# Each step says what it does first: a first start spends ~30 s in npm ci and tsc, and a silent
# terminal for that long looks hung.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "start.sh: $*" >&2; }
bash scripts/ensure-node-deps.sh
if [ ! -f build/agent/main.js ] || [ -n "$(find agent config -newer build/agent/main.js -print -quit)" ]; then
  say "compiling the agent (tsc, about 10 s)..."
  bash scripts/build.sh
fi
say "starting robot-agent run $* (JSON log lines follow; Ctrl-C stops it)"
exec node build/agent/main.js run "$@"
