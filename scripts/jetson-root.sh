#!/usr/bin/env bash
# The closest to a Jetson Nano's userland (Ubuntu 18.04 arm64, Docker 20.10) this project can make
# without arm64 hardware: an arm64 Debian root with Docker 20.10's CLI, in which deploy/install.sh runs
# under qemu-user (binfmt_misc, scripts/arm64-deps.sh). Ubuntu's arm64 archive (ports.ubuntu.com) is
# not reachable from the machines this was made on, and no Ubuntu release has Docker 20.10.21+ for arm64
# on the Debian mirror, so it is Debian bookworm (docker.io 20.10.24); the tests fake only the
# glibc version getconf reports (2.27, Ubuntu 18.04's). --variant=extract: packages unpacked, no
# maintainer scripts run (minutes instead of a quarter of an hour under emulation).
# Cached as .cache/arm64/jetson-root-bookworm-arm64-2.tar (-2: with util-linux, for flock(1)); prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cache="$PWD/.cache/arm64"
out="$cache/jetson-root-bookworm-arm64-2.tar"
if [ ! -s "$out" ]; then
  mkdir -p "$cache"
  work="$(mktemp -d "$cache/jetson.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  echo "jetson-root: building an arm64 root with Docker 20.10 from $mirror" >&2
  root="$work/root"
  mmdebstrap --quiet --arch=arm64 --variant=extract \
    --include=base-files,base-passwd,libc6,libc-bin,bash,dash,coreutils,sed,grep,findutils,util-linux,docker.io \
    bookworm "$root" "$mirror"
  ln -sf dash "$root/bin/sh"
  printf 'root:x:0:0:root:/root:/bin/bash\n' > "$root/etc/passwd"
  printf 'root:x:0:\ndocker:x:998:\n' > "$root/etc/group"
  mkdir -p "$root/run" "$root/tmp" "$root/root"
  chmod 1777 "$root/tmp"
  # As base-files' postinst would make it: /var/run a link to /run (where the tests put the socket).
  rmdir "$root/var/run" 2>/dev/null || true
  [ -e "$root/var/run" ] || ln -s /run "$root/var/run"
  tar -C "$root" --numeric-owner -cf "$work/root.tar" .
  mv "$work/root.tar" "$out"
fi
echo "$out"
