#!/usr/bin/env bash
# Lint and format check, run by `npm test` (and `npm run lint`): eslint and prettier for the
# TypeScript/JavaScript, clang-format for native/. `bash scripts/lint.sh --fix` rewrites instead.
set -euo pipefail
cd "$(dirname "$0")/.."
fix=0; [ "${1:-}" = "--fix" ] && fix=1
cxx=(native/*.cc native/*.h)
if ! command -v clang-format >/dev/null 2>&1; then
  echo "featscope lint: clang-format is not installed; install it (Debian: apt-get install clang-format) or run scripts/setup.sh --test" >&2
  exit 1
fi
# The style file is checked against Debian bookworm's clang-format 14 (CI's); other majors format a
# few constructs differently, so there the C++ check is skipped with a notice instead of failing.
cf_major=$(clang-format --version | sed -E 's/.*version ([0-9]+).*/\1/')
if [ "$cf_major" != 14 ]; then
  echo "featscope lint: clang-format $cf_major found; the C++ style is pinned to clang-format 14, skipping native/" >&2
  cxx=()
fi
if [ $fix = 1 ]; then
  npx eslint --fix .
  npx prettier --write --log-level warn .
  [ ${#cxx[@]} = 0 ] || clang-format -i "${cxx[@]}"
else
  npx eslint .
  npx prettier --check --log-level warn . || { echo "featscope lint: run 'npm run format' to apply prettier" >&2; exit 1; }
  [ ${#cxx[@]} = 0 ] || clang-format --dry-run --Werror "${cxx[@]}" || { echo "featscope lint: run 'npm run format' to apply clang-format" >&2; exit 1; }
fi
# The published types, used by name as an application would (test/types/api.ts; needs dist/).
if [ -f dist/index.d.ts ]; then
  node node_modules/typescript/bin/tsc -p test/types || { echo "featscope lint: the public API's types changed (test/types/api.ts)" >&2; exit 1; }
else
  echo "featscope lint: no dist/ yet, type test of the public API skipped (npm run build:ts first)" >&2
fi
echo "featscope lint: eslint, prettier, clang-format and the public API's types clean"
