#!/usr/bin/env bash
# Sets featscope up on this machine, doing only what is missing, and saying what it does:
#   1. libtorch: found in the documented order (scripts/find-libtorch.js); if none, installs
#      Debian's libtorch-dev python3-torch python3-torchvision with apt-get.
#   2. npm ci (its install step, scripts/install.js, builds the native addon with
#      scripts/build-native.js unless a prebuild fits); a stale addon is rebuilt.
#   3. TypeScript -> dist/.
#   4. models/resnet18.pt: the default model, exported with the Python that has torch. Offline it
#      is UNTRAINED (fixed-seed init); set FEATSCOPE_WEIGHTS=imagenet where the internet is reachable.
# With --test (npm test) it also installs what the test suites use: Chromium (the report is opened
# in it), matplotlib (colour-map reference values), numpy, the DejaVu fonts and Jupyter's nbconvert
# (the notebook test).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
say() { printf 'featscope setup: %s\n' "$*"; }

sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
updated=""
apt_install() {  # apt_install WHY PACKAGE...
  local why=$1; shift
  if ! command -v apt-get >/dev/null 2>&1; then say "$why, and this is not a Debian/Ubuntu machine: install $* yourself"; return 1; fi
  say "$why; installing $* with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  [ -n "$updated" ] || { $sudo apt-get update -qq; updated=1; }
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! node scripts/find-libtorch.js >/dev/null 2>&1; then
  apt_install "no libtorch found" libtorch-dev python3-torch python3-torchvision || { node scripts/find-libtorch.js || true; exit 1; }
fi
missing=()
for tool in cmake g++ make; do command -v $tool >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "the native build needs ${missing[*]}" cmake g++ make
fi
if [ "${1:-}" = "--test" ]; then
  need=()
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v clang-format >/dev/null 2>&1 || need+=(clang-format)
  command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg) # video clips (test/e2e/video.test.ts)
  /usr/bin/python3 -c 'import matplotlib' 2>/dev/null || need+=(python3-matplotlib)
  /usr/bin/python3 -c 'import numpy' 2>/dev/null || need+=(python3-numpy)
  /usr/bin/python3 -c 'import sklearn' 2>/dev/null || need+=(python3-sklearn) # concepts: the NMF oracle
  /usr/bin/python3 -c 'import scipy.ndimage, scipy.stats' 2>/dev/null || need+=(python3-scipy)
  [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
  # The notebook test executes examples/feature-maps.ipynb with Jupyter (Debian's nbconvert) on tslab.
  /usr/bin/python3 -c 'import nbconvert, nbclient, ipykernel' 2>/dev/null || need+=(jupyter-nbconvert python3-nbclient python3-ipykernel)
  if [ ${#need[@]} -gt 0 ]; then apt_install "the tests use ${need[*]}" "${need[@]}"; fi
fi
found=$(node scripts/find-libtorch.js)
say "libtorch $(printf '%s' "$found" | cut -f3): $(printf '%s' "$found" | cut -f2)"

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci (builds the native addon)"
  npm ci --no-audit --no-fund
fi

# examples/feature-maps.ipynb imports 'featscope' by name. Node finds it in the checkout through
# package.json's exports, but tslab's TypeScript resolves modules the pre-exports way (node_modules
# folders only): link the checkout into its own node_modules, where an install would put it.
if [ ! -e node_modules/featscope ]; then
  ln -sfn .. node_modules/featscope
  say "linked node_modules/featscope to the checkout (for the notebook's TypeScript)"
fi

addon=build/Release/featscope.node
stale=$( [ -f "$addon" ] && find native CMakeLists.txt -newer "$addon" -print -quit || echo missing)
# The libtorch the addon was built against (build/.featscope-libtorch, written by the build): a
# different folder or version since then means a rebuild.
want_stamp=$(printf '%s\t%s' "$(printf '%s' "$found" | cut -f1)" "$(printf '%s' "$found" | cut -f3)")
if [ -z "$stale" ] && [ "$(cat build/.featscope-libtorch 2>/dev/null)" != "$want_stamp" ]; then
  stale="libtorch changed"
  say "the addon was built against $(cut -f2 build/.featscope-libtorch 2>/dev/null || echo 'an unrecorded libtorch'); now found $(printf '%s' "$found" | cut -f3): rebuilding"
  rm -rf build/cmake
fi
if [ -n "$stale" ]; then
  say "building the native addon"
  node scripts/build-native.js
fi

if [ ! -f dist/index.js ] || [ -n "$(find lib -newer dist/index.js -print -quit)" ]; then
  say "compiling TypeScript"
  node node_modules/typescript/bin/tsc -p tsconfig.json
fi

python=${FEATSCOPE_PYTHON:-/usr/bin/python3}
if [ ! -f models/resnet18.pt ]; then
  weights=${FEATSCOPE_WEIGHTS:-none}
  say "exporting models/resnet18.pt (weights: $weights$([ "$weights" = none ] && echo ', UNTRAINED: set FEATSCOPE_WEIGHTS=imagenet online for trained ones'))"
  "$python" scripts/export-model.py models/resnet18.pt --weights "$weights"
fi
say "ready"
