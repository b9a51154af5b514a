#!/usr/bin/env bash
# Sets up mosquitto 2.0 (Debian 12: apt-get install mosquitto mosquitto-clients) as the fleet
# broker: TLS listener, no anonymous access, per-robot accounts and ACL. Run as root; idempotent
# (an existing passwd and acl, with their accounts, are kept). Read docs/fleet-broker.md.
#
#   sudo deploy/broker/setup.sh --ca CA.pem --cert SERVER.pem --key SERVER.key [--base fleet]
#                               [--port 8883] [--bind ADDRESS] [--mutual-tls] [--conf-dir /etc/mosquitto/conf.d]
#
# --ca: the CA that signed the server certificate (and, with --mutual-tls, the clients').
# --bind: listen on one address only (default: every interface).
# Files go to FLEET_BROKER_DIR (default /etc/mosquitto/fleet). Then: systemctl restart mosquitto.
set -euo pipefail
# Keys and password hashes are never world-readable, not even while being copied.
umask 027
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

ca="" cert="" key="" base="fleet" port=8883 bind="" mutual=false confdir=/etc/mosquitto/conf.d
DIE_CODE=2
while [ $# -gt 0 ]; do
  case "$1" in
    --ca) ca="${2:?--ca needs a file}"; shift 2 ;;
    --cert) cert="${2:?--cert needs a file}"; shift 2 ;;
    --key) key="${2:?--key needs a file}"; shift 2 ;;
    --base) base="${2:?--base needs a topic}"; shift 2 ;;
    --port) port="${2:?--port needs a number}"; shift 2 ;;
    --bind) bind="${2:?--bind needs an address}"; shift 2 ;;
    --mutual-tls) mutual=true; shift ;;
    --conf-dir) confdir="${2:?--conf-dir needs a directory}"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
# The base topic lands in ACL lines and sed replacements: one topic level of plain characters.
valid_name "$base" || die "--base must be one topic level of letters, digits, . _ - (got $base)"
[[ "$bind" =~ ^[A-Za-z0-9.:-]*$ ]] || die "--bind must be an address or host name (got $bind)"
[[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "--port must be 1-65535"
DIE_CODE=1

mkdir -p "$dir/certs" "$confdir"
protect 0750 "$dir" "$dir/certs"
for pair in "ca.pem:$ca" "server.pem:$cert" "server.key:$key"; do
  dst="$dir/certs/${pair%%:*}" src="${pair#*:}"
  if [ -n "$src" ]; then
    [ -r "$src" ] || die "cannot read $src"
    cp "$src" "$dst"
  fi
  [ -f "$dst" ] || die "no $dst yet: give --ca, --cert and --key (the broker cannot start TLS without them)"
done
protect 0644 "$dir/certs/ca.pem" "$dir/certs/server.pem"
protect 0640 "$dir/certs/server.key"

if [ -f "$acl" ]; then
  had="$(base_topic)"
  [ "$had" = "$base" ] || die "$acl is for base topic '$had', not '$base': edit it by hand or move it away"
  echo "kept $acl"
else
  # Only topic words of pattern/topic lines change; comments keep naming the default.
  sed -E "s#^(pattern|topic)( [a-z]+)? fleet(-replies)?/#\\1\\2 ${base}\\3/#" "$here/acl" > "$acl"
  echo "wrote $acl"
fi
[ -f "$passwd" ] || : > "$passwd"
protect 0640 "$acl" "$passwd"

sed -e "s#/etc/mosquitto/fleet/#$dir/#g" -e "s#^listener 8883\$#listener $port${bind:+ $bind}#" \
    -e "s#^require_certificate false\$#require_certificate $mutual#" "$here/fleet.conf" > "$confdir/fleet.conf"
chmod 0644 "$confdir/fleet.conf"
echo "wrote $confdir/fleet.conf (listener $port, TLS, mutual TLS: $mutual)"
# Only where systemd runs the broker (not in a container, not in the tests).
units="${FLEET_SYSTEMD_DIR:-/etc/systemd/system}"
if [ -d "$units" ]; then
  mkdir -p "$units/mosquitto.service.d"
  cp "$here/mosquitto-limits.conf" "$units/mosquitto.service.d/fleet-limits.conf"
  echo "wrote $units/mosquitto.service.d/fleet-limits.conf (LimitNOFILE=65536); run systemctl daemon-reload"
fi
echo "next: systemctl restart mosquitto; then deploy/broker/add-robot.sh <robot id> and add-operator.sh <name>"
