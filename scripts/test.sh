#!/usr/bin/env bash
# The whole test suite from a fresh clone: dependencies, the rig's Debian packages, build, mocha.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-node-deps.sh
bash scripts/rig-deps.sh
# The agent image and Jetson tests build and run arm64 code (qemu-user, binfmt_misc, mmdebstrap).
bash scripts/arm64-deps.sh >/dev/null
rm -rf build
bash scripts/build.sh
exec npx --no-install mocha "$@"
