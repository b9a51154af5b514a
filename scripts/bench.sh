#!/usr/bin/env bash
# Benchmarks: print figures, never pass/fail. Needs the rig's packages (root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-node-deps.sh
bash scripts/rig-deps.sh
bash scripts/build.sh
node build/bench/idle-footprint.js
node build/bench/traffic-budget.js
node build/bench/devices-hotplug.js
node build/bench/image-pull.js
node build/bench/container-replug.js
node build/bench/update-downtime.js
node build/bench/snapshot-push.js
node build/bench/ping-latency.js
node build/bench/serial-reopen.js
node build/bench/fleet-sim.js
node build/bench/dashboard.js
node build/bench/soak.js  # SOAK_MINUTES (20) under load; see docs/operations.md#soak
