#!/usr/bin/env bash
# The linter and the formatter over the code (issue 13): eslint (eslint.config.js: typescript-eslint with
# type information) and prettier --check (.prettierrc.json, .prettierignore). `npm run lint` runs both;
# test/integration/code-style.test.ts runs each in CI through this script, so the two cannot drift.
#
#   bash scripts/lint.sh                      both; exit 1 if either found something
#   bash scripts/lint.sh eslint [args...]     one of them, with extra arguments (e.g. --format json)
#   bash scripts/lint.sh prettier [args...]
# To fix what prettier found: npx --no-install prettier --write <files>
set -uo pipefail
cd "$(dirname "$0")/.."
paths=(agent test bench)
only="${1:-}"
case "$only" in
  '' | eslint | prettier) ;;
  *) echo "lint.sh: unknown tool $only (eslint or prettier)" >&2; exit 2 ;;
esac
[ $# -gt 0 ] && shift
status=0
if [ -z "$only" ] || [ "$only" = eslint ]; then
  node node_modules/eslint/bin/eslint.js "$@" "${paths[@]}" || status=1
fi
if [ -z "$only" ] || [ "$only" = prettier ]; then
  node node_modules/prettier/bin/prettier.cjs --check "$@" "${paths[@]}" eslint.config.js || status=1
fi
exit "$status"
