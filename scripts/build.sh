#!/usr/bin/env bash
# The one build: TypeScript to build/, the dashboard page bundled into build/dashboard, and the two
# commands made executable (tsc writes 0644; `npx robot-agent` in a clone runs the file itself).
set -euo pipefail
cd "$(dirname "$0")/.."
npx --no-install tsc -p tsconfig.json
node scripts/build-page.mjs
chmod +x build/agent/main.js build/agent/fleet/main.js
