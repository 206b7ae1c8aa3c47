// A running Linux sandbox: the pidfd of its init, the status socket on which
// init reports how the program ended, the seccomp listener, a timerfd for
// the wall-clock limit and the cgroup. All of them sit in one epoll set, so
// an event loop watches a single fd (wait_fd) and calls poll_exit().
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>
#include "sandbox/seccomp_policy.h"
#include "sandbox/spawn_internal.h"

namespace symphony::sandbox {

namespace {

class LinuxChild final : public Child {
 public:
  explicit LinuxChild(ChildParts parts) : p_(std::move(parts)) {}

  ~LinuxChild() override {
    if (!report_) {
      (void)kill();
      siginfo_t info{};
      ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(p_.pidfd.get()), &info,
               WEXITED | __WALL);
    }
    if (p_.cgroup) (void)p_.cgroup->remove();
  }

  Result<void> init() {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) return Error::from_errno("epoll_create1");
    if (auto r = watch(p_.pidfd.get()); !r) return r;
    if (auto r = watch(p_.status.get()); !r) return r;
    if (p_.listener) {
      if (auto r = watch(p_.listener.get()); !r) return r;
    }
    if (p_.timeout) {
      timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
      if (!timer_) return Error::from_errno("timerfd_create");
      auto deadline = p_.started_at + *p_.timeout;
      auto left = std::max(deadline - std::chrono::steady_clock::now(),
                           std::chrono::steady_clock::duration(std::chrono::microseconds(1)));
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      itimerspec spec{};
      spec.it_value.tv_sec = ns / 1000000000;
      spec.it_value.tv_nsec = ns % 1000000000;
      if (::timerfd_settime(timer_.get(), 0, &spec, nullptr) < 0) {
        return Error::from_errno("timerfd_settime");
      }
      if (auto r = watch(timer_.get()); !r) return r;
    }
    if (p_.nvml && p_.gpu_memory) {
      gpu_timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
      if (!gpu_timer_) return Error::from_errno("timerfd_create");
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(p_.gpu_sample_interval).count();
      itimerspec spec{};
      spec.it_value.tv_sec = spec.it_interval.tv_sec = ns / 1000000000;
      spec.it_value.tv_nsec = spec.it_interval.tv_nsec = ns % 1000000000;
      if (::timerfd_settime(gpu_timer_.get(), 0, &spec, nullptr) < 0) {
        return Error::from_errno("timerfd_settime");
      }
      if (auto r = watch(gpu_timer_.get()); !r) return r;
    }
    return ok();
  }

  int pid() const override { return p_.pid; }
  int wait_fd() const override { return epoll_.get(); }

  std::optional<ExitReport> poll_exit() override {
    if (report_) return report_;
    drain_epoll();
    handle_seccomp();
    read_status();
    if (timer_) {
      std::uint64_t expirations = 0;
      if (::read(timer_.get(), &expirations, sizeof expirations) == sizeof expirations && !timed_out_) {
        timed_out_ = true;
        (void)kill();
      }
    }
    sample_gpu_memory();
    siginfo_t info{};
    int r = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(p_.pidfd.get()), &info,
                     WEXITED | WNOHANG | __WALL);
    if (r < 0 || info.si_pid == 0) return std::nullopt;
    read_status();  // init's last words may have arrived with its exit
    finish(info);
    return report_;
  }

  ExitReport wait() override {
    while (!poll_exit()) {
      pollfd pfd{epoll_.get(), POLLIN, 0};
      ::poll(&pfd, 1, -1);
    }
    return *report_;
  }

  Result<void> kill() override {
    if (report_) return ok();
    if (::syscall(SYS_pidfd_send_signal, p_.pidfd.get(), SIGKILL, nullptr, 0) < 0 && errno != ESRCH) {
      return Error::from_errno("pidfd_send_signal SIGKILL");
    }
    // Init's death kills its namespace; the cgroup catches anything that
    // left it (it cannot: setns is denied, but the group kill costs little).
    if (p_.cgroup) return p_.cgroup->kill();
    return ok();
  }

 private:
  Result<void> watch(int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) return Error::from_errno("epoll_ctl");
    return ok();
  }

  void drain_epoll() {
    epoll_event events[8];
    while (::epoll_wait(epoll_.get(), events, 8, 0) == 8) {
    }
  }

  // Each notification is a call outside the allow-list. Enforce: kill the
  // sandbox before the call runs (the caller is blocked in it) and remember
  // its name. Log: let it run and remember its name.
  void handle_seccomp() {
    if (!p_.listener) return;
    for (;;) {
      pollfd pfd{p_.listener.get(), POLLIN, 0};
      if (::poll(&pfd, 1, 0) <= 0 || !(pfd.revents & POLLIN)) return;
      seccomp_notif notif{};
      if (::ioctl(p_.listener.get(), SECCOMP_IOCTL_NOTIF_RECV, &notif) < 0) {
        if (errno == EINTR || errno == ENOENT) continue;
        return;
      }
      std::string name = syscall_name(notif.data.nr);
      if (p_.seccomp == SeccompMode::enforce) {
        if (denied_.empty()) denied_ = name;
        (void)kill();
        continue;
      }
      if (std::find(logged_.begin(), logged_.end(), name) == logged_.end()) {
        logged_.push_back(name);
        spdlog::warn("sandbox {}: seccomp (log mode): {} called {}, allowed for now", p_.name,
                  notif.pid, name);
      }
      seccomp_notif_resp resp{};
      resp.id = notif.id;
      resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
      ::ioctl(p_.listener.get(), SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
  }

  // NVML cannot cap a process's GPU memory; the limit is enforced by
  // sampling what the group's processes use and killing the sandbox once it
  // is over (reported as oom, naming the GPU).
  void sample_gpu_memory() {
    if (!gpu_timer_ || gpu_over_) return;
    std::uint64_t ticks = 0;
    if (::read(gpu_timer_.get(), &ticks, sizeof ticks) != sizeof ticks) return;
    std::vector<int> pids = p_.cgroup ? p_.cgroup->pids() : std::vector<int>{p_.pid};
    auto used = p_.nvml->memory_used_by(pids);
    if (!used) return;
    gpu_used_ = std::max(gpu_used_, used->value);
    if (used->value > p_.gpu_memory->value) {
      gpu_over_ = true;
      (void)kill();
    }
  }

  void read_status() {
    for (;;) {
      ChildMessage m{};
      ssize_t n = ::recv(p_.status.get(), &m, sizeof m, MSG_DONTWAIT);
      if (n != sizeof m) return;
      if (m.kind == ChildMessage::program_exited || m.kind == ChildMessage::program_signaled) {
        last_ = m;
      }
    }
  }

  void finish(const siginfo_t& info) {
    ExitReport r;
    r.wall = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                   p_.started_at);
    std::uint64_t oom = p_.cgroup ? p_.cgroup->oom_kills() : 0;
    int init_signal = info.si_code == CLD_EXITED ? 0 : info.si_status;
    int program_signal = last_ && last_->kind == ChildMessage::program_signaled ? last_->detail : 0;
    int signal = program_signal ? program_signal : init_signal;
    if (!denied_.empty()) {
      r.reason = ExitReason::seccomp;
      r.syscall = denied_;
      r.signal = SIGSYS;
      r.message = "killed by the seccomp filter: system call " + denied_ + " is not allowed";
    } else if (gpu_over_) {
      r.reason = ExitReason::oom;
      r.signal = SIGKILL;
      r.message = "killed for using " + std::to_string(gpu_used_) + " bytes of GPU memory (limit " +
                  std::to_string(p_.gpu_memory->value) + ")";
    } else if (timed_out_) {
      r.reason = ExitReason::timeout;
      r.signal = SIGKILL;
      r.message = "killed after the " + std::to_string(p_.timeout->count()) + " ms time limit";
    } else if (oom > 0 && signal == SIGKILL) {
      r.reason = ExitReason::oom;
      r.signal = SIGKILL;
      r.message = "killed by the OOM killer (memory limit reached)";
    } else if (last_ && last_->kind == ChildMessage::program_exited) {
      r.reason = ExitReason::exited;
      r.exit_code = last_->detail;
      r.message = "exited with code " + std::to_string(r.exit_code);
    } else if (signal == SIGSYS && init_signal == 0 && program_signal == SIGSYS) {
      // The filter kills calls made through another ABI (i386 int 0x80,
      // x32) outright, without a notification to name them.
      r.reason = ExitReason::seccomp;
      r.signal = SIGSYS;
      r.syscall = "(call through a non-native ABI)";
      r.message = "killed by the seccomp filter: a system call through a non-native ABI";
    } else if (signal) {
      r.reason = ExitReason::signaled;
      r.signal = signal;
      r.message = std::string("killed by signal ") + std::to_string(signal) + " (" +
                  (sigabbrev_np(signal) ? std::string("SIG") + sigabbrev_np(signal) : "?") + ")";
    } else {
      r.reason = ExitReason::exited;
      r.exit_code = info.si_status;
      r.message = "exited with code " + std::to_string(r.exit_code);
    }
    r.seccomp_log = logged_;
    report_ = std::move(r);
    if (p_.cgroup) {
      if (auto removed = p_.cgroup->remove(); !removed) {
        spdlog::warn("sandbox {}: removing its cgroup: {}", p_.name, removed.error().message());
      }
    }
  }

  ChildParts p_;
  UniqueFd epoll_;
  UniqueFd timer_;
  UniqueFd gpu_timer_;
  bool gpu_over_ = false;
  std::uint64_t gpu_used_ = 0;
  bool timed_out_ = false;
  std::string denied_;
  std::vector<std::string> logged_;
  std::optional<ChildMessage> last_;
  std::optional<ExitReport> report_;
};

}  // namespace

Result<std::unique_ptr<Child>> make_linux_child(ChildParts parts) {
  auto child = std::make_unique<LinuxChild>(std::move(parts));
  if (auto r = child->init(); !r) return r.error();
  return std::unique_ptr<Child>(std::move(child));
}

}  // namespace symphony::sandbox
