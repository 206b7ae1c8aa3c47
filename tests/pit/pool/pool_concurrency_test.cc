// Many threads allocating and releasing at once: no instance is lost, no
// instance serves more users than it may, and every reference comes back.
// Also the test to run under TSan (-Db_sanitize=thread).
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "pit/pool/pool.h"
#include "tests/pit/pool/fake_loader.h"

namespace symphony::pit::pool {
namespace {

using testing::FakeLoader;
using namespace std::chrono_literals;

TEST(PoolConcurrency, HitPathNeverExceedsUsersPerInstance) {
  FakeLoader loader;
  PoolConfig config;
  config.devices = {{"gpu0", Bytes{1000}}};
  auto pool = std::move(*Pool::create(config, loader));
  ModelId m = *pool->add_model({"m", "gpu0", Bytes{100}, 2, 3});
  std::map<std::uint64_t, std::atomic<int>> users;  // per loader instance
  std::mutex users_mu;
  std::atomic<bool> over{false};
  constexpr int kThreads = 8, kOps = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kOps; ++i) {
        auto lease = pool->allocate(m, {.wait = 10s});
        ASSERT_TRUE(lease) << lease.error().message();
        std::atomic<int>* n;
        {
          std::lock_guard lk(users_mu);
          n = &users[lease->instance().value];
        }
        if (n->fetch_add(1) + 1 > 3) over = true;
        n->fetch_sub(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_FALSE(over);
  auto s = pool->stats();
  EXPECT_EQ(s.hits + s.misses, static_cast<std::uint64_t>(kThreads) * kOps);
  EXPECT_EQ(s.count(InstanceState::in_use), 0u);
  EXPECT_EQ(s.count(InstanceState::cooling) + s.count(InstanceState::ready), loader.live());
  EXPECT_LE(loader.live(), 2u);
}

TEST(PoolConcurrency, ManyModelsUnderMemoryPressure) {
  FakeLoader loader;
  PoolConfig config;
  config.devices = {{"gpu0", Bytes{500}}};
  config.prediction.enabled = true;
  auto pool = std::move(*Pool::create(config, loader));
  std::vector<ModelId> models;
  for (int i = 0; i < 8; ++i)
    models.push_back(*pool->add_model({"m" + std::to_string(i), "gpu0", Bytes{100}, 2, 2}));
  constexpr int kThreads = 6, kOps = 3000;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < kOps; ++i) {
        // Mostly a thread's own two models, sometimes any: hits, misses,
        // evictions and waits all happen.
        std::uint32_t pick = rng() % 10 < 8 ? (t + rng() % 2) % 8 : rng() % 8;
        auto lease = pool->allocate(models[pick], {.priority = {static_cast<std::uint8_t>(t % 2)},
                                                   .stream = static_cast<std::uint32_t>(t),
                                                   .wait = 10s});
        // Budget errors are legitimate when every instance is in use.
        if (!lease) {
          if (lease.error().code() != ENOSPC) ADD_FAILURE() << lease.error().message();
          ++errors;
          continue;
        }
        if (i % 64 == 0) pool->maintain();
        if (i % 512 == 0 && t == 0) pool->check_health();
      }
    });
  }
  for (auto& th : threads) th.join();
  auto s = pool->stats();
  EXPECT_EQ(s.hits + s.misses, static_cast<std::uint64_t>(kThreads) * kOps);
  EXPECT_EQ(s.count(InstanceState::in_use), 0u);
  EXPECT_EQ(s.count(InstanceState::loading) + s.count(InstanceState::unloading), 0u);
  EXPECT_EQ(s.count(InstanceState::failed), 0u);
  // No lost instance: every instance the loader still holds is one the pool
  // knows as loaded, and the memory accounting matches the device.
  EXPECT_EQ(s.count(InstanceState::cooling) + s.count(InstanceState::ready), loader.live());
  EXPECT_EQ(s.devices[0].held.value, loader.used("gpu0"));
  EXPECT_LE(s.devices[0].held.value, 500u);
  for (const auto& q : s.queued) EXPECT_EQ(q.second, 0u);
}

}  // namespace
}  // namespace symphony::pit::pool
