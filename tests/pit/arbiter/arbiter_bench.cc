// Benchmarks of the arbiter's hot path: an uncontended claim + release
// (exclusive and shared), against two baselines measured in the same run —
// a bare std::mutex lock/unlock pair (the floor: the arbiter takes its
// mutex twice per pair) and a naive registry (std::map keyed by resource
// name under a mutex), the obvious thing the arbiter replaces.
#include <benchmark/benchmark.h>

#include <map>
#include <mutex>
#include <string>

#include "pit/arbiter/arbiter.h"

namespace symphony::pit {
namespace {

void BM_MutexLockUnlockPair(benchmark::State& state) {
  std::mutex mu;
  for (auto _ : state) {
    mu.lock();
    mu.unlock();
    mu.lock();
    mu.unlock();
  }
}
BENCHMARK(BM_MutexLockUnlockPair);

// The naive registry: name → holder count under a mutex.
void BM_NaiveMapRegistry(benchmark::State& state) {
  std::mutex mu;
  std::map<std::string, int> held;
  for (int i = 0; i < 64; ++i) held.emplace("lock:other-" + std::to_string(i), 0);
  const std::string name = "lock:bench";
  for (auto _ : state) {
    {
      std::lock_guard lock(mu);
      auto [it, added] = held.try_emplace(name, 0);
      if (it->second == 0) it->second = 1;
    }
    {
      std::lock_guard lock(mu);
      held.erase(name);
    }
  }
}
BENCHMARK(BM_NaiveMapRegistry);

void claim_release(benchmark::State& state, ClaimMode mode, const char* name) {
  ArbiterOptions options;
  Arbiter arbiter(options);
  // A populated table, so the measurement is not of an empty one.
  for (int i = 0; i < 64; ++i) (void)arbiter.intern("lock:other-" + std::to_string(i));
  auto key = arbiter.intern(name);
  if (!key) {
    state.SkipWithError(key.error().message().c_str());
    return;
  }
  ClaimItem item{*key, mode};
  ClaimRequest request{ClaimantId{1}, Priority{0}, std::span(&item, 1), std::chrono::milliseconds(0)};
  for (auto _ : state) {
    auto c = arbiter.claim(request);
    if (!c) {
      state.SkipWithError(c.error().message().c_str());
      return;
    }
    auto r = arbiter.release(c->claim);
    benchmark::DoNotOptimize(r);
  }
}

void BM_ArbiterExclusiveClaimRelease(benchmark::State& state) { claim_release(state, ClaimMode::exclusive, "gpu:0"); }
BENCHMARK(BM_ArbiterExclusiveClaimRelease);
void BM_ArbiterSharedClaimRelease(benchmark::State& state) { claim_release(state, ClaimMode::shared, "lock:model-cache"); }
BENCHMARK(BM_ArbiterSharedClaimRelease);
void BM_ArbiterPathClaimRelease(benchmark::State& state) {
  claim_release(state, ClaimMode::exclusive, "path:/work/repo/src/module/sub");
}
BENCHMARK(BM_ArbiterPathClaimRelease);

// Shared claims accumulate: many holders at once, as with readers.
void BM_ArbiterSharedWithOtherHolders(benchmark::State& state) {
  Arbiter arbiter;
  auto key = arbiter.intern("lock:shared");
  ClaimItem item{*key, ClaimMode::shared};
  ClaimRequest request{ClaimantId{1}, Priority{0}, std::span(&item, 1), std::chrono::milliseconds(0)};
  for (int i = 0; i < 100; ++i) (void)arbiter.claim(request);
  for (auto _ : state) {
    auto c = arbiter.claim(request);
    auto r = arbiter.release(c->claim);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ArbiterSharedWithOtherHolders);

}  // namespace
}  // namespace symphony::pit

BENCHMARK_MAIN();
