#!/usr/bin/env bash
# Installs the Debian packages the test rig runs (a real dockerd, registry and broker), only
# when missing. Never starts or enables their system services: the tests run private instances.
set -euo pipefail
declare -A pkg_of=(
  [dockerd]=docker.io [docker]=docker.io [docker-registry]=docker-registry
  [mosquitto]=mosquitto [mosquitto_pub]=mosquitto-clients [mosquitto_passwd]=mosquitto
  [socat]=socat [busybox]=busybox-static [openssl]=openssl [umount]=mount [tar]=tar [htpasswd]=apache2-utils
  [systemd-analyze]=systemd [systemd-notify]=systemd
  # test/security/signed-commands.test.ts moves the agent's clock with libfaketime.
  [faketime]=faketime
  # The dashboard's browser tests drive Debian's chromium through puppeteer-core.
  [chromium]=chromium
)
missing=()
for bin in "${!pkg_of[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$bin" >/dev/null 2>&1 || missing+=("${pkg_of[$bin]}")
done
# The fixture images copy /bin/busybox into an empty rootfs: it must be the static build.
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || missing+=(busybox-static)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "rig-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi
mapfile -t unique < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "rig-deps: installing ${unique[*]}" >&2
# Package scripts must not start system daemons: exit 101 = "not allowed" for invoke-rc.d.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
fi
trap '[ $created_policy = 1 ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${unique[@]}" >/dev/null
# Where systemd runs anyway, make sure the packaged services are not left running.
for svc in docker docker.socket containerd mosquitto docker-registry; do
  systemctl stop "$svc" >/dev/null 2>&1 || true
done
