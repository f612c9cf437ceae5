#!/usr/bin/env bash
# The native suites under AddressSanitizer: builds the addon with -fsanitize=address into
# build/asan (the normal build is untouched), preloads libasan into node (node itself is not
# instrumented; libtorch neither) and runs test/native against that addon, or only the test files
# or folders given (other arguments go to jest as they are).
#
#   bash scripts/test-asan.sh                              all of test/native
#   bash scripts/test-asan.sh test/native/loops.test.ts    that file only
# Leak detection is off: V8 and libtorch keep process-lifetime allocations that LeakSanitizer
# reports at exit; leaks are covered by the RSS-bounded capture loops instead.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
FEATSCOPE_BUILD_DIR=build/asan FEATSCOPE_SANITIZE=address node scripts/build-native.js --debug
libasan=$(g++ -print-file-name=libasan.so)
[ -f "$libasan" ] || { echo "test-asan: libasan.so not found (install g++)"; exit 1; }
export FEATSCOPE_ADDON=$root/build/asan/featscope.node
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_odr_violation=0:allocator_may_return_null=1
export LD_PRELOAD=$libasan
# The 10,000-capture leak run is covered without ASan (it measures RSS, which ASan inflates).
paths=()
for a in "$@"; do [ -e "$a" ] && paths+=("$a"); done
[ ${#paths[@]} -gt 0 ] || set -- test/native "$@"
exec npx jest "$@" --testPathIgnorePatterns leak
