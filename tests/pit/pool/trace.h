// A generated allocation trace for the prediction benchmark: a few workflows,
// each a repeating chain of model uses, interleaved at random, with noise
// (some steps use a random model instead), over more models than fit in the
// memory budget. replay() runs it through a Pool with or without prediction.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "pit/pool/pool.h"
#include "tests/pit/pool/fake_loader.h"

namespace symphony::pit::pool::testing {

struct TraceStep {
  std::uint32_t model;
  std::uint32_t stream;  // the workflow
};

struct Trace {
  std::vector<std::uint64_t> sizes;  // bytes per model
  std::uint64_t budget = 0;
  std::vector<TraceStep> steps;
};

// Three workflows (chains of 4, 3 and 5 models) over 14 models of 1–3 GiB,
// a 10 GiB device: about four models fit. `noise` is the chance that a step
// uses a random model instead of the chain's next.
inline Trace make_trace(std::size_t steps, double noise, std::uint32_t seed) {
  constexpr std::uint64_t kGiB = 1ull << 30;
  Trace t;
  std::mt19937 rng(seed);
  for (int i = 0; i < 14; ++i) t.sizes.push_back((1 + i % 3) * kGiB);
  t.budget = 10 * kGiB;
  const std::vector<std::vector<std::uint32_t>> chains = {{0, 1, 2, 3}, {4, 5, 6}, {7, 8, 9, 10, 11}};
  std::vector<std::size_t> pos(chains.size(), 0);
  std::uniform_real_distribution<double> coin(0, 1);
  for (std::size_t i = 0; i < steps; ++i) {
    std::uint32_t wf = rng() % chains.size();
    std::uint32_t model = coin(rng) < noise ? rng() % t.sizes.size() : chains[wf][pos[wf]];
    pos[wf] = (pos[wf] + 1) % chains[wf].size();
    t.steps.push_back({model, wf});
  }
  return t;
}

struct ReplayResult {
  double hit_rate = 0;
  PoolStats stats;
};

// Allocates and releases each step in order; with prediction, maintain()
// runs after every step as the daemon's background worker would between
// steps (without prediction it is a no-op, so both runs do the same calls).
inline ReplayResult replay(const Trace& t, bool prediction) {
  FakeLoader loader;
  PoolConfig config;
  config.devices = {{"gpu0", Bytes{t.budget}}};
  config.prediction.enabled = prediction;
  auto pool = std::move(*Pool::create(config, loader));
  std::vector<ModelId> ids;
  for (std::size_t i = 0; i < t.sizes.size(); ++i)
    ids.push_back(*pool->add_model({"m" + std::to_string(i), "gpu0", Bytes{t.sizes[i]}}));
  for (const TraceStep& s : t.steps) {
    auto lease = pool->allocate(ids[s.model], {.stream = s.stream});
    (void)lease;
    pool->maintain();
  }
  ReplayResult r;
  r.stats = pool->stats();
  r.hit_rate = static_cast<double>(r.stats.hits) / static_cast<double>(t.steps.size());
  return r;
}

}  // namespace symphony::pit::pool::testing
