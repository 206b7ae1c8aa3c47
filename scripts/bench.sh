#!/usr/bin/env bash
# Symphony's benchmarks, built optimized, each compared with its baseline in
# the same run (TARGETS.md). Figures are machine-specific: quote the ratios.
# The IPC benchmarks run twice: unpinned (client and daemon wherever the
# scheduler puts them: on an idle 2-core VM, usually different cores, where
# wake-up latency dominates) and with every process pinned to CPU 0 (the
# CPU-bound regime, where Symphony's own overhead shows most).
# The sandbox benchmark runs /bin/true through bubblewrap, a full Symphony
# spawn and the zygote side by side (needs root, like the sandbox itself).
# The Pit's benchmarks (artifact store, DAG tracker, pool, arbiter) each
# run their hot path against a baseline in the same process.
# The Grand Stage benchmark runs 10,000 no-op workflow steps through the
# Conductor and sandboxed chaos extension instances against the same
# Conductor with an in-process executor, and an extension's cold start
# against bubblewrap (needs root, like the sandbox).
#   scripts/bench.sh [rpc|sandbox|pit|stage] [extra Google Benchmark flags]
set -euo pipefail
which=all
case "${1:-}" in rpc|sandbox|pit|stage) which=$1; shift ;; esac
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
[ -f build-bench/build.ninja ] || meson setup build-bench --buildtype=release -Db_ndebug=true
ninja -C build-bench daemon/symphonyd tests/bench/rpc_bench tests/bench/sandbox_bench \
  tests/pit/artifacts/pit_artifacts_bench tests/pit/dag/pit_dag_bench tests/pit/pool/pit_pool_bench \
  tests/pit/arbiter/pit_arbiter_bench tests/bench/stage_bench tests/stage/chaos_ext/symphony-ext-chaos
flags=(--benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
       --benchmark_min_time=0.5 --benchmark_report_aggregates_only=true "$@")
export SYMPHONYD=build-bench/daemon/symphonyd
if [ "$which" = all ] || [ "$which" = rpc ]; then
echo "==> unpinned"
build-bench/tests/bench/rpc_bench "${flags[@]}" | tee build-bench/rpc_bench-unpinned.txt
echo "==> pinned to CPU 0 (client, daemon and echo child share one core)"
taskset -c 0 build-bench/tests/bench/rpc_bench "${flags[@]}" | tee build-bench/rpc_bench-cpu0.txt
fi
if [ "$which" = all ] || [ "$which" = sandbox ]; then
echo "==> sandbox start-up against bubblewrap"
build-bench/tests/bench/sandbox_bench --benchmark_repetitions=5 --benchmark_min_time=0.5 \
  --benchmark_report_aggregates_only=true "$@" | tee build-bench/sandbox_bench.txt
fi
if [ "$which" = all ] || [ "$which" = pit ]; then
for b in artifacts dag pool arbiter; do
  echo "==> pit $b"
  build-bench/tests/pit/$b/pit_${b}_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    "$@" | tee build-bench/pit_${b}_bench.txt
done
fi
if [ "$which" = all ] || [ "$which" = stage ]; then
echo "==> Grand Stage: 10,000 no-op steps end to end, extension cold start against bubblewrap"
SYMPHONY_CHAOS_EXT_DIR="$PWD/build-bench/tests/stage/chaos_ext" build-bench/tests/bench/stage_bench \
  "${flags[@]}" | tee build-bench/stage_bench.txt
fi
