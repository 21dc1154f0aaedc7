#!/usr/bin/env bash
# Builds the native backend under a sanitizer and runs the native tests with it:
#
#   scripts/sanitize.sh asan   AddressSanitizer + UndefinedBehaviorSanitizer (the one CI runs)
#   scripts/sanitize.sh tsan   ThreadSanitizer
#
# The build goes to build/sanitize-<mode>/ (binding.gyp and native/ copied there and built by node-gyp with the
# sanitizer's flags added), so build/Release, which everything else loads, is left alone. Then:
#   1. native/test/stress.c, linked against the sanitized kernel libraries: every kernel of every instruction
#      set on 1 to 4 threads (with tsan, the list three times), checking that results do not depend on the
#      thread count. Fully instrumented, this is where races in the pool and the row sweeps show.
#   2. asan only: the Node tests that use the native backend (backend-native, kernel-table, models, stacked,
#      memory, trajectory, bench) on the sanitized addon (ROAF_NATIVE_PATH), with the sanitizer's runtimes
#      preloaded into node. Node itself is not instrumented, so leak detection is off there (Node does not free
#      everything at exit). ThreadSanitizer cannot run them: V8's own threads synchronise in code it does not
#      see, and it reports races inside V8 (its job and garbage-collector threads) in every test process.
# A finding aborts the process that made it, so the script exits non-zero on any finding or failed test.
# docs/native.md explains how to read a report.
#
# Needs gcc with its sanitizer runtimes (Debian: gcc, which brings libasan, libubsan and libtsan), node-gyp
# (npm's own) and a TypeScript build (run `npm run build` first, or the script runs it).
# Environment: SANITIZE_OPT (default -O2; at -O1 the FMA-peak test's loop is too slow for the test's floor),
# SANITIZE_SKIP_NODE=1 (asan: the stress driver only).
set -euo pipefail

mode=${1:-}
root="$(cd "$(dirname "$0")/.." && pwd)"
case "$mode" in
  asan)
    flags="-fsanitize=address,undefined -fno-sanitize-recover=all"
    runtime="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
    export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    node_env=(ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0")
    repeat=1
    ;;
  tsan)
    flags="-fsanitize=thread"
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
    repeat=3  # the driver is ThreadSanitizer's whole run: three passes, more chances for a race to show
    ;;
  *)
    echo "usage: scripts/sanitize.sh asan|tsan" >&2
    exit 2
    ;;
esac

cd "$root"
out="build/sanitize-$mode"
opt="${SANITIZE_OPT:--O2}"
started=$(date +%s)
elapsed() { echo "$(($(date +%s) - started)) s"; }

# node-gyp: npm's own (npm passes its path to scripts), else the one beside this node, else a local one.
node_gyp="${npm_config_node_gyp:-}"
if [ -z "$node_gyp" ] || [ ! -f "$node_gyp" ]; then
  node_gyp="$(dirname "$(command -v node)")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
fi
[ -f "$node_gyp" ] || node_gyp="node_modules/node-gyp/bin/node-gyp.js"
[ -f "$node_gyp" ] || { echo "sanitize: node-gyp not found" >&2; exit 2; }
node_dir="$(dirname "$(command -v node)")/.."
gyp_args=(rebuild --jobs=max)
[ -f "$node_dir/include/node/node_api.h" ] && gyp_args+=("--nodedir=$node_dir")

echo "sanitize: building the addon with $flags $opt into $out (log: $out/build.log)"
rm -rf "$out"
mkdir -p "$out/pkg"
cp -r binding.gyp native "$out/pkg/"
if ! (cd "$out/pkg" && CC=gcc CFLAGS="$opt -g -fno-omit-frame-pointer $flags" LDFLAGS="$flags" \
  node "$node_gyp" "${gyp_args[@]}") >"$out/build.log" 2>&1; then
  grep -E "error|warning" "$out/build.log" | head -20 >&2 || true
  echo "sanitize: the build failed; see $out/build.log" >&2
  exit 1
fi
release="$out/pkg/build/Release"

echo "sanitize: [$(elapsed)] native/test/stress.c"
gcc $opt -g -fno-omit-frame-pointer $flags -std=gnu11 -Wall -Wextra -Werror -Inative/include native/test/stress.c \
  "$release/roaf_runtime.a" "$release"/roaf_kernels_*.a -lm -lpthread -o "$out/stress"
"$out/stress" --repeat "$repeat"

if [ "$mode" = asan ] && [ "${SANITIZE_SKIP_NODE:-}" != 1 ]; then
  [ -f dist/test/backend-native.test.js ] || npm run build
  echo "sanitize: [$(elapsed)] Node tests on the native backend"
  tests=(backend-native kernel-table models stacked memory trajectory bench spectrum-kernel)
  tests=("${tests[@]/#/dist/test/}")
  tests=("${tests[@]/%/.test.js}")
  env "${node_env[@]}" LD_PRELOAD="$runtime" \
    ROAF_NATIVE_PATH="$root/$release/roaf_native.node" node --test "${tests[@]}" >"$out/node-tests.log" 2>&1 || {
    grep -E -B2 -A30 "Sanitizer|runtime error|^not ok" "$out/node-tests.log" | head -120 >&2 || true
    echo "sanitize: Node tests failed under $mode; see $out/node-tests.log" >&2
    exit 1
  }
  grep -E "^# (tests|pass|fail|skipped)" "$out/node-tests.log"
  if grep -q -E "Sanitizer|runtime error" "$out/node-tests.log"; then
    echo "sanitize: a sanitizer reported in the Node tests; see $out/node-tests.log" >&2
    exit 1
  fi
fi
echo "sanitize: $mode clean [$(elapsed)]"
