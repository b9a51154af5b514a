#!/usr/bin/env bash
# Adds an operator or dashboard account to the fleet broker: it reads every robot's topics,
# sends requests and sets desired states, and reads the MQTT 5 replies addressed to it
# (<base>-replies/<name>/...). Writes the password to a file (mode 0600) for robot-fleet
# --password-file, reloads the broker. --rotate gives an existing operator a new password.
#
#   sudo deploy/broker/add-operator.sh [--rotate] [--out FILE] <name>
#
# --out: where the password goes (default ./<name>.mqtt-password).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

rotate=false out="" name=""
DIE_CODE=2
while [ $# -gt 0 ]; do
  case "$1" in
    --rotate) rotate=true; shift ;;
    --out) out="${2:?--out needs a file}"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$name" ] || die "one name at a time"; name="$1"; shift ;;
  esac
done
[ -n "$name" ] || die "which operator? add-operator.sh <name>"
valid_name "$name" || die "'$name' is not a valid name: 1-64 letters, digits, . _ -, starting with a letter or digit"
DIE_CODE=1
need_setup
if has_account "$name" && ! is_operator "$name"; then
  die "$name is a robot's account: an operator needs a name no robot has"
fi
if is_operator "$name" && [ "$rotate" = false ]; then
  die "$name already has an account: --rotate to give it a new password"
fi
if ! is_operator "$name" && [ "$rotate" = true ]; then die "$name has no operator account to rotate"; fi
out="${out:-./$name.mqtt-password}"
base="$(base_topic)"

pw="$(new_password)"
write_secret "$out" "$pw"
if ! is_operator "$name"; then
  # The robot patterns apply to every account, so they would let an operator publish a state
  # as a robot named like it: the deny (checked before any grant) closes that.
  printf '\nuser %s\ntopic deny %s/%s/#\ntopic read %s/#\ntopic write %s/+/request/#\ntopic write %s/+/desired\n' \
    "$name" "$base" "$name" "$base" "$base" "$base" >> "$acl"
fi
set_password "$name" "$pw"
unset pw
reload_broker

cat <<EOT
# $name: password in $out (mode 0600). With robot-fleet:
#   robot-fleet --broker mqtts://<broker>:8883 --ca fleet-ca.pem --username $name --password-file $out list
#   (or ROBOT_FLEET_BROKER, ROBOT_FLEET_CA, ROBOT_FLEET_USERNAME, ROBOT_FLEET_PASSWORD_FILE;
#    --cert/--key when the broker requires client certificates)
# MQTT 5 request/response: response topic $base-replies/$name/<robot id>/<anything>
EOT
