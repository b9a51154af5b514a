#!/usr/bin/env bash
# Builds the agent image (deploy/Dockerfile) for linux/amd64 and linux/arm64 from this checkout once
# built (npm run build), on any Docker engine, without buildx: stages the tree install.sh would
# install (the release scripts/release.sh makes), makes the base for each architecture
# (deploy/base-image.sh: pulled, or from Debian packages), then `docker build` on it. The Dockerfile only copies files (no RUN), so building the
# arm64 image runs no arm64 code; the image takes its architecture from its base. serialport ships
# its native binding prebuilt for both (node-gyp-build picks one at run time); any other native
# build in node_modules is for this machine only, so it is left out of an image for another CPU
# (ssh2 and cpu-features: optional, both fall back to JavaScript).
#
#   bash deploy/build-image.sh [--platform linux/amd64|linux/arm64] [TAG]
#     one platform: the image is TAG;  none: both, as TAG-amd64 and TAG-arm64.
#     (TAG defaults to robot-agent:<package version>.)  Prints the image names, one a line.
#   Then: docker save TAG-arm64 | ssh robot docker load;  install.sh --container TAG-arm64 there.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
platforms=(linux/amd64 linux/arm64)
tag=""
while [ $# -gt 0 ]; do
  case "$1" in
    --platform) platforms=("${2:?--platform needs linux/amd64 or linux/arm64}"); shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) tag="$1"; shift ;;
  esac
done
tag="${tag:-robot-agent:$(node -p "require('$src/package.json').version")}"
host_arch="$(uname -m | sed -e 's/x86_64/amd64/' -e 's/aarch64/arm64/')"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
bash "$src/deploy/install.sh" --root "$stage/host" >/dev/null
for platform in "${platforms[@]}"; do
  arch="${platform#linux/}"
  case "$platform" in linux/amd64|linux/arm64) ;; *) echo "build-image.sh: no image for $platform (linux/amd64 or linux/arm64)" >&2; exit 2 ;; esac
  name="$tag"
  [ ${#platforms[@]} -gt 1 ] && name="$tag-$arch"
  base="$(bash "$src/deploy/base-image.sh" "$arch")"
  tree="$stage/$arch"
  cp -a "$stage/host/opt/robot-agent" "$tree"
  if [ "$arch" != "$host_arch" ]; then
    # Native builds made for this machine's CPU (not prebuilds/, which carry every CPU's).
    find "$tree/node_modules" -path '*/build/Release' -type d -prune -exec rm -rf {} +
  fi
  docker build -q --build-arg "BASE=$base" -f "$src/deploy/Dockerfile" -t "$name" "$tree" >/dev/null
  built_arch="$(docker image inspect -f '{{.Architecture}}' "$name")"
  [ "$built_arch" = "$arch" ] || { echo "build-image.sh: $name came out as $built_arch, not $arch" >&2; exit 3; }
  echo "$name"
done
