#!/usr/bin/env bash
# The GPU check, sized for one call of at most 8 minutes on a fresh GPU machine (e.g. the device
# machine after `source .device/setup.sh`, or the Dockerfile.cuda build stage): builds featscope
# against that PyTorch with the Dockerfile's own steps, runs the GPU suite, the native oracle suites
# on that libtorch, then the benchmark side by side with the Python approach. Each step is timed
# and has a time limit (a stuck step fails and the rest still run); the table at the end sums up.
# Exits non-zero if a step failed.
#   bash scripts/gpu-check.sh     FEATSCOPE_PYTHON=python3 (default) picks the PyTorch;
#                                 FULL=1 adds the long CPU leak run and the CPU .pt2 suite
#
# Budget (H200, 16 CPUs, PyTorch 2.11; 2026-12-04 figures): build ~45 s, GPU suite ~130 s plus
# the CUDA .pt2 export (started in the background at the beginning, beside the build), native
# suites without the CPU .pt2 exports ~100 s, bench ~110 s.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
python=${FEATSCOPE_PYTHON:-python3}
export FEATSCOPE_PYTHON=$python
status=0
t_all=$(date +%s)
summary=()
section() { printf '\n=== %s (%s, %s s in)\n' "$*" "$(date +%T)" "$(($(date +%s) - t_all))"; }
# timed NAME LIMIT_S CMD...: runs CMD under a time limit, records its time and outcome.
timed() {
  local name=$1 limit=$2 t rc
  shift 2
  t=$(date +%s)
  timeout --kill-after=10 "$limit" "$@"
  rc=$?
  local took=$(($(date +%s) - t)) what=ok
  [ $rc = 124 ] || [ $rc = 137 ] && what="TIMED OUT (limit $limit s)"
  [ $rc != 0 ] && [ "$what" = ok ] && what="FAILED (exit $rc)"
  [ $rc != 0 ] && status=1
  echo "--- $name: $took s, $what"
  summary+=("$(printf '%-44s %5s s  %s' "$name" "$took" "$what")")
  return $rc
}
# The project's own TypeScript and jest (node_modules/.bin/tsc is tslab's older TypeScript).
tsc=(node node_modules/typescript/bin/tsc)
jest=(node node_modules/jest/bin/jest.js)

section "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$python" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")'
echo "node $(node --version), $(nproc) CPUs"
[ -f node_modules/typescript/bin/tsc ] || { echo "!!! node_modules/typescript is missing (carry it: it is needed to compile lib/)"; exit 1; }

# The CUDA .pt2 package of test/gpu/pt2-cuda.test.ts (same file and arguments), compiled by
# AOTInductor beside the native build; the GPU suite waits for it.
mkdir -p test/.cache
pt2=test/.cache/resnet18-cuda-taps.pt2
pt2_pid=
if [ ! -f "$pt2" ] && "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() and hasattr(torch, "export") else 1)' 2>/dev/null; then
  echo "exporting $pt2 in the background (log: /tmp/featscope-pt2-cuda.log)"
  ( t=$(date +%s); "$python" scripts/export-model.py "$pt2" --format pt2 --device cuda --taps layer1,layer2.0.relu,layer4 \
      --state-dict-out "$pt2.pth" >/tmp/featscope-pt2-cuda.log 2>&1; rc=$?; echo "export took $(($(date +%s) - t)) s, exit $rc" >>/tmp/featscope-pt2-cuda.log ) &
  pt2_pid=$!
fi

section "build against this machine's PyTorch (the steps of Dockerfile.cuda's build stage)"
export TORCH_CMAKE_PREFIX=${TORCH_CMAKE_PREFIX:-$("$python" -c 'import torch;print(torch.utils.cmake_prefix_path)')}
rm -rf build
timed "native build" 240 bash -o pipefail -c 'CMAKE_GENERATOR=Ninja node scripts/build-native.js 2>&1 | { grep -Ev "^\[[0-9]+/[0-9]+\] Building" || true; }' || { echo "!!! native build failed"; printf '%s\n' "${summary[@]}"; exit 1; }
ldd build/Release/featscope.node | grep -E 'libtorch|libc10|libcudart' | sed 's/ (0x.*//'
timed "TypeScript (the project's own tsc)" 120 "${tsc[@]}" -p tsconfig.json
if [ -f scripts/pack-prebuild.js ]; then
  timed "pack the prebuild" 60 node scripts/pack-prebuild.js
  # The prebuild must load on its own, as it does in the runtime image (no build/ there).
  mv build build.off && timed "the prebuild loads on its own (doctor)" 60 node dist/cli/main.js doctor; mv build.off build
fi
node -e "const f=require('./dist'); console.log(JSON.stringify(f.versions()))"

section "models"
[ -f models/resnet18.pt ] || timed "export models/resnet18.pt" 120 "$python" scripts/export-model.py models/resnet18.pt
if [ -n "$pt2_pid" ]; then
  t=$(date +%s)
  wait "$pt2_pid"
  echo "waited $(($(date +%s) - t)) s for the CUDA .pt2 export: $(tail -1 /tmp/featscope-pt2-cuda.log)"
  [ -f "$pt2" ] || { echo "!!! the CUDA .pt2 export failed:"; tail -15 /tmp/featscope-pt2-cuda.log; }
fi

section "GPU suite (test/gpu)"
timed "GPU suite" 240 "${jest[@]}" test/gpu --ci >/tmp/featscope-jest-gpu.log 2>&1
grep -E '✓|✕|○|Tests:|Suites:|●|Expected|Received|diff' /tmp/featscope-jest-gpu.log | head -120

section "native oracle suites on this libtorch"
# The CPU .pt2 suite (test/native/pt2) spends minutes compiling CPU packages and says nothing about
# CUDA (the CUDA package is tested in test/gpu); the 10,000-capture CPU leak run takes minutes too.
# FULL=1 includes both.
skip=(--testPathIgnorePatterns 'test/native/leak' 'test/native/pt2')
[ "${FULL:-0}" = 1 ] && skip=()
timed "native suites" 240 "${jest[@]}" test/native --ci --maxWorkers=4 "${skip[@]}" >/tmp/featscope-jest-native.log 2>&1
grep -E '✕|Tests:|Suites:|●|Expected|Received|diff' /tmp/featscope-jest-native.log | head -80

section "benchmark: featscope and the Python approach in one run"
[ -f bench/run.js ] && timed "bench (--runs 10 --rounds 2)" 200 node bench/run.js --runs 10 --rounds 2

section "summary ($(($(date +%s) - t_all)) s in all)"
printf '%s\n' "${summary[@]}"
exit $status
