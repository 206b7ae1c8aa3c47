// Benchmarks of the artifact store: the hot-path index lookups (by name, by
// digest; target ≤ 100 ns median) and durable 4 KiB puts from several
// threads with group commit against the same store committing every put on
// its own (max_batch = 1), measured in the same run. Run:
//   meson test -C build-rel --benchmark --suite bench pit-artifacts
// or build-rel/tests/pit/artifacts/pit_artifacts_bench directly. Stores live
// in fresh directories under /tmp (the file system matters: use the one the
// daemon will use, e.g. with TMPDIR unset and /tmp on disk).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <thread>

#include "pit/artifacts/artifact_store.h"
#include "tests/support/temp_dir.h"

namespace symphony::pit {
namespace {

using namespace std::chrono_literals;

class TempStore {
 public:
  explicit TempStore(StoreOptions options) {
    options.root = dir_.path() / "store";
    auto s = ArtifactStore::open(std::move(options));
    if (!s) {
      std::fprintf(stderr, "%s\n", s.error().message().c_str());
      std::abort();
    }
    store_ = std::move(*s);
  }
  ArtifactStore& operator*() const { return *store_; }
  ArtifactStore* operator->() const { return store_.get(); }

 private:
  symphony::testing::TempDir dir_{"symphony-artifacts-bench"};  // declared first: outlives store_
  std::unique_ptr<ArtifactStore> store_;
};

// A store with `kNames` names (2 versions each) for the lookups: 10 000
// names make most lookups miss the CPU caches; 256 is a hot working set.
template <int kNames>
struct LookupFixture {
  std::unique_ptr<TempStore> store;
  std::vector<std::string> names;
  std::vector<Digest> digests;

  LookupFixture() {
    StoreOptions o;
    o.max_batch_delay = 1ms;
    store = std::make_unique<TempStore>(o);
    names.reserve(kNames);
    std::vector<std::thread> threads;
    for (int i = 0; i < kNames; ++i) names.push_back("bench/workflow-" + std::to_string(i % 97) + "/out-" + std::to_string(i));
    digests.resize(kNames);
    // Many threads so group commit makes the setup fast.
    for (int t = 0; t < 64; ++t) {
      threads.emplace_back([this, t] {
        for (int i = t; i < kNames; i += 64) {
          for (int v = 0; v < 2; ++v) {
            std::string data = names[static_cast<std::size_t>(i)] + " v" + std::to_string(v);
            PutOptions p;
            p.name = names[static_cast<std::size_t>(i)];
            auto r = (*store)->put(std::as_bytes(std::span(data.data(), data.size())), p);
            if (!r) std::abort();
            digests[static_cast<std::size_t>(i)] = r->digest;
          }
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  static LookupFixture& get() {
    static LookupFixture fixture;
    return fixture;
  }
};

template <int kNames>
void BM_FindLatestByName(benchmark::State& state) {
  auto& f = LookupFixture<kNames>::get();
  // string_views into long-lived strings: the lookup itself builds none.
  std::vector<std::string_view> keys(f.names.begin(), f.names.end());
  std::shuffle(keys.begin(), keys.end(), std::mt19937(42));
  std::size_t i = 0;
  for (auto _ : state) {
    auto v = (*f.store)->find_latest(keys[i]);
    benchmark::DoNotOptimize(v);
    if (++i == keys.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FindLatestByName<256>)->Threads(1)->Threads(2);
BENCHMARK(BM_FindLatestByName<10'000>)->Threads(1)->Threads(2);

template <int kNames>
void BM_FindBlobByDigest(benchmark::State& state) {
  auto& f = LookupFixture<kNames>::get();
  std::vector<Digest> keys = f.digests;
  std::shuffle(keys.begin(), keys.end(), std::mt19937(43));
  std::size_t i = 0;
  for (auto _ : state) {
    auto b = (*f.store)->find_blob(keys[i]);
    benchmark::DoNotOptimize(b);
    if (++i == keys.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FindBlobByDigest<256>)->Threads(1)->Threads(2);
BENCHMARK(BM_FindBlobByDigest<10'000>)->Threads(1)->Threads(2);

void BM_FindLatestMiss(benchmark::State& state) {
  auto& f = LookupFixture<256>::get();
  for (auto _ : state) {
    auto v = (*f.store)->find_latest("bench/not-there");
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_FindLatestMiss);

// Durable puts of distinct 4 KiB artifacts from `threads` threads for
// `duration`; returns puts per second (and the batching factor).
struct PutRun {
  double puts_per_s = 0;
  double batching = 0;
};
PutRun durable_puts(StoreOptions options, int threads, std::chrono::milliseconds duration) {
  TempStore store(options);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> done{0};
  std::vector<std::thread> workers;
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::string data(4096, 'x');
      PutOptions p;
      p.name = "bench/put-" + std::to_string(t % 4);
      for (std::uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        std::snprintf(data.data(), 64, "thread %d put %llu", t, static_cast<unsigned long long>(i));
        auto r = store->put(std::as_bytes(std::span(data.data(), data.size())), p);
        if (!r) {
          std::fprintf(stderr, "%s\n", r.error().message().c_str());
          std::abort();
        }
        done.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  std::this_thread::sleep_for(duration);
  stop = true;
  for (auto& w : workers) w.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  StoreStats s = store->stats();
  return {double(done.load()) / seconds, double(s.puts) / double(std::max<std::uint64_t>(s.commit_batches, 1))};
}

// Group commit against a commit per put, same threads, same run.
void BM_DurablePut4KiB(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  PutRun group, single;
  for (auto _ : state) {
    StoreOptions grouped;  // defaults: max_batch 256, delay 200 µs
    group = durable_puts(grouped, threads, 1500ms);
    StoreOptions per_put;
    per_put.max_batch = 1;
    per_put.max_batch_delay = 0us;
    single = durable_puts(per_put, threads, 1500ms);
  }
  state.counters["group_puts_per_s"] = group.puts_per_s;
  state.counters["per_put_puts_per_s"] = single.puts_per_s;
  state.counters["ratio"] = group.puts_per_s / single.puts_per_s;
  state.counters["batching"] = group.batching;
}
BENCHMARK(BM_DurablePut4KiB)->Arg(8)->Arg(32)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace symphony::pit

BENCHMARK_MAIN();
