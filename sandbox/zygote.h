// The zygote: sandbox shells forked ahead of time, like Chromium's zygote
// but one step further. A shell has already been cloned into its namespaces
// and cgroup, had its id maps written and built the generic root (phase A);
// it waits for a request. A spawn then only does what depends on the spec
// (grants, hostname, pivot, limits, privileges, seccomp, exec: phase B), and
// a background thread forks the next shell. Private to sandbox/.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "base/unique_fd.h"
#include "sandbox/cgroup.h"
#include "sandbox/plan.h"
#include "sandbox/spawn_internal.h"
#include "sandbox/syscalls.h"

namespace symphony::sandbox {

struct Shell {
  pid_t pid = -1;
  UniqueFd pidfd;
  UniqueFd status;
  std::unique_ptr<Cgroup> cgroup;  // null when the launcher has no cgroups
  Arena arena;                     // shared with the shell
  ChildPlan* plan = nullptr;
  std::size_t phase_b_mark = 0;
  ~Shell();  // kills a shell that was never used
};

class ShellPool {
 public:
  // Keeps `target` shells of `shape` ready. `cgroups` may be null.
  ShellPool(SysCalls& sys, CgroupManager* cgroups, Shape shape, std::size_t target);
  ~ShellPool();
  ShellPool(const ShellPool&) = delete;
  ShellPool& operator=(const ShellPool&) = delete;

  const Shape& shape() const { return shape_; }
  // A ready shell, or nullptr when none is (the caller spawns directly).
  std::unique_ptr<Shell> take();
  // Starts making the shells taken since. Called once the spawn that took
  // one has finished: making a shell joins v1 cgroups, which holds the
  // kernel's cgroup/fork lock for an RCU grace period and would stall that
  // spawn's own fork and exec.
  void refill();
  // Blocks until `target` shells are ready or the last attempt failed
  // (benchmarks and tests call it to measure a warm pool).
  void wait_until_full();
  // Why the last shell could not be made ("" when the pool is healthy).
  std::string last_error() const;

 private:
  Result<std::unique_ptr<Shell>> make_shell();
  void refill_loop();

  SysCalls& sys_;
  CgroupManager* cgroups_;
  Shape shape_;
  std::size_t target_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable changed_;
  std::deque<std::unique_ptr<Shell>> ready_;
  std::string last_error_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts after everything above exists
};

}  // namespace symphony::sandbox
