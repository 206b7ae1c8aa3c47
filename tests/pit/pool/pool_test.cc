// The pool manager against FakeLoader: refcounting, eviction, measured
// memory, budget errors, prewarm and pins, prediction, health and backoff,
// fair shares between priority classes.
#include "pit/pool/pool.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/pit/pool/fake_loader.h"
#include "tests/pit/pool/trace.h"

namespace symphony::pit::pool {
namespace {

using ::testing::HasSubstr;
using testing::FakeLoader;
using namespace std::chrono_literals;

class PoolTest : public ::testing::Test {
 protected:
  // A device "gpu0" with room for three 100-byte models, and "host".
  std::unique_ptr<Pool> make(std::uint64_t gpu_budget = 300, bool prediction = false) {
    PoolConfig config;
    config.devices = {{"host", Bytes{1'000'000}}, {"gpu0", Bytes{gpu_budget}}};
    config.prediction.enabled = prediction;
    config.backoff = {1000ms, 8000ms};
    config.clock = [this] { return Clock::time_point{} + std::chrono::milliseconds(now_ms_.load()); };
    auto pool = Pool::create(std::move(config), loader_);
    EXPECT_TRUE(pool) << pool.error().message();
    return std::move(*pool);
  }
  ModelId add(Pool& pool, const std::string& name, std::uint64_t bytes = 100, std::uint32_t instances = 1,
              std::uint32_t users = 1) {
    auto id = pool.add_model({name, "gpu0", Bytes{bytes}, instances, users});
    EXPECT_TRUE(id) << id.error().message();
    return *id;
  }
  Lease take(Pool& pool, ModelId id, Request r = {}) {
    auto lease = pool.allocate(id, r);
    EXPECT_TRUE(lease) << lease.error().message();
    return lease ? std::move(*lease) : Lease();
  }
  void advance(std::chrono::milliseconds d) { now_ms_ += d.count(); }

  FakeLoader loader_;
  std::atomic<std::int64_t> now_ms_{1'000'000};
};

TEST_F(PoolTest, MissLoadsThenReleaseCoolsThenHit) {
  auto pool = make();
  ModelId a = add(*pool, "a");
  {
    Lease l = take(*pool, a);
    EXPECT_EQ(pool->stats().count(InstanceState::in_use), 1u);
    EXPECT_EQ(loader_.count("load", "a"), 1u);
  }
  auto s = pool->stats();
  EXPECT_EQ(s.count(InstanceState::cooling), 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.hits, 0u);
  Lease again = take(*pool, a);
  EXPECT_EQ(pool->stats().hits, 1u);
  EXPECT_EQ(loader_.count("load", "a"), 1u);
  EXPECT_NE(again.instance().value, 0u);
}

TEST_F(PoolTest, ReferenceCountsSharedInstance) {
  auto pool = make();
  ModelId a = add(*pool, "a", 100, 1, 2);
  Lease l1 = take(*pool, a);
  Lease l2 = take(*pool, a);
  EXPECT_EQ(l1.slot(), l2.slot());
  EXPECT_EQ(l1.instance(), l2.instance());
  // Third user: max_users reached and no more instances: waits, times out.
  auto third = pool->allocate(a, {.wait = 30ms});
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().code(), ETIMEDOUT);
  EXPECT_THAT(third.error().message(), HasSubstr("'a'"));
  l1.reset();
  EXPECT_EQ(pool->stats().count(InstanceState::in_use), 1u);  // still one user
  Lease moved = std::move(l2);
  EXPECT_FALSE(l2);  // NOLINT: moved-from is empty by contract
  EXPECT_EQ(pool->stats().count(InstanceState::in_use), 1u);
  moved.reset();
  EXPECT_EQ(pool->stats().count(InstanceState::cooling), 1u);
}

TEST_F(PoolTest, EvictsLeastRecentlyUsedCoolingInstance) {
  auto pool = make();
  ModelId a = add(*pool, "a"), b = add(*pool, "b"), c = add(*pool, "c"), d = add(*pool, "d");
  take(*pool, a);
  take(*pool, b);
  take(*pool, c);
  take(*pool, a);  // a is now more recent than b
  take(*pool, d);
  EXPECT_EQ(loader_.count("unload", "b"), 1u);
  EXPECT_EQ(loader_.count("unload", "a") + loader_.count("unload", "c"), 0u);
  EXPECT_EQ(pool->stats().evictions, 1u);
}

TEST_F(PoolTest, EvictionNeverTouchesInUseOrPinned) {
  auto pool = make();
  ModelId p = add(*pool, "p"), a = add(*pool, "a"), c = add(*pool, "c"), d = add(*pool, "d"),
          e = add(*pool, "e");
  ASSERT_TRUE(pool->pin(p));
  Lease held = take(*pool, a);
  take(*pool, c);            // cooling: the only candidate
  Lease hd = take(*pool, d);  // evicts c
  EXPECT_EQ(loader_.count("unload", "c"), 1u);
  auto r = pool->allocate(e);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ENOSPC);
  EXPECT_EQ(loader_.count("unload", "a") + loader_.count("unload", "p") + loader_.count("unload", "d"), 0u);
  // The error says what is needed, what is available, and who holds it.
  const std::string msg = r.error().message();
  EXPECT_THAT(msg, HasSubstr("model 'e' needs 100 B on device 'gpu0'"));
  EXPECT_THAT(msg, HasSubstr("only 0 B of its 300 B budget"));
  EXPECT_THAT(msg, HasSubstr("'p#0' 100 B (ready, pinned)"));
  EXPECT_THAT(msg, HasSubstr("'a#0' 100 B (in_use, 1 users)"));
  EXPECT_THAT(msg, HasSubstr("'d#0' 100 B (in_use, 1 users)"));
  // Unpinned, p becomes a candidate.
  pool->unpin(p);
  EXPECT_TRUE(pool->allocate(e));
  EXPECT_EQ(loader_.count("unload", "p"), 1u);
}

TEST_F(PoolTest, ModelLargerThanTheBudgetFailsClearly) {
  auto pool = make();
  ModelId big = add(*pool, "big", 5000);
  auto r = pool->allocate(big);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("model 'big' needs 4.9 KiB on device 'gpu0'"));
  EXPECT_THAT(r.error().message(), HasSubstr("held: nothing"));
  // Nothing was loaded, nothing is left reserved.
  EXPECT_EQ(loader_.count("load", "big"), 0u);
  EXPECT_EQ(pool->stats().devices[1].held.value, 0u);
  EXPECT_EQ(pool->stats().count(InstanceState::unloaded), 1u);
}

TEST_F(PoolTest, AccountingFollowsMeasuredMemoryAfterUnload) {
  auto pool = make();
  loader_.set_unload_frees(0.6);  // claims 100, frees 60
  ModelId a = add(*pool, "a"), b = add(*pool, "b"), c = add(*pool, "c"), d = add(*pool, "d");
  take(*pool, a);
  take(*pool, b);
  take(*pool, c);
  take(*pool, d);  // evicts a: 40 bytes stay behind
  auto s = pool->stats();
  EXPECT_EQ(s.devices[1].unreclaimed.value, 40u);
  EXPECT_EQ(s.devices[1].held.value, 300u);
  EXPECT_EQ(s.devices[1].held.value + s.devices[1].unreclaimed.value, loader_.used("gpu0"));
  // The next load has to evict two instances, not one: 300 - 40 leaves room for two.
  ModelId e = add(*pool, "e");
  take(*pool, e);
  EXPECT_EQ(pool->stats().evictions, 3u);
}

TEST_F(PoolTest, LoadChargesTheLargerOfReportedAndMeasured) {
  auto pool = make();
  loader_.set_size("a", 150, 100);  // under-reports its use
  ModelId a = add(*pool, "a");
  take(*pool, a);
  EXPECT_EQ(pool->stats().devices[1].held.value, 150u);
}

TEST_F(PoolTest, PrewarmLoadsReadyInstancesAndCountsPrewarmHits) {
  auto pool = make();
  ModelId a = add(*pool, "a"), b = add(*pool, "b");
  std::vector<ModelId> both{a, b};
  ASSERT_TRUE(pool->prewarm(both));
  auto s = pool->stats();
  EXPECT_EQ(s.count(InstanceState::ready), 2u);
  EXPECT_EQ(s.prewarms, 2u);
  ASSERT_TRUE(pool->prewarm(both));  // already loaded: nothing to do
  EXPECT_EQ(loader_.count("load", "a"), 1u);
  take(*pool, a);
  s = pool->stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 0u);
  EXPECT_EQ(s.prewarm_hits, 1u);
}

TEST_F(PoolTest, PredictionPrewarmsTheLearnedSuccessor) {
  auto pool = make(200, /*prediction=*/true);
  ModelId w = add(*pool, "w"), x = add(*pool, "x"), y = add(*pool, "y"), z = add(*pool, "z");
  ModelId p = add(*pool, "p"), q = add(*pool, "q");
  // Only two fit: the cycle w x y z defeats LRU entirely.
  for (int round = 0; round < 6; ++round)
    for (ModelId m : {w, x, y, z}) take(*pool, m, {.stream = 7});
  take(*pool, x, {.stream = 7});
  {
    // Another workflow fills the device, so y is certainly not loaded.
    Lease lp = take(*pool, p, {.stream = 9});
    Lease lq = take(*pool, q, {.stream = 9});
    ASSERT_FALSE(loader_.is_loaded("y"));
  }
  EXPECT_GE(pool->maintain(), 1u);
  EXPECT_TRUE(loader_.is_loaded("y"));
  auto before = pool->stats();
  take(*pool, y, {.stream = 7});
  auto after = pool->stats();
  EXPECT_EQ(after.hits, before.hits + 1);
  EXPECT_EQ(after.prewarm_hits, before.prewarm_hits + 1);
}

TEST(PoolPrediction, BeatsPlainLruOnAWorkflowTrace) {
  auto trace = testing::make_trace(3000, 0.1, 7);
  auto predictive = testing::replay(trace, true);
  auto lru = testing::replay(trace, false);
  EXPECT_GT(predictive.hit_rate, lru.hit_rate + 0.3);
  EXPECT_GT(predictive.stats.prewarm_hits, 0u);
  EXPECT_EQ(lru.stats.prewarms, 0u);
}

TEST_F(PoolTest, HealthFailureFailsReloadsWithBackoff) {
  auto pool = make();
  ModelId a = add(*pool, "a");
  take(*pool, a);
  loader_.set_sick("a", "CUDA error: an illegal memory access was encountered");
  loader_.fail_loads_of("a", "CUDA error: out of memory");
  pool->check_health();
  auto s = pool->stats();
  EXPECT_EQ(s.count(InstanceState::failed), 1u);
  EXPECT_EQ(s.health_failures, 1u);
  // Until the backoff expires an allocation hears why at once.
  auto r = pool->allocate(a);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("illegal memory access"));
  EXPECT_THAT(r.error().message(), HasSubstr("next retry in 1000 ms"));
  const std::size_t loads = loader_.count("load", "a");
  pool->check_health();  // backoff not expired: no reload
  EXPECT_EQ(loader_.count("load", "a"), loads);
  advance(1000ms);
  pool->check_health();  // reload: broken instance unloaded, load fails
  EXPECT_EQ(loader_.count("unload", "a"), 1u);
  EXPECT_EQ(loader_.count("load", "a"), loads + 1);
  EXPECT_EQ(pool->stats().load_failures, 1u);
  advance(1000ms);  // backoff is now 2 s
  pool->check_health();
  EXPECT_EQ(loader_.count("load", "a"), loads + 1);
  advance(1000ms);
  pool->check_health();  // fails again: next in 4 s
  EXPECT_EQ(loader_.count("load", "a"), loads + 2);
  loader_.heal_loads_of("a");
  loader_.set_sick("a", "");
  advance(3999ms);
  pool->check_health();
  EXPECT_EQ(loader_.count("load", "a"), loads + 2);
  advance(1ms);
  pool->check_health();
  s = pool->stats();
  EXPECT_EQ(s.count(InstanceState::ready), 1u);
  EXPECT_EQ(s.reloads, 1u);
  EXPECT_TRUE(pool->allocate(a));
}

TEST_F(PoolTest, HealthFailureGivesWaitersTheLoadersError) {
  auto pool = make();
  ModelId a = add(*pool, "a");
  Lease held = take(*pool, a);
  std::optional<Result<Lease>> waited;
  std::thread waiter([&] { waited.emplace(pool->allocate(a, {.priority = {1}, .wait = 10s})); });
  while (pool->stats().queued[1].second != 1) std::this_thread::sleep_for(1ms);
  loader_.set_sick("a", "extension exited with status 139");
  pool->check_health();
  waiter.join();
  ASSERT_TRUE(waited.has_value());
  ASSERT_FALSE(*waited);
  EXPECT_THAT(waited->error().message(), HasSubstr("extension exited with status 139"));
  EXPECT_THAT(waited->error().message(), HasSubstr("model 'a'"));
  held.reset();  // the user of the failed instance still releases cleanly
  EXPECT_EQ(pool->stats().count(InstanceState::failed), 1u);
}

TEST_F(PoolTest, LoadFailureReachesTheCaller) {
  auto pool = make();
  ModelId a = add(*pool, "a");
  loader_.fail_loads_of("a", "weights file /models/a.safetensors: No such file");
  auto r = pool->allocate(a);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("a.safetensors: No such file"));
  EXPECT_EQ(pool->stats().devices[1].held.value, 0u);
  loader_.heal_loads_of("a");
  advance(1000ms);
  EXPECT_TRUE(pool->allocate(a));
}

TEST_F(PoolTest, UnknownNamesAndBadConfigAreErrors) {
  auto pool = make();
  EXPECT_FALSE(pool->allocate("nope"));
  EXPECT_FALSE(pool->allocate(ModelId{42}));
  EXPECT_FALSE(pool->add_model({"x", "tpu9", Bytes{1}}));
  add(*pool, "x");
  EXPECT_FALSE(pool->add_model({"x", "gpu0", Bytes{1}}));
  EXPECT_FALSE(pool->allocate("x", {.priority = {9}}));
  PoolConfig bad;
  EXPECT_FALSE(Pool::create(bad, loader_));
  bad.devices = {{"host", Bytes{1}}};
  bad.classes = {{"interactive", 0}};
  EXPECT_FALSE(Pool::create(bad, loader_));
}

TEST_F(PoolTest, ContendedInstanceIsSharedByClassWeight) {
  auto pool = make();  // classes: interactive 4, batch 1
  ModelId a = add(*pool, "a");
  Lease gate = take(*pool, a);
  constexpr int kEach = 20;
  std::mutex order_mu;
  std::vector<int> order;
  std::vector<std::thread> threads;
  for (int cls : {0, 1}) {
    for (int i = 0; i < kEach; ++i) {
      threads.emplace_back([&, cls] {
        auto l = pool->allocate(a, {.priority = {static_cast<std::uint8_t>(cls)}, .wait = 30s});
        ASSERT_TRUE(l) << l.error().message();
        std::lock_guard lk(order_mu);
        order.push_back(cls);
      });  // the lease is released here, handing the instance on
    }
  }
  for (;;) {
    auto q = pool->stats().queued;
    if (q[0].second == kEach && q[1].second == kEach) break;
    std::this_thread::sleep_for(1ms);
  }
  gate.reset();
  for (auto& t : threads) t.join();
  ASSERT_EQ(order.size(), 2u * kEach);
  // While both classes wait, grants go 4:1; batch is served at least once
  // every five grants.
  int interactive = 0, batch = 0;
  for (int i = 0; i < 25; ++i) (order[i] == 0 ? interactive : batch)++;
  EXPECT_EQ(interactive, 20);
  EXPECT_EQ(batch, 5);
  int gap = 0;
  for (int i = 0; i < 25; ++i) {
    gap = order[i] == 1 ? 0 : gap + 1;
    EXPECT_LE(gap, 4);
  }
  EXPECT_EQ(pool->stats().count(InstanceState::cooling), 1u);
}

}  // namespace
}  // namespace symphony::pit::pool
