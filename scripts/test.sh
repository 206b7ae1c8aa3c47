#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what is missing, then
#   1. builds with warnings as errors and runs every meson test suite
#      (unit, integration, conformance, units, fuzz corpus replay);
#   2. builds again with ASan + UBSan and runs the suites under them;
#   3. builds the libFuzzer targets with clang and fuzzes each for a bounded
#      time (FUZZ_SECONDS, default 60);
#   4. runs the benchmarks once in smoke mode (they must work; their figures
#      come from scripts/bench.sh, never from tests);
#   5. cross-builds the Windows sandbox backend with mingw-w64 and runs its
#      tests under wine (scripts/test-windows.sh).
# Ends with one line: "tests: N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install-deps.sh test

fuzz_seconds=${FUZZ_SECONDS:-60}
logs=()
status=0

run_suite() {  # build-dir, extra meson test args...
  local dir=$1; shift
  if ! meson test -C "$dir" --print-errorlogs "$@"; then status=1; fi
  logs+=("$dir/meson-logs/testlog.json")
}

echo "==> [1/5] build (warnings as errors) and test"
[ -f build-ci/build.ninja ] || meson setup build-ci -Dwerror=true --buildtype=debugoptimized
ninja -C build-ci
run_suite build-ci

echo "==> [2/5] ASan + UBSan build and test"
[ -f build-asan/build.ninja ] || meson setup build-asan -Dwerror=true --buildtype=debug \
  -Db_sanitize=address,undefined -Db_lundef=false -Dbenchmarks=disabled -Dlibtorch=disabled
ninja -C build-asan
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
run_suite build-asan --timeout-multiplier 3
unset ASAN_OPTIONS UBSAN_OPTIONS

echo "==> [3/5] fuzzing (${fuzz_seconds}s per target)"
[ -f build-fuzz/build.ninja ] || CC=clang CXX=clang++ meson setup build-fuzz \
  -Dfuzzing=enabled -Db_lundef=false -Dbenchmarks=disabled --buildtype=debugoptimized
ninja -C build-fuzz tests/stream_decoder_fuzz
corpus=$(mktemp -d)
cp tests/fuzz/corpus/* "$corpus"/
fuzz_log=build-fuzz/fuzz-stream_decoder.log
if build-fuzz/tests/stream_decoder_fuzz -max_total_time="$fuzz_seconds" -print_final_stats=1 \
     "$corpus" >"$fuzz_log" 2>&1; then
  fuzz_result=OK
  tail -n 12 "$fuzz_log"
else
  fuzz_result=FAIL
  status=1
  tail -n 60 "$fuzz_log"
fi
rm -rf "$corpus"

echo "==> [4/5] benchmark smoke run"
if SYMPHONYD=build-ci/daemon/symphonyd build-ci/tests/bench/rpc_bench \
     --benchmark_min_time=0.01 >build-ci/bench-smoke.log 2>&1; then
  bench_result=OK
  grep -A6 "== Ratios" build-ci/bench-smoke.log || true
else
  bench_result=FAIL
  status=1
  tail -n 30 build-ci/bench-smoke.log
fi

if build-ci/tests/bench/sandbox_bench --benchmark_min_time=0.01 >>build-ci/bench-smoke.log 2>&1; then
  grep -A8 "== Ratios against bwrap" build-ci/bench-smoke.log || true
else
  bench_result=FAIL
  status=1
  tail -n 30 build-ci/bench-smoke.log
fi

echo "==> [5/5] Windows backend (mingw-w64 cross build, tests under wine)"
if scripts/test-windows.sh; then
  windows_result=OK
else
  windows_result=FAIL
  status=1
fi

/usr/bin/python3 - "$fuzz_result" "$bench_result" "$windows_result" "${logs[@]}" <<'PY'
import json, sys
extra, logs = sys.argv[1:4], sys.argv[4:]
passed = failed = skipped = 0
for path in logs:
    with open(path) as f:
        for line in f:
            r = json.loads(line).get("result")
            if r in ("OK", "EXPECTEDFAIL"): passed += 1
            elif r == "SKIP": skipped += 1
            else: failed += 1
for r in extra:
    if r == "OK": passed += 1
    else: failed += 1
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
