# Shared by setup.sh, add-robot.sh and add-operator.sh (sourced, not run).
# FLEET_BROKER_DIR: where passwd, acl and certs/ live (default /etc/mosquitto/fleet).
# FLEET_BROKER_PIDFILE: the running broker, signalled to reload accounts (Debian's by default).

dir="${FLEET_BROKER_DIR:-/etc/mosquitto/fleet}"
passwd="$dir/passwd"
acl="$dir/acl"
pidfile="${FLEET_BROKER_PIDFILE:-/run/mosquitto/mosquitto.pid}"

die() { echo "$(basename "$0"): $*" >&2; exit "${DIE_CODE:-1}"; }

# Robot ids as the agent's config accepts them (config/schema.json robot.id): they become a
# topic level and a %u in the ACL, so no /, + or # can ever get in.
valid_name() { [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]]; }

need_setup() {
  [ -f "$passwd" ] && [ -f "$acl" ] || die "no $passwd or $acl: run deploy/broker/setup.sh first (or FLEET_BROKER_DIR)"
  command -v mosquitto_passwd >/dev/null || die "mosquitto_passwd not found: apt-get install mosquitto"
  # Two administrators adding accounts at once would each rewrite passwd and acl from a stale copy.
  exec 9>>"$dir/.accounts.lock"
  flock -w 30 9 || die "another account change holds $dir/.accounts.lock"
}

# The base topic the ACL was made for: the first robot pattern names it.
base_topic() { sed -nE 's#^pattern write (.+)/%u/availability$#\1#p' "$acl" | head -n 1; }

# Whole-word, literal comparisons: a "." in a name must not match any character.
has_account() { awk -F: -v n="$1" '$1 == n { found = 1 } END { exit !found }' "$passwd"; }
is_operator() { grep -qxF "user $1" "$acl"; }

# Group mosquitto reads, nobody else: the broker may read these after dropping root.
protect() {
  chmod "$1" "${@:2}"
  if getent group mosquitto >/dev/null; then chgrp mosquitto "${@:2}" 2>/dev/null || true; fi
}

# 32 letters and digits (~190 bits) from the kernel's random source.
new_password() {
  local pw=""
  while [ "${#pw}" -lt 32 ]; do pw="$pw$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"; done
  printf '%s' "${pw:0:32}"
}

# Sets an account's password. mosquitto_passwd reads it twice on stdin (printf is a shell
# builtin): never on a command line, where any user sees it in ps.
set_password() {
  local name="$1" pw="$2" out
  if ! out=$(printf '%s\n%s\n' "$pw" "$pw" | mosquitto_passwd "$passwd" "$name" 2>&1); then
    die "mosquitto_passwd could not set the password of $name: $out"
  fi
  protect 0640 "$passwd"
}

# Writes the password for the client, readable by its owner only (mqtt.passwordFile, --password-file).
write_secret() {
  local file="$1" pw="$2"
  ( umask 077; rm -f "$file"; printf '%s\n' "$pw" > "$file" ) || die "cannot write $file"
}

# Password and ACL files are reread on SIGHUP: new accounts work without dropping anyone.
reload_broker() {
  local pid
  if [ -r "$pidfile" ] && pid=$(cat "$pidfile") && [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
    kill -HUP "$pid" && echo "broker reloaded (pid $pid)"
  else
    echo "no running broker at $pidfile: the change applies when mosquitto starts (or: systemctl reload mosquitto)"
  fi
}
