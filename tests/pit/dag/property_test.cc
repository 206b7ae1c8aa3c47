// Property tests on random graphs (seeded, so failures reproduce): random
// execution orders with failures, retries, cancellations and steps added
// while running must respect the dependency order and the attempt budget and
// end in the states the policy implies; critical paths match a brute-force
// computation; an injected back-edge is always found and the named cycle is
// a real one; a journaled run replays to the same state.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "pit/dag/dag_tracker.h"
#include "pit/dag/workflow.h"
#include "tests/support/temp_dir.h"

namespace symphony::pit::dag {
namespace {

struct Graph {
  std::vector<StepSpec> specs;             // in topological order (inputs first)
  std::vector<std::vector<int>> inputs;    // by spec position
};

Graph random_dag(std::mt19937& rng, int n, int max_in) {
  Graph g;
  g.specs.resize(n);
  g.inputs.resize(n);
  for (int i = 0; i < n; ++i) {
    StepSpec& s = g.specs[i];
    s.id = "s" + std::to_string(i);
    s.cost = static_cast<double>(1 + rng() % 8) / 2.0;
    s.max_attempts = 1 + rng() % 3;
    if (i == 0) continue;
    int k = static_cast<int>(rng() % (max_in + 1));
    std::set<int> chosen;
    for (int j = 0; j < k; ++j) {
      // Prefer recent steps so graphs are deep as well as wide.
      int span = std::min(i, 1 + static_cast<int>(rng() % 20));
      chosen.insert(i - 1 - static_cast<int>(rng() % span));
    }
    for (int in : chosen) {
      g.inputs[i].push_back(in);
      s.inputs.push_back(g.specs[in].id);
    }
  }
  return g;
}

std::vector<double> brute_force_critical_paths(const Graph& g) {
  const int n = static_cast<int>(g.specs.size());
  std::vector<double> cp(n, 0);
  std::vector<std::vector<int>> dependents(n);
  for (int i = 0; i < n; ++i) {
    for (int in : g.inputs[i]) dependents[in].push_back(i);
  }
  for (int i = n - 1; i >= 0; --i) {
    double longest = 0;
    for (int d : dependents[i]) longest = std::max(longest, cp[d]);
    cp[i] = g.specs[i].cost + longest;
  }
  return cp;
}

bool satisfied(const Workflow& wf, StepIndex s) {
  return wf.state(s) == StepState::succeeded ||
         (wf.state(s) == StepState::skipped && wf.skip_reason(s) == SkipReason::memoized);
}

// The naive definition of the ready set, checked against the incremental one.
void check_ready_set(const Workflow& wf) {
  std::vector<StepIndex> ready = wf.ready_by_priority();
  std::set<StepIndex> in_heap(ready.begin(), ready.end());
  ASSERT_EQ(in_heap.size(), ready.size());
  for (StepIndex s = 0; s < wf.size(); ++s) {
    bool all_in = true;
    for (StepIndex in : wf.inputs(s)) all_in &= satisfied(wf, in);
    if (wf.state(s) == StepState::ready) {
      ASSERT_TRUE(in_heap.count(s)) << wf.spec(s).id;
      ASSERT_TRUE(all_in) << wf.spec(s).id;
    } else {
      ASSERT_FALSE(in_heap.count(s)) << wf.spec(s).id;
    }
    if (wf.state(s) == StepState::pending) {
      ASSERT_FALSE(all_in) << wf.spec(s).id << " should be ready";
    }
  }
  if (!ready.empty()) {
    ASSERT_EQ(wf.peek_ready(), ready.front());
    for (StepIndex s : ready) ASSERT_GE(wf.critical_path(ready.front()), wf.critical_path(s));
  }
}

struct SimOptions {
  double fail_rate = 0;
  double cancel_rate = 0;
  bool batches = false;  // add the graph in pieces while it runs
  std::size_t stop_after = SIZE_MAX;  // operations; for the replay property
};

struct SimResult {
  std::vector<int> starts;
  bool ever_cancelled = false;
  bool any_failure = false;
};

// Runs `g` on `wf` with random choices; checks the order property as it goes.
SimResult simulate(Workflow& wf, const Graph& g, std::mt19937& rng, const SimOptions& opt) {
  const int n = static_cast<int>(g.specs.size());
  SimResult res;
  res.starts.assign(n, 0);
  std::vector<StepIndex> running, retrying;
  int added = 0;
  auto add_batch = [&] {
    int take = opt.batches ? 1 + static_cast<int>(rng() % std::max(1, n / 4)) : n;
    take = std::min(take, n - added);
    std::vector<StepSpec> batch(g.specs.begin() + added, g.specs.begin() + added + take);
    std::shuffle(batch.begin(), batch.end(), rng);  // any order within a batch
    auto r = wf.add_steps(batch);
    if (!r) {
      // Only a workflow that failed or was cancelled refuses additions.
      EXPECT_NE(wf.state(), WorkflowState::running) << r.error().message();
      added = n;
      return;
    }
    added += take;
  };
  add_batch();
  const bool check_every_op = n <= 80;
  for (std::size_t op = 0; op < opt.stop_after; ++op) {
    if (check_every_op || op % 16 == 0) {
      check_ready_set(wf);
      if (::testing::Test::HasFatalFailure()) return res;
    }
    const int choice = static_cast<int>(rng() % 100);
    if (added < n && (choice < 5 || (wf.ready_count() == 0 && running.empty() && retrying.empty()))) {
      add_batch();
      continue;
    }
    if (!retrying.empty() && choice < 15) {
      std::size_t i = rng() % retrying.size();
      StepIndex s = retrying[i];
      retrying.erase(retrying.begin() + static_cast<long>(i));
      if (wf.state(s) == StepState::retrying) {
        EXPECT_TRUE(wf.retry(s).has_value());
      }
      continue;
    }
    if (wf.ready_count() > 0 && (choice < 60 || running.empty())) {
      StepIndex s = *wf.peek_ready();
      if (choice % 3 == 0) {  // not always the top priority: the Conductor may pick
        auto ready = wf.steps_in(StepState::ready);
        s = ready[rng() % ready.size()];
      }
      for (StepIndex in : wf.inputs(s)) {
        EXPECT_TRUE(satisfied(wf, in)) << wf.spec(s).id << " started before " << wf.spec(in).id;
      }
      EXPECT_TRUE(wf.start(s).has_value());
      ++res.starts[s];
      EXPECT_LE(static_cast<std::uint32_t>(res.starts[s]), wf.spec(s).max_attempts);
      running.push_back(s);
      continue;
    }
    if (!running.empty()) {
      std::size_t i = rng() % running.size();
      StepIndex s = running[i];
      running.erase(running.begin() + static_cast<long>(i));
      if (wf.state(s) != StepState::running) continue;  // cancelled meanwhile
      const double u = static_cast<double>(rng() % 10000) / 10000.0;
      if (u < opt.cancel_rate) {
        EXPECT_TRUE(wf.cancel_step(s).has_value());
        res.ever_cancelled = true;
      } else if (u < opt.cancel_rate + opt.fail_rate) {
        auto out = wf.fail(s, "random failure");
        EXPECT_TRUE(out.has_value());
        res.any_failure = true;
        if (out->state == StepState::retrying) retrying.push_back(s);
      } else {
        EXPECT_TRUE(wf.succeed(s, {OutputRef{wf.spec(s).id, 1, Digest::of(wf.spec(s).id)}}).has_value());
      }
      continue;
    }
    if (!retrying.empty()) continue;
    if (added < n) {
      add_batch();
      continue;
    }
    break;  // nothing ready, running, retrying or left to add
  }
  return res;
}

TEST(DagProperty, RandomExecutionsRespectDependenciesAndPolicies) {
  for (unsigned seed = 1; seed <= 150; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int n = 1 + static_cast<int>(rng() % 300);
    const Graph g = random_dag(rng, n, 1 + static_cast<int>(rng() % 4));
    const FailurePolicy policy = seed % 2 ? FailurePolicy::continue_independent : FailurePolicy::fail_workflow;
    SimOptions opt;
    opt.fail_rate = seed % 3 == 0 ? 0.0 : 0.1;
    opt.cancel_rate = seed % 5 == 0 ? 0.02 : 0.0;
    opt.batches = seed % 4 < 2;
    Workflow wf("w", policy);
    SimResult res = simulate(wf, g, rng, opt);
    if (HasFatalFailure()) return;

    EXPECT_NE(wf.state(), WorkflowState::running);
    // Batches are refused only once a fail_workflow failure or a cancel
    // stopped the workflow.
    if (wf.size() < static_cast<std::size_t>(n)) {
      EXPECT_TRUE(res.any_failure || res.ever_cancelled);
      ASSERT_FALSE(policy == FailurePolicy::continue_independent && !res.ever_cancelled);
    }
    for (int i = 0; i < static_cast<int>(wf.size()); ++i) {
      const StepIndex s = *wf.find(g.specs[i].id);
      const StepState st = wf.state(s);
      EXPECT_TRUE(is_terminal(st)) << g.specs[i].id << " is " << to_string(st);
      EXPECT_EQ(static_cast<std::uint32_t>(res.starts[s]), wf.attempts(s));
      if (st == StepState::failed) {
        EXPECT_EQ(wf.attempts(s), g.specs[i].max_attempts);
      }
      if (st == StepState::succeeded) {
        for (StepIndex in : wf.inputs(s)) EXPECT_EQ(wf.state(in), StepState::succeeded);
      }
    }
    if (!res.any_failure && !res.ever_cancelled) {
      EXPECT_EQ(wf.state(), WorkflowState::succeeded);
      for (int i = 0; i < n; ++i) EXPECT_EQ(res.starts[i], 1) << "every step runs exactly once";
    }
    if (policy == FailurePolicy::continue_independent && !res.ever_cancelled) {
      // In topological order: a step is skipped exactly when an input did
      // not succeed; otherwise it ran to success or to its last failure.
      for (int i = 0; i < n; ++i) {
        const StepIndex s = *wf.find(g.specs[i].id);
        bool upstream_bad = false;
        for (StepIndex in : wf.inputs(s)) upstream_bad |= wf.state(in) != StepState::succeeded;
        if (upstream_bad) {
          EXPECT_EQ(wf.state(s), StepState::skipped) << g.specs[i].id;
          EXPECT_EQ(res.starts[s], 0);
        } else {
          EXPECT_TRUE(wf.state(s) == StepState::succeeded || wf.state(s) == StepState::failed) << g.specs[i].id;
        }
      }
    }
  }
}

TEST(DagProperty, CriticalPathsMatchBruteForceWhateverTheBatching) {
  for (unsigned seed = 1; seed <= 100; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed * 7919);
    const int n = 1 + static_cast<int>(rng() % 300);
    const Graph g = random_dag(rng, n, 4);
    Workflow wf("w", FailurePolicy::fail_workflow);
    for (int added = 0; added < n;) {
      int take = std::min(n - added, 1 + static_cast<int>(rng() % 40));
      std::vector<StepSpec> batch(g.specs.begin() + added, g.specs.begin() + added + take);
      std::shuffle(batch.begin(), batch.end(), rng);
      ASSERT_TRUE(wf.add_steps(batch).has_value());
      added += take;
      // Run a few ready steps between batches so raises hit the ready heap.
      for (int k = 0; k < 3 && wf.ready_count() > 0; ++k) {
        StepIndex s = *wf.peek_ready();
        ASSERT_TRUE(wf.start(s).has_value());
        ASSERT_TRUE(wf.succeed(s).has_value());
      }
      check_ready_set(wf);
      if (HasFatalFailure()) return;
    }
    const auto expected = brute_force_critical_paths(g);
    for (int i = 0; i < n; ++i) {
      EXPECT_DOUBLE_EQ(wf.critical_path(*wf.find(g.specs[i].id)), expected[i]) << g.specs[i].id;
    }
  }
}

TEST(DagProperty, InjectedBackEdgeIsFoundAndTheNamedCycleIsReal) {
  for (unsigned seed = 1; seed <= 300; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed * 104729);
    const int n = 2 + static_cast<int>(rng() % 300);
    Graph g = random_dag(rng, n, 1 + static_cast<int>(rng() % 4));
    // Old steps (added first) cannot be part of a cycle; put the back edge
    // among the new ones: walk from v down its inputs (new only) to u, and
    // make u consume v.
    const int split = static_cast<int>(rng() % n);
    const int v = split + static_cast<int>(rng() % (n - split));
    int u = v;
    for (int hops = static_cast<int>(rng() % 30); hops > 0; --hops) {
      std::vector<int> next;
      for (int in : g.inputs[u]) {
        if (in >= split) next.push_back(in);
      }
      if (next.empty()) break;
      u = next[rng() % next.size()];
    }
    g.specs[u].inputs.push_back(g.specs[v].id);

    Workflow wf("w", FailurePolicy::fail_workflow);
    std::vector<StepSpec> first(g.specs.begin(), g.specs.begin() + split);
    ASSERT_TRUE(wf.add_steps(first).has_value());
    std::vector<StepSpec> second(g.specs.begin() + split, g.specs.end());
    std::shuffle(second.begin(), second.end(), rng);
    auto r = wf.add_steps(second);
    ASSERT_FALSE(r.has_value()) << "back edge " << g.specs[u].id << " → " << g.specs[v].id << " not found";
    const std::string msg = r.error().message();
    const auto at = msg.find("cycle: ");
    ASSERT_NE(at, std::string::npos) << msg;
    std::vector<std::string> names;
    std::string rest = msg.substr(at + 7);
    const std::string arrow = " → ";
    for (std::size_t pos; (pos = rest.find(arrow)) != std::string::npos;) {
      names.push_back(rest.substr(0, pos));
      rest = rest.substr(pos + arrow.size());
    }
    names.push_back(rest);
    ASSERT_GE(names.size(), 2u) << msg;
    EXPECT_EQ(names.front(), names.back()) << msg;
    for (std::size_t i = 0; i + 1 < names.size(); ++i) {
      const int x = std::stoi(names[i].substr(1));
      const auto& ins = g.specs[x].inputs;
      EXPECT_NE(std::find(ins.begin(), ins.end(), names[i + 1]), ins.end())
          << names[i] << " does not consume " << names[i + 1] << " in " << msg;
      EXPECT_GE(x, split) << "a cycle can only run through new steps";
    }
    EXPECT_EQ(wf.size(), static_cast<std::size_t>(split)) << "the refused batch added nothing";
  }
}

TEST(DagProperty, JournaledRunsReplayToTheSameState) {
  namespace fs = std::filesystem;
  const symphony::testing::TempDir tmp("pit-dag-prop", fs::temp_directory_path());
  const fs::path& dir = tmp.path();
  for (unsigned seed = 1; seed <= 25; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed * 31337);
    const int n = 1 + static_cast<int>(rng() % 120);
    const Graph g = random_dag(rng, n, 3);
    const fs::path path = dir / ("j" + std::to_string(seed));
    std::vector<StepState> states;
    std::vector<std::uint32_t> attempts;
    {
      auto tracker = DagTracker::open(path, TrackerOptions{.durability = Durability::batched,
                                                           .compact_after_bytes = seed % 2 ? 2048u : 1u << 20});
      ASSERT_TRUE(tracker.has_value()) << tracker.error().message();
      auto wf = (*tracker)->create_workflow("w", seed % 2 ? FailurePolicy::continue_independent
                                                          : FailurePolicy::fail_workflow);
      ASSERT_TRUE(wf.has_value());
      SimOptions opt{.fail_rate = 0.15, .cancel_rate = 0.02, .batches = true,
                     .stop_after = rng() % (4 * static_cast<std::size_t>(n) + 1)};
      simulate(**wf, g, rng, opt);
      if (HasFatalFailure()) return;
      ASSERT_TRUE((*tracker)->flush().has_value());
      for (StepIndex s = 0; s < (*wf)->size(); ++s) {
        states.push_back((*wf)->state(s));
        attempts.push_back((*wf)->attempts(s));
      }
    }
    auto tracker = DagTracker::open(path);
    ASSERT_TRUE(tracker.has_value()) << tracker.error().message();
    Workflow* wf = (*tracker)->workflow("w");
    ASSERT_NE(wf, nullptr);
    ASSERT_EQ(wf->size(), states.size());
    for (StepIndex s = 0; s < wf->size(); ++s) {
      EXPECT_EQ(wf->attempts(s), attempts[s]) << wf->spec(s).id;
      const StepState before = states[s], now = wf->state(s);
      if (before == now) continue;
      // The only differences recovery may make: interrupted steps fail (or
      // retry), and that failure's policy skips dependents or cancels the rest.
      const bool explained =
          (before == StepState::running &&
           (now == StepState::retrying || now == StepState::failed || now == StepState::cancelled)) ||
          (!is_terminal(before) && now == StepState::cancelled) ||
          (before == StepState::pending && now == StepState::skipped &&
           wf->skip_reason(s) == SkipReason::upstream_failed);
      EXPECT_TRUE(explained) << wf->spec(s).id << ": " << to_string(before) << " became " << to_string(now);
    }
    check_ready_set(*wf);
  }
}

}  // namespace
}  // namespace symphony::pit::dag
