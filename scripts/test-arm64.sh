#!/usr/bin/env bash
# The arm64 leg: the tests that exercise the agent's own code, run by an arm64 Node 20 under
# qemu-user on this x86_64 machine. Mocha itself runs on the arm64 Node, so every in-process test
# (config, MQTT contract, the device watcher and the lidar probe with serialport's linux-arm64
# prebuild over a pty, the container and update loops against the rig's x86 Docker engine) runs
# the agent's code as a robot's CPU would, and every agent the tests spawn (process.execPath) is
# the arm64 Node too, through the binfmt_misc entry scripts/arm64-deps.sh registers.
# The rig (dockerd, registry, mosquitto) stays native: it is the robot's environment, not the agent.
# Why this subset, and not the whole suite: README.md, "Tests on arm64".
#
#   bash scripts/test-arm64.sh [extra mocha args]        ends with "N passed, N failed"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-node-deps.sh
bash scripts/rig-deps.sh
node_arm64="$(bash scripts/arm64-deps.sh | tail -n 1)"
[ "$("$node_arm64" -p process.arch)" = arm64 ] || { echo "test-arm64: $node_arm64 is not an arm64 node" >&2; exit 1; }
rm -rf build
bash scripts/build.sh

# Emulated, the agent starts and answers 4 to 6 times slower (more on a loaded machine): the tests'
# waits and timeouts stretch by this factor (test/helpers/time-scale.ts); what they check does not.
export TEST_TIME_SCALE="${TEST_TIME_SCALE:-6}"
files=(
  'build/test/unit/**/*.test.js'
  build/test/integration/cli.test.js
  build/test/integration/mqtt-contract.test.js
  build/test/integration/devices-lidar-probe.test.js
  build/test/integration/devices-watch.test.js
  build/test/integration/containers.test.js
  build/test/integration/updates.test.js
)
# Left out here: the two tests whose subject is the agent's pace in wall-clock time (a backoff's
# attempts per second, a 1 s coalescing window against a heartbeat): an emulated CPU changes that
# pace itself, not the code. They run natively in npm test.
paced='coalesces a burst of changes into one section publish|reconnects to a refusing engine with growing delays'
exec "$node_arm64" node_modules/mocha/bin/mocha.js --no-config --require build/test/setup.js \
  --reporter test/reporter.cjs --timeout 20000 --exit --grep "$paced" --invert "${files[@]}" "$@"
