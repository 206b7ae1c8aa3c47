// DAG tracker benchmarks: the ready-set update when a step completes
// (Workflow::succeed on layered random DAGs, out-degree 1–4, no journal)
// against the naive approach — rescanning every step's inputs after each
// completion — and with the journal attached (fdatasync per change, and
// group commit every 64 changes). The program ends by printing the median
// ns per completion and the naive/incremental ratio.
//
//   build-dag-rel/tests/pit/dag/pit_dag_bench --benchmark_repetitions=5
//   meson test -C build-dag-rel --benchmark --suite bench pit-dag
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "pit/dag/dag_tracker.h"
#include "pit/dag/workflow.h"
#include "tests/support/temp_dir.h"

namespace {

using namespace symphony::pit::dag;
namespace fs = std::filesystem;

// "s17": built by appending (GCC 12 warns falsely, -Wrestrict, on
// "literal" + std::to_string() at -O3).
std::string name(const char* prefix, int i) {
  std::string out(prefix);
  out += std::to_string(i);
  return out;
}

// Layers of `width` steps; each step past the first layer consumes 1–4
// random steps of the layer before (mean out-degree about 2.5).
std::vector<StepSpec> layered_dag(int n, int width, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<StepSpec> specs(n);
  for (int i = 0; i < n; ++i) {
    specs[i].id = name("s", i);
    specs[i].cost = static_cast<double>(1 + rng() % 4);
    const int layer = i / width;
    if (layer == 0) continue;
    const int k = 1 + static_cast<int>(rng() % 4);
    for (int j = 0; j < k; ++j) {
      std::string in = name("s", (layer - 1) * width + static_cast<int>(rng() % width));
      if (std::find(specs[i].inputs.begin(), specs[i].inputs.end(), in) == specs[i].inputs.end()) {
        specs[i].inputs.push_back(std::move(in));
      }
    }
  }
  return specs;
}

constexpr int kWidth = 256;

// Each iteration completes one running step. When none is running, the
// timer stops while every ready step is started (and, when the workflow is
// done, a fresh one is built), so only succeed() is measured.
template <class NewWorkflow>
void run_completions(benchmark::State& state, NewWorkflow&& new_workflow) {
  const int n = static_cast<int>(state.range(0));
  const auto specs = layered_dag(n, std::min(n, kWidth), 42);
  Workflow* wf = nullptr;
  std::vector<StepIndex> running;
  for (auto _ : state) {
    if (running.empty()) {
      state.PauseTiming();
      if (wf == nullptr || wf->state() != WorkflowState::running) wf = new_workflow(specs);
      while (auto s = wf->peek_ready()) {
        (void)wf->start(*s);
        running.push_back(*s);
      }
      state.ResumeTiming();
    }
    auto r = wf->succeed(running.back());
    benchmark::DoNotOptimize(r);
    running.pop_back();
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_ReadySetUpdate(benchmark::State& state) {
  std::unique_ptr<Workflow> wf;
  run_completions(state, [&](const std::vector<StepSpec>& specs) {
    wf = std::make_unique<Workflow>("bench", FailurePolicy::fail_workflow);
    (void)wf->add_steps(specs);
    return wf.get();
  });
}

// The whole scheduling turn: complete one step, then start the highest
// priority ready step (the Conductor's loop).
void BM_CompleteAndDispatch(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const auto specs = layered_dag(n, std::min(n, kWidth), 42);
  std::unique_ptr<Workflow> wf;
  std::vector<StepIndex> running;
  for (auto _ : state) {
    if (running.empty()) {
      state.PauseTiming();
      if (!wf || wf->state() != WorkflowState::running) {
        wf = std::make_unique<Workflow>("bench", FailurePolicy::fail_workflow);
        (void)wf->add_steps(specs);
      }
      for (int k = 0; k < 64; ++k) {
        auto s = wf->peek_ready();
        if (!s) break;
        (void)wf->start(*s);
        running.push_back(*s);
      }
      state.ResumeTiming();
    }
    const StepIndex done = running.back();
    running.pop_back();
    (void)wf->succeed(done);
    if (auto next = wf->peek_ready()) {
      (void)wf->start(*next);
      running.push_back(*next);
    }
  }
  state.SetItemsProcessed(state.iterations());
}

// The baseline: no counters, no heap; after each completion every pending
// step's inputs are checked again to recompute the ready set.
void BM_NaiveRescan(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const auto specs = layered_dag(n, std::min(n, kWidth), 42);
  std::vector<std::vector<int>> inputs(n);
  for (int i = 0; i < n; ++i) {
    for (const auto& in : specs[i].inputs) inputs[i].push_back(std::stoi(in.substr(1)));
  }
  enum : std::uint8_t { pending, ready, running_, done };
  std::vector<std::uint8_t> st(n, pending);
  std::vector<int> ready_set, running;
  int finished = n;
  auto rescan = [&] {
    ready_set.clear();
    for (int i = 0; i < n; ++i) {
      if (st[i] == ready) {
        ready_set.push_back(i);
        continue;
      }
      if (st[i] != pending) continue;
      bool all = true;
      for (int in : inputs[i]) all &= st[in] == done;
      if (all) {
        st[i] = ready;
        ready_set.push_back(i);
      }
    }
  };
  for (auto _ : state) {
    if (running.empty()) {
      state.PauseTiming();
      if (finished == n) {
        std::fill(st.begin(), st.end(), pending);
        finished = 0;
        rescan();
      }
      for (int s : ready_set) {
        st[s] = running_;
        running.push_back(s);
      }
      ready_set.clear();
      state.ResumeTiming();
    }
    st[running.back()] = done;
    running.pop_back();
    ++finished;
    rescan();
    benchmark::DoNotOptimize(ready_set.data());
  }
  state.SetItemsProcessed(state.iterations());
}

// A fresh directory for a journal under $PIT_DAG_BENCH_DIR, else $TMPDIR or
// /tmp; removed with its contents when it goes out of scope.
symphony::testing::TempDir bench_dir() {
  const char* env = std::getenv("PIT_DAG_BENCH_DIR");
  return symphony::testing::TempDir("pit-dag-bench",
                                    env ? fs::path(env) : fs::temp_directory_path());
}

void journaled(benchmark::State& state, Durability durability) {
  const symphony::testing::TempDir dir = bench_dir();
  auto tracker =
      DagTracker::open(dir.path() / "dag.journal", TrackerOptions{.durability = durability});
  if (!tracker) {
    state.SkipWithError(tracker.error().message().c_str());
    return;
  }
  DagTracker& t = **tracker;
  int round = 0;
  run_completions(state, [&](const std::vector<StepSpec>& specs) {
    if (round > 0) (void)t.remove_workflow(name("w", round - 1));
    auto wf = t.create_workflow(name("w", round++), FailurePolicy::fail_workflow);
    (void)(*wf)->add_steps(specs);
    (void)t.flush();
    return *wf;
  });
  tracker->reset();
}

// With batched durability the flush (group commit) is part of the measured
// cost: one every 64 completions.
void BM_ReadySetUpdateJournaledBatched(benchmark::State& state) {
  const symphony::testing::TempDir dir = bench_dir();
  auto tracker = DagTracker::open(dir.path() / "dag.journal",
                                  TrackerOptions{.durability = Durability::batched});
  if (!tracker) {
    state.SkipWithError(tracker.error().message().c_str());
    return;
  }
  DagTracker& t = **tracker;
  int round = 0;
  std::int64_t done = 0;
  const int n = static_cast<int>(state.range(0));
  const auto specs = layered_dag(n, std::min(n, kWidth), 42);
  Workflow* wf = nullptr;
  std::vector<StepIndex> running;
  for (auto _ : state) {
    if (running.empty()) {
      state.PauseTiming();
      if (wf == nullptr || wf->state() != WorkflowState::running) {
        if (round > 0) (void)t.remove_workflow(name("w", round - 1));
        wf = *t.create_workflow(name("w", round++), FailurePolicy::fail_workflow);
        (void)wf->add_steps(specs);
      }
      while (auto s = wf->peek_ready()) {
        (void)wf->start(*s);
        running.push_back(*s);
      }
      (void)t.flush();
      state.ResumeTiming();
    }
    (void)wf->succeed(running.back());
    running.pop_back();
    if (++done % 64 == 0) (void)t.flush();
  }
  state.SetItemsProcessed(state.iterations());
  tracker->reset();
}

void BM_ReadySetUpdateJournaledEachChange(benchmark::State& state) { journaled(state, Durability::each_change); }

BENCHMARK(BM_ReadySetUpdate)->Arg(1024)->Arg(4096)->Arg(16384);
BENCHMARK(BM_CompleteAndDispatch)->Arg(4096)->Arg(16384);
BENCHMARK(BM_NaiveRescan)->Arg(1024)->Arg(4096);
BENCHMARK(BM_ReadySetUpdateJournaledBatched)->Arg(4096);
// One fdatasync per completion: a few hundred are enough to see its cost.
BENCHMARK(BM_ReadySetUpdateJournaledEachChange)->Arg(4096)->Iterations(300);

// Keeps the console output and remembers each benchmark's median (or its
// single run without repetitions) for the summary.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
      // Time unit: ns (the default). CPU time, not wall time: on a shared
      // machine the wall clock also counts the time other processes ran.
      ns_[r.run_name.str()] = r.GetAdjustedCPUTime();
    }
  }
  void summary() const {
    std::printf("\nmedian CPU ns per completion:\n");
    for (const auto& [name, ns] : ns_) std::printf("  %-45s %12.1f ns\n", name.c_str(), ns);
    for (const char* n : {"1024", "4096"}) {
      auto naive = ns_.find(std::string("BM_NaiveRescan/") + n);
      auto fast = ns_.find(std::string("BM_ReadySetUpdate/") + n);
      if (naive != ns_.end() && fast != ns_.end() && fast->second > 0) {
        std::printf("naive rescan / incremental at %s steps: %.0fx\n", n, naive->second / fast->second);
      }
    }
  }

 private:
  std::map<std::string, double> ns_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.summary();
  benchmark::Shutdown();
  return 0;
}
