#!/usr/bin/env bash
# Installs node_modules from the lock file when they are missing or older than the lock.
# A node_modules that is a symbolic link is a shared install (git worktrees share one): npm ci
# would empty the directory it points to, under every other checkout using it, so it is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -L node_modules ]; then
  exit 0
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "ensure-node-deps.sh: installing the node dependencies (npm ci, about 20 s the first time)..." >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
