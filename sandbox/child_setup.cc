// The child's setup steps (see child_setup.h). The root is built the way
// bubblewrap builds it: a tmpfs becomes "/" with the host root parked at
// /oldroot, the new root is assembled under /newroot from binds of
// /oldroot/…, then "/newroot" is pivoted to and the host root detached, so
// nothing of the host is reachable that was not bound in.
#include "sandbox/child_setup.h"

#include <fcntl.h>
#include <poll.h>
#include <linux/mount.h>
#include <linux/prctl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox/fd_passing.h"

namespace symphony::sandbox {

namespace {

constexpr unsigned long kCloseRangeCloexec = 1u << 2;  // CLOSE_RANGE_CLOEXEC

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

void send_message(int fd, const ChildMessage& m) {
  while (::send(fd, &m, sizeof m, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

[[noreturn]] void fail(const ChildPlan& plan, Step step, long err, int detail) {
  ChildMessage m{};
  m.kind = ChildMessage::step_failed;
  m.step = static_cast<std::uint8_t>(step);
  m.error = static_cast<std::int32_t>(-err);
  m.detail = detail;
  send_message(plan.status_fd, m);
  _exit(127);
}

long run_op(const MountOp& op, SysCalls& sys) {
  switch (op.kind) {
    case MountOp::mkdir: {
      long r = sys.mkdir(op.target, 0755);
      return r == -EEXIST ? 0 : r;
    }
    case MountOp::touch: {
      long r = sys.create_file(op.target, 0644);
      return r == -EEXIST ? 0 : r;
    }
    case MountOp::symlink: return sys.symlink(op.source, op.target);
    case MountOp::tmpfs:
      return sys.mount("tmpfs", op.target, "tmpfs", MS_NOSUID | MS_NODEV, op.data);
    case MountOp::proc:
      return sys.mount("proc", op.target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
    case MountOp::devpts:
      return sys.mount("devpts", op.target, "devpts", MS_NOSUID | MS_NOEXEC, op.data);
    case MountOp::seal: {
      long r = sys.mount_setattr(op.target, 0, MOUNT_ATTR_RDONLY, 0);
      if (r == -ENOSYS) {
        r = sys.mount(nullptr, op.target, nullptr, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_RDONLY,
                      nullptr);
      }
      return r;
    }
    case MountOp::bind: {
      long r = sys.mount(op.source, op.target, nullptr, MS_BIND | MS_REC, nullptr);
      if (r == -ENOENT && op.optional) return 0;
      if (r < 0) return r;
      // Recursive, so mounts below a granted path are read-only too;
      // nosuid always (no_new_privs also stops setuid, this is defence in depth).
      std::uint64_t set = MOUNT_ATTR_NOSUID;
      if (op.read_only) set |= MOUNT_ATTR_RDONLY;
      if (!op.allow_devices) set |= MOUNT_ATTR_NODEV;
      r = sys.mount_setattr(op.target, AT_RECURSIVE, set, 0);
      if (r == -ENOSYS) {
        // Kernels before 5.12: a non-recursive remount keeps the safety
        // of the top mount, which is what granted paths are in practice.
        unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID;
        if (op.read_only) flags |= MS_RDONLY;
        if (!op.allow_devices) flags |= MS_NODEV;
        r = sys.mount(nullptr, op.target, nullptr, flags, nullptr);
      }
      return r;
    }
  }
  return -EINVAL;
}

long run_ops(const MountOp* ops, std::size_t count, Step step, SysCalls& sys, int* detail) {
  for (std::size_t i = 0; i < count; ++i) {
    if (ops[i].step != step) continue;
    long r = run_op(ops[i], sys);
    if (r < 0) {
      *detail = static_cast<int>(i);
      return r;
    }
  }
  return 0;
}

long drop_capabilities(const ChildPlan& plan, SysCalls& sys) {
  for (int cap = 0; cap <= plan.last_cap; ++cap) {
    if (plan.keep_caps & (1ull << cap)) continue;
    long r = sys.prctl(PR_CAPBSET_DROP, static_cast<unsigned long>(cap), 0, 0, 0);
    if (r < 0 && r != -EINVAL) return r;
  }
  long r = sys.capset(plan.keep_caps, plan.keep_caps, plan.keep_caps);
  if (r < 0) return r;
  r = sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (r < 0 && r != -EINVAL) return r;
  for (int cap = 0; cap <= plan.last_cap; ++cap) {
    if (!(plan.keep_caps & (1ull << cap))) continue;
    r = sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, static_cast<unsigned long>(cap), 0, 0);
    if (r < 0) return r;
  }
  return 0;
}

// Moves the passed fds to their numbers in two passes (sources may collide
// with targets), then marks every other fd close-on-exec.
long move_fds(ChildPlan& plan, SysCalls& sys, int* detail) {
  int high = plan.max_target_fd + 1;
  for (std::size_t i = 0; i < plan.fd_count; ++i) {
    int copy = static_cast<int>(::syscall(SYS_fcntl, plan.fds[i].from, F_DUPFD_CLOEXEC, high));
    if (copy < 0) {
      *detail = static_cast<int>(i);
      return -errno;
    }
    plan.fds[i].from = copy;
  }
  for (std::size_t i = 0; i < plan.fd_count; ++i) {
    long r = sys.dup3(plan.fds[i].from, plan.fds[i].to);
    if (r < 0) {
      *detail = static_cast<int>(i);
      return r;
    }
  }
  // Everything that is not a target: close-on-exec (the exec pipe must
  // survive until exec, so nothing is closed outright).
  int next = 0;
  for (int fd = 0; fd <= plan.max_target_fd + 1; ++fd) {
    bool target = false;
    for (std::size_t i = 0; i < plan.fd_count; ++i) target |= plan.fds[i].to == fd;
    if (target || fd == plan.max_target_fd + 1) {
      if (next < fd) ::syscall(SYS_close_range, next, fd - 1, kCloseRangeCloexec);
      next = fd + 1;
    }
  }
  ::syscall(SYS_close_range, plan.max_target_fd + 1, ~0u, kCloseRangeCloexec);
  return 0;
}

long exec_program(const ChildPlan& plan, SysCalls& sys) {
  if (std::strchr(plan.program, '/')) return sys.execve(plan.program, plan.argv, plan.envp);
  long result = -ENOENT;
  char path[4096];
  std::size_t name_len = std::strlen(plan.program);
  for (std::size_t i = 0; i < plan.path_dir_count; ++i) {
    std::size_t dir_len = std::strlen(plan.path_dirs[i]);
    if (dir_len + 1 + name_len + 1 > sizeof path) continue;
    std::memcpy(path, plan.path_dirs[i], dir_len);
    path[dir_len] = '/';
    std::memcpy(path + dir_len + 1, plan.program, name_len + 1);
    long r = sys.execve(path, plan.argv, plan.envp);
    if (r == -EACCES) result = r;  // remember, but a later directory may still work
    else if (r != -ENOENT && r != -ENOTDIR) return r;
  }
  return result;
}

// The sandbox's init: pid 1 of the pid namespace. A program running as pid 1
// would ignore signals it has no handler for (abort() and SIGTERM included),
// so the program runs as pid 2 and init reports how it ended, forwards
// termination signals and reaps orphans.
volatile pid_t g_program = 0;

void forward_signal(int sig) {
  if (g_program > 0) ::kill(g_program, sig);
}

struct ExecFailure {
  std::uint8_t step;
  std::int32_t error;
  int detail;
};

[[noreturn]] void supervise(const ChildPlan& plan, int exec_pipe, ChildMessage& started) {
  // Exec reports: nothing (exec succeeded, the pipe closed) or an errno.
  std::uint64_t t0 = now_ns();
  ExecFailure failure{};
  ssize_t n;
  do {
    n = ::read(exec_pipe, &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe);
  started.step_ns[static_cast<std::size_t>(Step::exec)] = static_cast<std::uint32_t>(now_ns() - t0);
  if (n == sizeof failure) {
    ChildMessage m{};
    m.kind = ChildMessage::step_failed;
    m.step = failure.step;
    m.error = failure.error;
    m.detail = failure.step == static_cast<std::uint8_t>(Step::exec) ? 0 : failure.detail;
    send_message(plan.status_fd, m);
    _exit(127);
  }
  send_message(plan.status_fd, started);

  struct sigaction forward {};
  forward.sa_handler = forward_signal;
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) {
    ::sigaction(sig, &forward, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      _exit(127);  // no children left without the program having been seen: cannot happen
    }
    if (pid != g_program) continue;  // an orphan, reaped
    ChildMessage m{};
    if (WIFEXITED(status)) {
      m.kind = ChildMessage::program_exited;
      m.detail = WEXITSTATUS(status);
      send_message(plan.status_fd, m);
      _exit(WEXITSTATUS(status));
    }
    m.kind = ChildMessage::program_signaled;
    m.detail = WTERMSIG(status);
    send_message(plan.status_fd, m);
    // Leaving pid 1 kills every other process of the namespace.
    _exit(128 + WTERMSIG(status));
  }
}

// What the program process reports on the exec pipe when it cannot exec.

struct ProgramArgs {
  ChildPlan* plan;
  SysCalls* sys;
  int exec_pipe;
  sigset_t old_mask;
};
ProgramArgs g_program_args;
alignas(64) char g_program_stack[64 * 1024];

long run_step_in_program(Step step, ChildPlan& plan, SysCalls& sys, int* detail);

// The program's side of fork_program: passed fds into place, then exec.
// An errno goes back on the exec pipe; success closes it (close-on-exec).
int program_main(void* arg) {
  auto* a = static_cast<ProgramArgs*>(arg);
  // Keep the exec pipe clear of the fd numbers about to be filled.
  int report = static_cast<int>(
      ::syscall(SYS_fcntl, a->exec_pipe, F_DUPFD_CLOEXEC, a->plan->max_target_fd + 1));
  if (report < 0) _exit(127);
  ::sigprocmask(SIG_SETMASK, &a->old_mask, nullptr);
  ExecFailure failure{};
  failure.step = static_cast<std::uint8_t>(Step::fds);
  long r = run_step_in_program(Step::fds, *a->plan, *a->sys, &failure.detail);
  if (r == 0) {
    failure.step = static_cast<std::uint8_t>(Step::exec);
    r = run_step_in_program(Step::exec, *a->plan, *a->sys, &failure.detail);
  }
  failure.error = static_cast<std::int32_t>(-r);
  ssize_t ignored = ::write(report, &failure, sizeof failure);
  (void)ignored;
  _exit(127);
}

long send_listener(int status_fd, int listener) {
  ChildMessage m{};
  m.kind = ChildMessage::seccomp_listener;
  if (send_with_fds(status_fd, &m, sizeof m, &listener, 1) < 0) return -errno;
  ::close(listener);
  return 0;
}

}  // namespace

long run_step(Step step, ChildPlan& plan, SysCalls& sys, int* detail) {
  *detail = -1;
  switch (step) {
    case Step::mount_private:
      return sys.mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
    case Step::root_tmpfs: {
      // A staging tmpfs over /tmp (in this mount namespace only) becomes "/"
      // for the build; /tmp exists on every host.
      long r = sys.mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k");
      if (r < 0) return r;
      if ((r = sys.chdir("/tmp")) < 0) return r;
      if ((r = sys.mkdir("oldroot", 0755)) < 0) return r;
      if ((r = sys.mkdir("newroot", 0755)) < 0) return r;
      return 0;
    }
    case Step::stage_pivot: {
      long r = sys.pivot_root(".", "oldroot");
      if (r < 0) return r;
      if ((r = sys.chdir("/")) < 0) return r;
      return run_ops(plan.base_ops, plan.base_op_count, Step::stage_pivot, sys, detail);
    }
    case Step::runtime_mounts:
    case Step::dev:
    case Step::proc:
    case Step::tmp:
      return run_ops(plan.base_ops, plan.base_op_count, step, sys, detail);
    case Step::loopback: {
      // The network namespace is made here rather than by clone: it is the
      // costliest namespace to create, and this runs while the parent is
      // still writing id maps and joining cgroups.
      if (!plan.network_namespace) return 0;
      long r = sys.unshare(CLONE_NEWNET);
      if (r < 0) return r;
      return sys.bring_up_loopback();
    }
    case Step::cgroup_namespace:
      return plan.cgroup_namespace ? sys.unshare(CLONE_NEWCGROUP) : 0;
    case Step::grant_mounts:
      return run_ops(plan.grant_ops, plan.grant_op_count, Step::grant_mounts, sys, detail);
    case Step::read_only_root: {
      long r = sys.mount_setattr("/newroot", 0, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0);
      if (r != -ENOSYS) return r;
      return sys.mount(nullptr, "/newroot", nullptr,
                       MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr);
    }
    case Step::hostname:
      return sys.sethostname(plan.hostname, std::strlen(plan.hostname));
    case Step::pivot_root: {
      // pivot_root(".", ".") stacks the old root on the new one; detaching
      // it leaves no path back to the host.
      long r = sys.chdir("/newroot");
      if (r < 0) return r;
      if ((r = sys.pivot_root(".", ".")) < 0) return r;
      if ((r = sys.umount2(".", MNT_DETACH)) < 0) return r;
      return sys.chdir("/");
    }
    case Step::chdir:
      return sys.chdir(plan.cwd);
    case Step::rlimits:
      for (std::size_t i = 0; i < plan.rlimit_count; ++i) {
        long r = sys.prlimit(plan.rlimits[i].resource, plan.rlimits[i].limit);
        if (r < 0) {
          *detail = static_cast<int>(i);
          return r;
        }
      }
      return 0;
    case Step::switch_ids: {
      if (plan.clear_groups) {
        long r = sys.setgroups_empty();
        if (r < 0) return r;
      }
      long r = sys.setresgid(plan.gid);
      if (r < 0) return r;
      return sys.setresuid(plan.uid);
    }
    case Step::capabilities:
      return drop_capabilities(plan, sys);
    case Step::no_new_privs:
      return sys.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    case Step::seccomp: {
      long listener = sys.seccomp_filter(&plan.seccomp, SECCOMP_FILTER_FLAG_NEW_LISTENER);
      if (listener < 0) return listener;
      return send_listener(plan.status_fd, static_cast<int>(listener));
    }
    case Step::fds:
      return move_fds(plan, sys, detail);
    case Step::exec:
      return exec_program(plan, sys);
    default:
      return -EINVAL;
  }
}

namespace {
long run_step_in_program(Step step, ChildPlan& plan, SysCalls& sys, int* detail) {
  return run_step(step, plan, sys, detail);
}
}  // namespace

[[noreturn]] void run_child(ChildPlan* plan, SysCalls& sys) {
  ChildMessage started{};
  started.kind = ChildMessage::started;
  auto timed = [&](Step step) {
    std::uint64_t t0 = now_ns();
    int detail = -1;
    long r = run_step(step, *plan, sys, &detail);
    if (r < 0) fail(*plan, step, r, detail);
    started.step_ns[static_cast<std::size_t>(step)] = static_cast<std::uint32_t>(now_ns() - t0);
  };

  // Die with the thread that spawned us; the status socket's EOF covers the
  // window before this call.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  // Dispositions the spawner ignored (SIGPIPE in the daemon) would survive
  // exec; the program starts with the defaults.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  }
  timed(Step::loopback);
  {
    std::uint64_t t0 = now_ns();
    char go = 0;
    ssize_t n;
    do {
      n = ::recv(plan->status_fd, &go, 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n != 1) _exit(127);
    started.step_ns[static_cast<std::size_t>(Step::wait_for_parent)] =
        static_cast<std::uint32_t>(now_ns() - t0);
  }
  timed(Step::switch_ids);
  // The uid change cleared the parent-death signal; arm it again, then make
  // sure the parent did not die in between (its end of the socket is gone).
  // Not dumpable: this process is a copy of the launcher's memory and stays
  // in the sandbox as init, so the program must not read it through
  // /proc/1/mem or /proc/1/environ, whatever uid the sandbox runs as.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  {
    pollfd pfd{plan->status_fd, POLLRDHUP, 0};
    if (::poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLRDHUP | POLLERR))) _exit(127);
  }
  for (Step s : {Step::mount_private, Step::root_tmpfs, Step::stage_pivot, Step::runtime_mounts,
                 Step::dev, Step::proc, Step::tmp}) {
    timed(s);
  }
  if (plan->zygote_shell) {
    ChildMessage ready{};
    ready.kind = ChildMessage::shell_ready;
    send_message(plan->status_fd, ready);
    // The request: a byte, with the spawn's fds attached; the plan's phase B
    // was written into the shared arena before it was sent.
    std::uint64_t t0 = now_ns();
    char go = 0;
    int received[kMaxPassedFds];
    std::size_t count = 0;
    ssize_t n;
    do {
      n = recv_with_fds(plan->status_fd, &go, 1, received, kMaxPassedFds, &count);
    } while (n < 0 && errno == EINTR);
    if (n != 1) _exit(127);
    if (count != plan->fd_count) fail(*plan, Step::wait_for_request, -EBADMSG, -1);
    for (std::size_t i = 0; i < count; ++i) plan->fds[i].from = received[i];
    started.step_ns[static_cast<std::size_t>(Step::wait_for_request)] =
        static_cast<std::uint32_t>(now_ns() - t0);
  }
  for (Step s : {Step::cgroup_namespace, Step::grant_mounts, Step::read_only_root, Step::hostname,
                 Step::pivot_root, Step::chdir, Step::rlimits, Step::capabilities, Step::no_new_privs, Step::seccomp}) {
    timed(s);
  }

  // fork_program: the program is pid 2, this process stays as init. The
  // program shares init's memory until it execs (CLONE_VM|CLONE_VFORK, as
  // posix_spawn does): nothing is copied, and the exec has no copied address
  // space to tear down.
  std::uint64_t t0 = now_ns();
  int exec_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) < 0) fail(*plan, Step::fork_program, -errno, -1);
  sigset_t all;
  sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, &g_program_args.old_mask);
  g_program_args.plan = plan;
  g_program_args.sys = &sys;
  g_program_args.exec_pipe = exec_pipe[1];
  long pid = ::clone(program_main, g_program_stack + sizeof g_program_stack,
                     CLONE_VM | CLONE_VFORK | SIGCHLD, &g_program_args);
  if (pid < 0) fail(*plan, Step::fork_program, -errno, -1);
  g_program = static_cast<pid_t>(pid);
  ::close(exec_pipe[1]);
  started.step_ns[static_cast<std::size_t>(Step::fork_program)] =
      static_cast<std::uint32_t>(now_ns() - t0);
  supervise(*plan, exec_pipe[0], started);
}

}  // namespace symphony::sandbox
