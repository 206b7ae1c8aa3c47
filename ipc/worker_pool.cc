// Worker threads with completions delivered on the event loop via eventfd.
#include "ipc/worker_pool.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "base/log.h"

namespace symphony::ipc {

struct WorkerPool::Shared {
  EventLoop* loop = nullptr;
  UniqueFd wake;  // eventfd: a worker wrote completions
  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> jobs;
  std::vector<Task> done;
  std::vector<std::thread> workers;
  std::size_t running = 0;
  bool stopping = false;
  bool armed = false;

  void work() {
    std::unique_lock lock(mu);
    for (;;) {
      cv.wait(lock, [&] { return stopping || !jobs.empty(); });
      if (stopping) return;
      Job job = std::move(jobs.front());
      jobs.pop_front();
      ++running;
      lock.unlock();
      Task completion = job();
      job = nullptr;  // release what it captured before reporting back
      lock.lock();
      --running;
      if (completion) {
        bool first = done.empty();
        done.push_back(std::move(completion));
        if (first) {
          std::uint64_t one = 1;
          // The counter cannot overflow in practice; a failed write would
          // only delay delivery until the next job completes.
          [[maybe_unused]] ssize_t n = ::write(wake.get(), &one, sizeof(one));
        }
      }
    }
  }
};

Result<std::unique_ptr<WorkerPool>> WorkerPool::create(EventLoop& loop, unsigned threads) {
  auto shared = std::make_shared<Shared>();
  shared->loop = &loop;
  shared->wake = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!shared->wake) return Error::from_errno("worker pool: eventfd");
  if (threads == 0) threads = 1;
  for (unsigned i = 0; i < threads; ++i) {
    shared->workers.emplace_back([s = shared.get()] { s->work(); });
  }
  std::unique_ptr<WorkerPool> pool(new WorkerPool(std::move(shared)));
  pool->arm();
  return pool;
}

WorkerPool::WorkerPool(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(shared_->mu);
    shared_->stopping = true;
    shared_->jobs.clear();
  }
  shared_->cv.notify_all();
  for (auto& t : shared_->workers) t.join();
  // The poll handler holds a weak reference and finds nothing to do once the
  // loop delivers its cancellation.
  shared_->loop->cancel(shared_->wake.get());
  std::vector<Task> undelivered;
  {
    std::lock_guard lock(shared_->mu);
    undelivered.swap(shared_->done);
  }
}

void WorkerPool::arm() { arm_poll(shared_); }

void WorkerPool::arm_poll(const std::shared_ptr<Shared>& shared) {
  std::weak_ptr<Shared> weak = shared;
  shared->loop->poll(shared->wake.get(), POLLIN, [weak](Result<std::uint32_t> events) {
    auto s = weak.lock();
    if (!s) return;
    if (!events) {
      if (events.error().code() == ECANCELED) return;
      spdlog::error("worker pool: waiting for completions: {}", events.error().message());
      return;
    }
    std::uint64_t count;
    [[maybe_unused]] ssize_t n = ::read(s->wake.get(), &count, sizeof(count));
    std::vector<Task> ready;
    {
      std::lock_guard lock(s->mu);
      ready.swap(s->done);
      if (s->stopping) return;
    }
    for (auto& task : ready) task();
    // Re-arm unless a completion destroyed the pool.
    if (!s->stopping && weak.use_count() > 1) arm_poll(s);
  });
}

void WorkerPool::submit(Job job) {
  {
    std::lock_guard lock(shared_->mu);
    if (shared_->stopping) return;
    shared_->jobs.push_back(std::move(job));
  }
  shared_->cv.notify_one();
}

void WorkerPool::post(Task task) {
  std::lock_guard lock(shared_->mu);
  if (shared_->stopping) return;
  bool first = shared_->done.empty();
  shared_->done.push_back(std::move(task));
  if (first) {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(shared_->wake.get(), &one, sizeof(one));
  }
}

std::size_t WorkerPool::threads() const { return shared_->workers.size(); }

std::size_t WorkerPool::queued() const {
  std::lock_guard lock(shared_->mu);
  return shared_->jobs.size();
}

std::size_t WorkerPool::running() const {
  std::lock_guard lock(shared_->mu);
  return shared_->running;
}

}  // namespace symphony::ipc
