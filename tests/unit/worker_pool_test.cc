// Unit tests of the worker pool (ipc/worker_pool.h) on both loop backends:
// jobs run off the loop thread, completions run on it, and destroying the
// pool neither runs dropped jobs nor leaks their completions.
#include "ipc/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "tests/support/loop_backends.h"

namespace symphony::ipc {
namespace {

using namespace std::chrono_literals;
using Backend = symphony::testing::LoopBackend;

class WorkerPoolTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    auto loop = GetParam().make();
    if (!loop) GTEST_SKIP() << GetParam().name << " backend unavailable here: " << loop.error().message();
    loop_ = std::move(*loop);
  }
  // Runs the loop until stop(); a watchdog turns a lost completion into a failure.
  void run() {
    bool fired = false;
    auto watchdog = loop_->add_timer(10s, [&] {
      fired = true;
      loop_->stop();
    });
    ASSERT_TRUE(loop_->run());
    loop_->cancel_timer(watchdog);
    ASSERT_FALSE(fired) << "a completion never arrived";
  }
  std::unique_ptr<EventLoop> loop_;
};

TEST_P(WorkerPoolTest, JobsRunOnWorkersAndCompletionsOnTheLoopThread) {
  auto pool = WorkerPool::create(*loop_, 3);
  ASSERT_TRUE(pool) << pool.error().message();
  const auto loop_thread = std::this_thread::get_id();
  constexpr int kJobs = 200;
  int completed = 0;
  std::atomic<int> on_loop_thread_jobs{0};
  for (int i = 0; i < kJobs; ++i) {
    (*pool)->submit([&, i]() -> Task {
      if (std::this_thread::get_id() == loop_thread) ++on_loop_thread_jobs;
      int value = i * 2;
      return [&, value, i] {
        EXPECT_EQ(std::this_thread::get_id(), loop_thread);
        EXPECT_EQ(value, i * 2);
        if (++completed == kJobs) loop_->stop();
      };
    });
  }
  run();
  EXPECT_EQ(completed, kJobs);
  EXPECT_EQ(on_loop_thread_jobs.load(), 0);
  EXPECT_EQ((*pool)->queued(), 0u);
}

TEST_P(WorkerPoolTest, AJobWithoutCompletionStillLetsLaterOnesThrough) {
  auto pool = WorkerPool::create(*loop_, 1);
  ASSERT_TRUE(pool);
  std::atomic<int> ran{0};
  (*pool)->submit([&]() -> Task {
    ++ran;
    return {};
  });
  (*pool)->submit([&]() -> Task {
    ++ran;
    return [&] { loop_->stop(); };
  });
  run();
  EXPECT_EQ(ran.load(), 2);
}

TEST_P(WorkerPoolTest, DestroyingThePoolDropsQueuedJobsAndUndeliveredCompletions) {
  auto pool = WorkerPool::create(*loop_, 1);
  ASSERT_TRUE(pool);
  std::atomic<bool> release{false};
  std::atomic<int> started{0};
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> watch = token;
  (*pool)->submit([&, token]() -> Task {
    ++started;
    while (!release) std::this_thread::sleep_for(1ms);
    return [token] { ADD_FAILURE() << "completion ran after the pool was destroyed"; };
  });
  token.reset();
  for (int i = 0; i < 10; ++i) {
    (*pool)->submit([&]() -> Task {
      ++started;
      return {};
    });
  }
  while (started == 0) std::this_thread::sleep_for(1ms);
  std::thread releaser([&] {
    std::this_thread::sleep_for(20ms);
    release = true;
  });
  pool->reset();  // waits for the running job, drops the ten queued ones
  releaser.join();
  EXPECT_EQ(started.load(), 1);
  EXPECT_TRUE(watch.expired()) << "the undelivered completion was not destroyed";
  // The loop still runs fine afterwards (the cancelled poll is delivered).
  loop_->defer([&] { loop_->stop(); });
  run();
}

INSTANTIATE_TEST_SUITE_P(Backends, WorkerPoolTest, ::testing::ValuesIn(symphony::testing::kLoopBackends),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace symphony::ipc
