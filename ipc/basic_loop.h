// What both loop backends share: the timer queue, deferred tasks and the
// run/stop skeleton. A backend supplies wait_and_dispatch(), which blocks for
// at most the given timeout and runs the completions that arrived.
#pragma once

#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

#include "ipc/event_loop.h"

namespace symphony::ipc {

class BasicLoop : public EventLoop {
 public:
  TimerId add_timer(std::chrono::nanoseconds delay, Task task) override;
  void cancel_timer(TimerId id) override;
  void defer(Task task) override;
  Result<void> run() override;
  void stop() override { stopped_ = true; }

 protected:
  using Clock = std::chrono::steady_clock;
  // Blocks until at least one completion or `timeout` (nullopt: no limit),
  // then runs the handlers of the completions that arrived.
  virtual Result<void> wait_and_dispatch(std::optional<std::chrono::nanoseconds> timeout) = 0;

 private:
  void run_deferred();
  void run_due_timers();

  bool stopped_ = false;
  std::vector<Task> deferred_;
  std::vector<Task> running_;  // swapped with deferred_ while running them
  std::map<std::pair<Clock::time_point, std::uint64_t>, Task> timers_;
  std::unordered_map<std::uint64_t, Clock::time_point> timer_deadlines_;
  std::uint64_t next_timer_id_ = 1;
};

}  // namespace symphony::ipc
