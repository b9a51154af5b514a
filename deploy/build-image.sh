#!/usr/bin/env bash
# Builds the agent image (deploy/Dockerfile) from this checkout once built (npm run build):
# stages the tree install.sh would install, then `docker build` on it. Build on the robot's
# architecture (or with buildx for it): serialport's native binding is taken from node_modules.
#
#   bash deploy/build-image.sh [TAG]        (default robot-agent:<package version>)
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
tag="${1:-robot-agent:$(node -p "require('$src/package.json').version")}"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
bash "$src/deploy/install.sh" --root "$stage" >/dev/null
docker build -q -f "$src/deploy/Dockerfile" -t "$tag" "$stage/opt/robot-agent"
echo "$tag"
