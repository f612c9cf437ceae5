#!/usr/bin/env bash
# Sets featscope up on this machine, doing only what is missing, and saying what it does:
#   1. libtorch: found in the documented order (scripts/find-libtorch.js); if none, installs
#      Debian's libtorch-dev python3-torch python3-torchvision with apt-get.
#   2. npm ci (its install step builds the native addon through node-gyp-build -> binding.gyp
#      -> scripts/build-native.js); a stale addon is rebuilt.
#   3. TypeScript -> dist/.
#   4. models/resnet18.pt: the default model, exported with the Python that has torch. Offline it
#      is UNTRAINED (fixed-seed init); set FEATSCOPE_WEIGHTS=imagenet where the internet is reachable.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
say() { printf 'featscope setup: %s\n' "$*"; }

if ! node scripts/find-libtorch.js >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    say "no libtorch found; installing Debian's libtorch-dev python3-torch python3-torchvision with apt-get"
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends libtorch-dev python3-torch python3-torchvision >/dev/null
  else
    node scripts/find-libtorch.js || true
    exit 1
  fi
fi
say "libtorch: $(node scripts/find-libtorch.js | cut -f2)"

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci (builds the native addon)"
  npm ci --no-audit --no-fund
fi

addon=build/Release/featscope.node
stale=$( [ -f "$addon" ] && find native CMakeLists.txt -newer "$addon" -print -quit || echo missing)
if [ -n "$stale" ]; then
  say "building the native addon"
  node scripts/build-native.js
fi

if [ ! -f dist/index.js ] || [ -n "$(find lib -newer dist/index.js -print -quit)" ]; then
  say "compiling TypeScript"
  npx tsc -p tsconfig.json
fi

python=${FEATSCOPE_PYTHON:-/usr/bin/python3}
if [ ! -f models/resnet18.pt ]; then
  weights=${FEATSCOPE_WEIGHTS:-none}
  say "exporting models/resnet18.pt (weights: $weights$([ "$weights" = none ] && echo ', UNTRAINED: set FEATSCOPE_WEIGHTS=imagenet online for trained ones'))"
  "$python" scripts/export-model.py models/resnet18.pt --weights "$weights"
fi
say "ready"
