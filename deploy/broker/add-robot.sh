#!/usr/bin/env bash
# Adds a robot's account to the fleet broker (username = robot id, a generated password), writes
# the password to a file (mode 0600) for the robot's mqtt.passwordFile, reloads the broker and
# prints the agent's config. --rotate gives an existing robot a new password (the old one stops
# working at the reload: install the new file on the robot and restart its agent).
#
#   sudo deploy/broker/add-robot.sh [--rotate] [--out FILE] [--broker URL] <robot id>
#
# --out: where the password goes (default ./<robot id>.mqtt-password); --broker: the URL the
# robot uses (default mqtts://<this host's name>:8883, or FLEET_BROKER_URL).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

rotate=false out="" url="${FLEET_BROKER_URL:-}" id=""
DIE_CODE=2
while [ $# -gt 0 ]; do
  case "$1" in
    --rotate) rotate=true; shift ;;
    --out) out="${2:?--out needs a file}"; shift 2 ;;
    --broker) url="${2:?--broker needs a URL}"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$id" ] || die "one robot id at a time"; id="$1"; shift ;;
  esac
done
[ -n "$id" ] || die "which robot? add-robot.sh <robot id>"
valid_name "$id" || die "'$id' is not a robot id (robot.id): 1-64 letters, digits, . _ -, first a letter or digit"
DIE_CODE=1
need_setup
is_operator "$id" && die "$id is an operator account: a robot needs an id of its own"
if has_account "$id" && [ "$rotate" = false ]; then
  die "$id already has an account: --rotate to give it a new password"
fi
if ! has_account "$id" && [ "$rotate" = true ]; then die "$id has no account to rotate"; fi
out="${out:-./$id.mqtt-password}"
url="${url:-mqtts://$(hostname -f 2>/dev/null || hostname):8883}"
base="$(base_topic)"

pw="$(new_password)"
# The file first: a password the broker knows but nobody kept would lock the robot out.
write_secret "$out" "$pw"
set_password "$id" "$pw"
unset pw
reload_broker

cat <<SNIPPET
# $id: password in $out (mode 0600). Copy it to the robot as /etc/robot-agent/mqtt.password
# (owner root, mode 0600), then delete it here. In /etc/robot-agent/config.yaml:
robot:
  id: $id
mqtt:
  url: $url
  baseTopic: $base
  ca: /etc/robot-agent/tls/fleet-ca.pem     # the CA that signed the broker's certificate
  username: $id
  passwordFile: /etc/robot-agent/mqtt.password
  # cert: /etc/robot-agent/tls/$id.pem       # when the broker requires client certificates
  # key: /etc/robot-agent/tls/$id.key
SNIPPET
