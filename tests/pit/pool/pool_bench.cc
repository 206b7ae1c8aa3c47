// Benchmarks of pit/pool: the allocate-hit + release fast path against a
// std::mutex-protected free list doing the same job, single- and
// multi-threaded, and the cold-start hit rate of predictive prewarming
// against plain LRU on a generated workflow trace.
#include <benchmark/benchmark.h>

#include <chrono>
#include <mutex>
#include <vector>

#include "pit/pool/pool.h"
#include "tests/pit/pool/fake_loader.h"
#include "tests/pit/pool/trace.h"

namespace symphony::pit::pool {
namespace {

using testing::FakeLoader;

// One pool with one model per benchmark thread (so threads measure the
// fast path, not contention on one instance), each with one loaded instance.
struct HitFixture {
  static constexpr int kMaxThreads = 16;
  FakeLoader loader;
  std::unique_ptr<Pool> pool;
  std::vector<ModelId> models;
  ModelId shared{};
  HitFixture() {
    PoolConfig config;
    config.devices = {{"host", Bytes{1ull << 40}}};
    pool = std::move(*Pool::create(config, loader));
    for (int i = 0; i < kMaxThreads; ++i) {
      models.push_back(*pool->add_model({"m" + std::to_string(i), "host", Bytes{1 << 20}}));
      std::vector<ModelId> one{models.back()};
      (void)pool->prewarm(one);
    }
    shared = *pool->add_model({"shared", "host", Bytes{1 << 20}, 1, 1024});
    std::vector<ModelId> one{shared};
    (void)pool->prewarm(one);
  }
};
HitFixture& fixture() {
  static HitFixture f;
  return f;
}

// The baseline: the same operation as a mutex-protected free list of
// instance indices (pop on allocate, push on release).
struct MutexFreeList {
  std::mutex mu;
  std::vector<std::uint32_t> free{0};
  bool acquire(std::uint32_t& out) {
    std::lock_guard lk(mu);
    if (free.empty()) return false;
    out = free.back();
    free.pop_back();
    return true;
  }
  void release(std::uint32_t i) {
    std::lock_guard lk(mu);
    free.push_back(i);
  }
};
MutexFreeList& mutex_list(int i) {
  static std::vector<MutexFreeList> lists(HitFixture::kMaxThreads);
  return lists[i];
}

void BM_PoolAllocateHitRelease(benchmark::State& state) {
  auto& f = fixture();
  ModelId m = f.models[state.thread_index()];
  for (auto _ : state) {
    auto lease = f.pool->allocate(m);
    benchmark::DoNotOptimize(lease);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PoolAllocateHitRelease)->ThreadRange(1, 2)->UseRealTime();

// All threads on one model whose instance takes many users: the CAS word
// is contended.
void BM_PoolAllocateHitReleaseShared(benchmark::State& state) {
  auto& f = fixture();
  for (auto _ : state) {
    auto lease = f.pool->allocate(f.shared);
    benchmark::DoNotOptimize(lease);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PoolAllocateHitReleaseShared)->ThreadRange(1, 2)->UseRealTime();

void BM_MutexFreeListAcquireRelease(benchmark::State& state) {
  MutexFreeList& l = mutex_list(state.thread_index());
  for (auto _ : state) {
    std::uint32_t i = 0;
    benchmark::DoNotOptimize(l.acquire(i));
    l.release(i);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MutexFreeListAcquireRelease)->ThreadRange(1, 2)->UseRealTime();

// The baseline for the shared case: all threads on one mutex-protected list.
void BM_MutexFreeListShared(benchmark::State& state) {
  static MutexFreeList shared_list;
  static std::once_flag once;
  std::call_once(once, [] { shared_list.free.assign(64, 0); });
  for (auto _ : state) {
    std::uint32_t i = 0;
    benchmark::DoNotOptimize(shared_list.acquire(i));
    shared_list.release(i);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MutexFreeListShared)->ThreadRange(1, 2)->UseRealTime();

// Both in one loop, interleaved in blocks, so the ratio is taken under the
// same conditions: pool_ns / mutex_ns.
void BM_PoolVsMutexRatio(benchmark::State& state) {
  auto& f = fixture();
  MutexFreeList l;
  constexpr int kBlock = 100'000;
  double pool_ns = 0, mutex_ns = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kBlock; ++i) {
      auto lease = f.pool->allocate(f.models[0]);
      benchmark::DoNotOptimize(lease);
    }
    auto t1 = std::chrono::steady_clock::now();
    for (int i = 0; i < kBlock; ++i) {
      std::uint32_t k = 0;
      benchmark::DoNotOptimize(l.acquire(k));
      l.release(k);
    }
    auto t2 = std::chrono::steady_clock::now();
    pool_ns += std::chrono::duration<double, std::nano>(t1 - t0).count();
    mutex_ns += std::chrono::duration<double, std::nano>(t2 - t1).count();
  }
  const double n = static_cast<double>(state.iterations()) * kBlock;
  state.counters["pool_ns"] = pool_ns / n;
  state.counters["mutex_ns"] = mutex_ns / n;
  state.counters["pool_over_mutex"] = pool_ns / mutex_ns;
}
BENCHMARK(BM_PoolVsMutexRatio)->Unit(benchmark::kMillisecond);

// Cold-start hit rate (allocate found a ready instance) of the same trace
// with predictive prewarming and with plain LRU.
void BM_PredictionVsLru(benchmark::State& state) {
  auto trace = testing::make_trace(20'000, 0.1, 42);
  testing::ReplayResult predictive, lru;
  for (auto _ : state) {
    predictive = testing::replay(trace, true);
    lru = testing::replay(trace, false);
  }
  state.counters["hit_rate_predictive"] = predictive.hit_rate;
  state.counters["hit_rate_lru"] = lru.hit_rate;
  state.counters["prewarms"] = static_cast<double>(predictive.stats.prewarms);
  state.counters["prewarm_hits"] = static_cast<double>(predictive.stats.prewarm_hits);
  state.counters["loads_predictive"] =
      static_cast<double>(predictive.stats.misses + predictive.stats.prewarms);
  state.counters["loads_lru"] = static_cast<double>(lru.stats.misses);
}
BENCHMARK(BM_PredictionVsLru)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace symphony::pit::pool

BENCHMARK_MAIN();
