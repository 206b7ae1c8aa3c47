// The run loop shared by the io_uring and epoll backends.
#include "ipc/basic_loop.h"

namespace symphony::ipc {

TimerId BasicLoop::add_timer(std::chrono::nanoseconds delay, Task task) {
  std::uint64_t id = next_timer_id_++;
  auto deadline = Clock::now() + delay;
  timers_.emplace(std::make_pair(deadline, id), std::move(task));
  timer_deadlines_.emplace(id, deadline);
  return TimerId{id};
}

void BasicLoop::cancel_timer(TimerId id) {
  auto it = timer_deadlines_.find(id.value);
  if (it == timer_deadlines_.end()) return;
  timers_.erase(std::make_pair(it->second, id.value));
  timer_deadlines_.erase(it);
}

void BasicLoop::defer(Task task) { deferred_.push_back(std::move(task)); }

void BasicLoop::run_deferred() {
  // Tasks deferred while these run wait for the next iteration, so a task
  // that re-defers itself cannot starve I/O.
  running_.swap(deferred_);
  for (auto& task : running_) task();
  running_.clear();
}

void BasicLoop::run_due_timers() {
  auto now = Clock::now();
  while (!timers_.empty() && timers_.begin()->first.first <= now) {
    auto node = timers_.extract(timers_.begin());
    timer_deadlines_.erase(node.key().second);
    node.mapped()();
  }
}

Result<void> BasicLoop::run() {
  stopped_ = false;
  while (!stopped_) {
    run_deferred();
    run_due_timers();
    if (stopped_) break;
    std::optional<std::chrono::nanoseconds> timeout;
    if (!deferred_.empty()) {
      timeout = std::chrono::nanoseconds(0);
    } else if (!timers_.empty()) {
      auto left = timers_.begin()->first.first - Clock::now();
      timeout = std::max(std::chrono::nanoseconds(0),
                         std::chrono::duration_cast<std::chrono::nanoseconds>(left));
    }
    if (auto r = wait_and_dispatch(timeout); !r) return r;
  }
  return ok();
}

}  // namespace symphony::ipc
