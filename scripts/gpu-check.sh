#!/usr/bin/env bash
# The GPU check: on a machine with CUDA and PyTorch (e.g. the device machine, after
# `source .device/setup.sh`, or the Dockerfile.cuda build stage), builds featscope against that
# PyTorch with the Dockerfile's own steps, runs the GPU and native test suites, then the benchmark
# side by side with the Python approach. Prints everything; exits non-zero if a step failed.
#   bash scripts/gpu-check.sh            FEATSCOPE_PYTHON=python3 (default) picks the PyTorch;
#                                        FULL=1 adds the long CPU leak run
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
python=${FEATSCOPE_PYTHON:-python3}
export FEATSCOPE_PYTHON=$python FEATSCOPE_TEST_PYTHON=$python
status=0
section() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }
step() { "$@" || { echo "!!! failed: $*"; status=1; }; }

section "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$python" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")'
echo "node $(node --version)"

section "build against this machine's PyTorch (the steps of Dockerfile.cuda's build stage)"
export TORCH_CMAKE_PREFIX=${TORCH_CMAKE_PREFIX:-$("$python" -c 'import torch;print(torch.utils.cmake_prefix_path)')}
rm -rf build
t0=$(date +%s)
CMAKE_GENERATOR=Ninja node scripts/build-native.js 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\] Building' || { echo "!!! native build failed"; exit 1; }
echo "native build: $(( $(date +%s) - t0 )) s"
ldd build/Release/featscope.node | grep -E 'libtorch|libc10' | sed 's/ (0x.*//'
step npx tsc -p tsconfig.json
if [ -f scripts/pack-prebuild.js ]; then
  step node scripts/pack-prebuild.js
  # The prebuild must load on its own, as it does in the runtime image (no build/ there).
  mv build build.off && step node dist/cli/main.js doctor; mv build.off build
fi
step node -e "const f=require('./dist'); console.log(JSON.stringify(f.versions()))"

section "models"
mkdir -p models
[ -f models/resnet18.pt ] || step "$python" scripts/export-model.py models/resnet18.pt

section "tests: GPU suite, then the native suite on this libtorch"
# The 10,000-capture CPU leak run takes minutes and says nothing about CUDA: FULL=1 includes it.
skip=(--testPathIgnorePatterns 'test/native/leak')
[ "${FULL:-0}" = 1 ] && skip=()
npx jest test/gpu test/native --ci "${skip[@]}" > /tmp/featscope-jest.log 2>&1 || { echo "!!! tests failed"; status=1; }
grep -E '✓|✕|○|Tests:|Suites:|●|Expected|Received|diff' /tmp/featscope-jest.log | head -150

section "benchmark: featscope and the Python approach in one run"
[ -f bench/run.js ] && step node bench/run.js
exit $status
