#!/usr/bin/env bash
# Installs robot-fleet-agent on a robot (Ubuntu, arm64 or x86_64) from a release tarball
# (scripts/release.sh: compiled agent and production dependencies; no compiler, no network), or
# from this clone after `npm ci` (a release is made first). Idempotent: run it again to upgrade;
# the config (/etc/robot-agent) and the state (/var/lib/robot-agent) are kept.
#
#   sudo bash install.sh --from robot-agent-X.Y.Z.tgz [--config FILE] [--no-start]
#   sudo bash deploy/install.sh [--config FILE] [--no-start]   (from a clone)
#   sudo bash deploy/install.sh --container IMAGE [--config FILE]   (the agent as a container)
#   sudo bash deploy/install.sh --uninstall [--purge]      (--purge also removes config and state)
#   bash deploy/install.sh --root DIR ...                   (into a directory tree: tests, images)
#
# Needs Docker 20.10.21 or newer, and Node.js 20.19 or newer (package.json's engines) unless
# --container. Jetson Nano boards on Ubuntu 18.04 (glibc 2.27) cannot run current Node: there,
# --container with the agent image (deploy/Dockerfile, built for arm64 elsewhere and pushed or
# `docker load`ed).
set -euo pipefail

root=""
config=""
uninstall=0
purge=0
start=1
image=""
from=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="${2:?--root needs a directory}"; shift 2 ;;
    --config) config="${2:?--config needs a file}"; shift 2 ;;
    --uninstall) uninstall=1; shift ;;
    --purge) purge=1; shift ;;
    --no-start) start=0; shift ;;
    --container) image="${2:?--container needs an image reference}"; shift 2 ;;
    --from) from="${2:?--from needs a release tarball (robot-agent-X.Y.Z.tgz)}"; shift 2 ;;
    # The comment block above, without its '#' and without the code after it.
    -h|--help) sed -n '2,/^[^#]/p' "$0" | sed -n '/^#/s/^# \{0,1\}//p'; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

src="$(cd "$(dirname "$0")/.." && pwd)"
opt="$root/opt/robot-agent"
etc="$root/etc/robot-agent"
state="$root/var/lib/robot-agent"
unit="$root/etc/systemd/system/robot-agent.service"
rules="$root/etc/udev/rules.d/99-robot-agent.rules"
bin="$root/usr/local/bin"
live=0
[ -z "$root" ] && [ -d /run/systemd/system ] && live=1

say() { echo "install.sh: $*"; }
# fail MESSAGE [EXIT_CODE]: the code is not part of the sentence.
fail() { echo "install.sh: $1" >&2; exit "${2:-1}"; }

# a.b.c >= x.y.z
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

if [ "$uninstall" = 1 ]; then
  if [ "$live" = 1 ]; then
    systemctl disable --now robot-agent.service >/dev/null 2>&1 || true
  fi
  rm -rf "$opt" "$unit" "$rules" "$bin/robot-agent" "$bin/robot-fleet"
  [ "$purge" = 1 ] && rm -rf "$etc" "$state"
  if [ "$live" = 1 ]; then
    systemctl daemon-reload
    command -v udevadm >/dev/null && udevadm control --reload || true
  fi
  if [ "$purge" = 1 ]; then say "uninstalled (config and state removed)"; else say "uninstalled (kept $etc and $state)"; fi
  exit 0
fi

# Node 20's release binaries need glibc 2.28 or newer. A Jetson Nano's Ubuntu 18.04 has 2.27: there no
# Node 20 runs on the host at all, so say so before anything else, and point to the container path.
# The version comes from getconf (part of libc-bin, on every glibc system); none = not glibc, not checked.
check_glibc_for_node() {
  local line version
  line="$(getconf GNU_LIBC_VERSION 2>/dev/null || true)"
  version="${line#glibc }"
  [ -n "$line" ] && [ "$version" != "$line" ] || return 0
  version_ge "$version" 2.28 && return 0
  echo "install.sh: glibc_too_old: this system's C library is glibc $version, and Node 20 needs glibc 2.28 or" \
    "newer (Ubuntu 18.04, as on a Jetson Nano, has 2.27). Install the agent as a container instead:" \
    "sudo bash deploy/install.sh --container IMAGE (the agent image for arm64, see docs/operations.md)" >&2
  exit 3
}

# Checks first: nothing is written on a robot that cannot run the agent.
[ -n "$image" ] || check_glibc_for_node
if [ -n "$from" ]; then
  [ -f "$from" ] || fail "no release tarball at $from" 2
  from="$(cd "$(dirname "$from")" && pwd)/$(basename "$from")"
elif [ -z "$image" ]; then
  [ -d "$src/node_modules" ] \
    || fail "no dependencies in $src: run npm ci first, or install a release with --from robot-agent-X.Y.Z.tgz"
fi
docker_version="$(docker version --format '{{.Server.Version}}' 2>/dev/null || true)"
[ -n "$docker_version" ] || fail "cannot reach the Docker engine (is docker.service running, and are you root?)" 3
version_ge "${docker_version%%[-+]*}" 20.10.21 || fail "Docker $docker_version is too old: 20.10.21 or newer is needed" 3
install_common() {
  mkdir -p "$etc" "$(dirname "$unit")" "$(dirname "$rules")"
  install -d -m 0750 "$state"
  if [ -e "$etc/config.yaml" ]; then
    say "kept the existing $etc/config.yaml"
  else
    install -m 0640 "${config:-$src/config/default.yaml}" "$etc/config.yaml"
    say "wrote $etc/config.yaml: set mqtt.url and the containers, then restart the agent"
  fi
  install -m 0644 "$src/deploy/udev/99-robot-agent.rules" "$rules"
}

activate() {
  if [ "$live" = 1 ]; then
    command -v udevadm >/dev/null && { udevadm control --reload; udevadm trigger --subsystem-match=tty --subsystem-match=usb; } || true
    systemctl daemon-reload
    if [ "$start" = 1 ]; then
      systemctl enable robot-agent.service >/dev/null
      systemctl restart robot-agent.service
      say "started: journalctl -u robot-agent -f"
    fi
  fi
  say "installed"
}

if [ -n "$image" ]; then
  # The agent as a container: no Node on the robot, the same config, state and udev rules.
  [ -n "$root" ] || docker image inspect "$image" >/dev/null 2>&1 || docker pull "$image" >/dev/null || fail "image $image is neither here nor pullable (docker load it from a tar first)" 3
  say "Docker $docker_version: installing the agent image $image into ${root:-/}"
  install_common
  rm -rf "$opt" "$bin/robot-agent" "$bin/robot-fleet"
  sed "s#^  robot-agent:0.1.0\$#  $image#" "$src/deploy/robot-agent-container.service" > "$unit"
  chmod 0644 "$unit"
  activate
  exit 0
fi

node_bin="$(command -v node || true)"
jetson="on Jetson Nano / Ubuntu 18.04, use --container IMAGE with the agent image: deploy/Dockerfile"
[ -n "$node_bin" ] || fail "Node.js is not installed: install Node 20.19 or newer ($jetson)" 3
node_version="$("$node_bin" -v)"

# The package: the release tarball, or one made now from this clone. Unpacked beside /opt/robot-agent
# and swapped in whole below.
mkdir -p "$(dirname "$opt")" "$bin"
staging="$(mktemp -d "$opt.new.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
if [ -z "$from" ]; then
  say "making a release from $src (scripts/release.sh)..."
  from="$(bash "$src/scripts/release.sh" --out "$staging")"
fi
tar -xzf "$from" -C "$staging" || fail "cannot unpack $from: is it a robot-agent release tarball?" 2
pkg="$(find "$staging" -mindepth 1 -maxdepth 1 -type d -name 'robot-agent-*' -print -quit)"
[ -n "$pkg" ] && [ -f "$pkg/build/agent/main.js" ] && [ -d "$pkg/node_modules" ] \
  || fail "$from is not a robot-agent release (no robot-agent-*/build/agent/main.js with node_modules)" 2
# The package names the Node it needs (package.json engines, e.g. ">=20.19"): one place to change it.
node_min="$(sed -n 's/^ *"node": *">= *\([0-9.]*\)".*/\1/p' "$pkg/package.json" | head -n1)"
node_min="${node_min:-20.19}"
version_ge "${node_version#v}" "$node_min" || fail "Node $node_version is too old: $node_min or newer is needed ($jetson)" 3
release_version="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pkg/package.json" | head -n1)"
# From here on, the config template, udev rules and unit are the release's own.
src="$pkg"

say "Docker $docker_version, Node $node_version: installing robot-agent $release_version into ${root:-/}"
install_common
# Swapped whole: a robot never runs half an old and half a new agent.
rm -rf "$opt.old"
[ -d "$opt" ] && mv "$opt" "$opt.old"
mv "$pkg" "$opt"
rm -rf "$staging"
trap - EXIT
src="$opt"
rm -rf "$opt.old"
ln -sfn /opt/robot-agent/build/agent/main.js "$bin/robot-agent"
ln -sfn /opt/robot-agent/build/agent/fleet/main.js "$bin/robot-fleet"
chmod +x "$opt/build/agent/main.js" "$opt/build/agent/fleet/main.js"

sed "s#^ExecStart=/usr/bin/node #ExecStart=$node_bin #" "$src/systemd/robot-agent.service" > "$unit"
chmod 0644 "$unit"
activate
