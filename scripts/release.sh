#!/usr/bin/env bash
# Makes the release: one versioned tarball, robot-agent-<version>.tgz, that deploy/install.sh
# installs on a robot with `install.sh --from robot-agent-<version>.tgz`: no compiler, no clone,
# no network (the production dependencies are inside, with the serial port's native binding
# prebuilt for linux-arm64 and linux-x64). Run in a clone after `npm ci`.
#
#   bash scripts/release.sh [--out DIR]      (default DIR: dist/; prints the tarball's path last)
set -euo pipefail

out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "release.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

src="$(cd "$(dirname "$0")/.." && pwd)"
out="${out:-$src/dist}"
say() { echo "release.sh: $*" >&2; }
fail() { echo "release.sh: $1" >&2; exit "${2:-1}"; }

[ -d "$src/node_modules/typescript" ] || fail "no dependencies in $src: run npm ci first"
version="$(node -p "require('$src/package.json').version")"
name="robot-agent-$version"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
stage="$work/$name"
mkdir -p "$stage" "$out"

# Compiled apart from the clone's build/: a test run may be using that one.
say "compiling the agent into the release..."
cat > "$work/tsconfig.json" <<EOF
{
  "extends": "$src/tsconfig.json",
  "compilerOptions": {
    "rootDir": "$src", "outDir": "$stage/build", "sourceMap": false,
    "types": ["node"], "typeRoots": ["$src/node_modules/@types"]
  },
  "include": ["$src/agent/**/*.ts"]
}
EOF
(cd "$src" && npx --no-install tsc -p "$work/tsconfig.json")
chmod +x "$stage/build/agent/main.js" "$stage/build/agent/fleet/main.js"

cp -a "$src/config" "$src/package.json" "$src/package-lock.json" "$src/README.md" "$src/systemd" "$src/deploy" "$stage/"
[ -f "$src/CHANGELOG.md" ] && cp -a "$src/CHANGELOG.md" "$stage/"
mkdir -p "$stage/docs" && cp -a "$src/docs/schemas" "$src"/docs/*.md "$stage/docs/"

say "adding the production dependencies..."
# The contents, not the directory: in a worktree node_modules may be a link to a shared install,
# which npm prune below would otherwise prune for every checkout using it.
mkdir "$stage/node_modules"
cp -a "$src/node_modules/." "$stage/node_modules/"
(cd "$stage" && npm prune --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
# Native parts: serialport's prebuilt binding for the robots' architectures is kept and checked;
# the optional ones ssh2 built on this machine (for dockerode's unused ssh://) would be the wrong
# architecture on a robot, and ssh2 falls back to JavaScript without them.
bindings="$stage/node_modules/@serialport/bindings-cpp/prebuilds"
for arch in linux-arm64 linux-x64; do
  ls "$bindings/$arch"/*.node >/dev/null 2>&1 || fail "no prebuilt serial port binding for $arch in $bindings"
done
find "$bindings" -mindepth 1 -maxdepth 1 ! -name linux-arm64 ! -name linux-x64 -exec rm -rf {} +
rm -rf "$stage/node_modules/cpu-features/build" "$stage/node_modules/ssh2/lib/protocol/crypto/build"
leftover="$(find "$stage/node_modules" -name '*.node' ! -path "$bindings/*" -print -quit)"
[ -z "$leftover" ] || fail "a native module built for this machine only would ship: $leftover"

tarball="$out/$name.tgz"
tar -C "$work" --owner=0 --group=0 -czf "$tarball.part" "$name"
mv "$tarball.part" "$tarball"
(cd "$out" && sha256sum "$name.tgz" > "$name.tgz.sha256")
say "made $tarball ($(du -h "$tarball" | cut -f1)); install it on a robot with: sudo bash install.sh --from $name.tgz"
echo "$tarball"
