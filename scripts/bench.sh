#!/usr/bin/env bash
# Symphony's benchmarks, built optimized, each compared with its baseline in
# the same run (TARGETS.md). Figures are machine-specific: quote the ratios.
#   scripts/bench.sh [extra Google Benchmark flags]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
[ -f build-bench/build.ninja ] || meson setup build-bench --buildtype=release -Db_ndebug=true
ninja -C build-bench daemon/symphonyd tests/bench/rpc_bench
SYMPHONYD=build-bench/daemon/symphonyd build-bench/tests/bench/rpc_bench \
  --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true \
  --benchmark_min_time=0.5 --benchmark_report_aggregates_only=true "$@" \
  | tee build-bench/rpc_bench.txt
