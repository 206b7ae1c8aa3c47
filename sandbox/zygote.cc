// The zygote's shell pool (see zygote.h). The refill thread is also the
// shells' parent for PR_SET_PDEATHSIG, so it lives as long as the pool.
#include "sandbox/zygote.h"

#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/child_setup.h"

namespace symphony::sandbox {

namespace {
constexpr std::size_t kShellArenaSize = 1u << 20;
}

Shell::~Shell() {
  if (pidfd) {
    ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
    siginfo_t info{};
    ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd.get()), &info, WEXITED | __WALL);
  }
  if (cgroup) (void)cgroup->remove();
}

ShellPool::ShellPool(SysCalls& sys, CgroupManager* cgroups, Shape shape, std::size_t target)
    : sys_(sys), cgroups_(cgroups), shape_(shape), target_(target), thread_([this] { refill_loop(); }) {}

ShellPool::~ShellPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  ready_.clear();
}

std::unique_ptr<Shell> ShellPool::take() {
  std::unique_ptr<Shell> shell;
  {
    std::lock_guard lock(mutex_);
    if (!ready_.empty()) {
      shell = std::move(ready_.front());
      ready_.pop_front();
    }
  }
  // An empty pool (the refill thread gave up after a failure, or is behind):
  // try again now; this spawn goes the direct way meanwhile.
  if (!shell) wake_.notify_one();
  return shell;
}

void ShellPool::refill() { wake_.notify_one(); }

void ShellPool::wait_until_full() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return ready_.size() >= target_ || !last_error_.empty() || stopping_; });
}

std::string ShellPool::last_error() const {
  std::lock_guard lock(mutex_);
  return last_error_;
}

void ShellPool::refill_loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (ready_.size() >= target_ || !last_error_.empty()) {
      wake_.wait(lock);
      // Woken after a failure (a take() found the pool empty): try again.
      if (ready_.size() < target_) last_error_.clear();
      continue;
    }
    lock.unlock();
    auto shell = make_shell();
    lock.lock();
    if (shell) {
      ready_.push_back(std::move(shell).value());
    } else {
      last_error_ = shell.error().message();
    }
    changed_.notify_all();
  }
}

Result<std::unique_ptr<Shell>> ShellPool::make_shell() {
  auto shell = std::make_unique<Shell>();
  if (cgroups_) {
    CgroupLimits none;
    none.prepare_all = true;  // the spawn's limits are written when it takes the shell
    none.restrict_devices = true;
    none.devices = cgroup_limits(Spec{}, {}).devices;
    auto group = cgroups_->create("zygote", none);
    if (!group) return std::move(group).error().wrap("zygote shell cgroup");
    shell->cgroup = std::move(group).value();
  }
  auto arena = Arena::create(kShellArenaSize, /*shared=*/true);
  if (!arena) return arena.error();
  shell->arena = std::move(arena).value();
  shell->plan = shell->arena.make<ChildPlan>();
  if (!shell->plan) return Error(E2BIG, "zygote arena");
  if (auto r = build_phase_a(shell->arena, *shell->plan, shape_, {}); !r) return r.error();
  shell->plan->zygote_shell = true;
  shell->phase_b_mark = shell->arena.mark();

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    return Error::from_errno("socketpair");
  }
  shell->status.reset(sv[0]);
  UniqueFd child_end(sv[1]);
  shell->plan->status_fd = child_end.get();

  int pidfd = -1;
  clone_args args{};
  args.flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS |
               CLONE_PIDFD;  // the network namespace: see Step::loopback
  args.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  if (shell->cgroup && shell->cgroup->v2_dir_fd() >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<std::uint64_t>(shell->cgroup->v2_dir_fd());
  }
  long pid = sys_.clone3(&args, sizeof args);
  if (pid < 0 && (args.flags & CLONE_INTO_CGROUP)) {
    args.flags &= ~static_cast<std::uint64_t>(CLONE_INTO_CGROUP);
    args.cgroup = 0;
    pid = sys_.clone3(&args, sizeof args);
  }
  if (pid == 0) run_child(shell->plan, sys_);
  if (pid < 0) return Error(static_cast<int>(-pid), "clone3 for a zygote shell");
  shell->pid = static_cast<pid_t>(pid);
  shell->pidfd.reset(pidfd);
  child_end.reset();
  if (auto r = write_id_maps(sys_, shell->pid, shape_); !r) return r.error();
  if (shell->cgroup) {
    // The costly part on v1 hierarchies (a migration waits for an RCU grace
    // period): done here, ahead of any request.
    if (auto r = shell->cgroup->add_process(shell->pid); !r) return r.error();
  }
  char go = 1;
  if (::send(shell->status.get(), &go, 1, MSG_NOSIGNAL) != 1) {
    return Error::from_errno("release a zygote shell");
  }
  // A shell is ready once its root is built; a failure there is reported
  // now, not to the first spawn that picks the shell.
  ChildMessage m{};
  ssize_t n;
  do {
    n = ::recv(shell->status.get(), &m, sizeof m, 0);
  } while (n < 0 && errno == EINTR);
  if (n != sizeof m) return Error(ECHILD, "zygote shell ended before it was ready");
  if (m.kind == ChildMessage::step_failed) {
    return describe_step_failure(*shell->plan, m).wrap("zygote shell");
  }
  if (m.kind != ChildMessage::shell_ready) return Error(EBADMSG, "zygote shell: unexpected message");
  return shell;
}

}  // namespace symphony::sandbox
