#!/usr/bin/env bash
# Builds the agent image (deploy/Dockerfile) from this clone (after npm ci): stages the tree
# install.sh installs (the release scripts/release.sh makes, with serialport's prebuilt binding
# for linux-arm64 and linux-x64), then `docker build` on it.
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
