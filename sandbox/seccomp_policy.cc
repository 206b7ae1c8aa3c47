// The allow-list and its compilation. The list follows what ordinary
// programs (shells, interpreters, compilers, model runtimes) call, in the
// spirit of Docker's and Chromium's baseline policies; calls that reach the
// kernel's attack surface or escape a namespace are absent, so they fall to
// the default action and are reported by name. Argument filters close the
// holes a name alone leaves: clone with namespace flags, raw and packet
// sockets, personality changes, terminal injection.
#include "sandbox/seccomp_policy.h"

#include <linux/netlink.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <mutex>

#include "base/unique_fd.h"

namespace symphony::sandbox {

namespace {

// Allowed without conditions. Anything a name alone makes dangerous is
// absent: ptrace, mount/umount2, unshare/setns, pivot_root/chroot, bpf,
// io_uring_*, keyctl/add_key/request_key, perf_event_open, userfaultfd,
// kexec_*, *init_module, open_by_handle_at, process_vm_*, swapon, reboot…
const std::vector<const char*> kAllowed = {
    // files and descriptors
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
    "pwritev2", "open", "openat", "openat2", "close", "close_range", "creat", "lseek", "_llseek",
    "stat", "fstat", "lstat", "newfstatat", "fstatat64", "statx", "statfs", "fstatfs", "access",
    "faccessat", "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "mkdir",
    "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2", "link", "linkat",
    "symlink", "symlinkat", "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown",
    "fchownat", "truncate", "ftruncate", "fallocate", "fadvise64", "fsync", "fdatasync",
    "sync_file_range", "syncfs", "sync", "dup", "dup2", "dup3", "fcntl", "flock", "pipe", "pipe2",
    "sendfile", "splice", "tee", "vmsplice", "copy_file_range", "umask", "utime", "utimes",
    "utimensat", "futimesat", "getcwd", "chdir", "fchdir", "memfd_create", "getxattr",
    "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr", "setxattr", "lsetxattr",
    "fsetxattr", "removexattr", "lremovexattr", "fremovexattr", "inotify_init", "inotify_init1",
    "inotify_add_watch", "inotify_rm_watch", "fanotify_init", "mknod", "mknodat", "ioctl",
    // memory
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mlock", "mlock2",
    "munlock", "mlockall", "munlockall", "mincore", "msync", "membarrier", "get_mempolicy",
    "set_mempolicy", "mbind", "pkey_alloc", "pkey_free", "pkey_mprotect",
    // processes and threads (clone is filtered below; clone3 answers ENOSYS)
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "kill",
    "tkill", "tgkill", "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid",
    "setsid", "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
    "setfsuid", "setfsgid", "capget", "capset", "prctl", "arch_prctl", "set_tid_address",
    "set_robust_list", "get_robust_list", "rseq", "futex", "futex_waitv", "sched_yield",
    "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_getscheduler",
    "sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval",
    "sched_getattr", "getpriority", "setpriority", "getrlimit", "setrlimit", "prlimit64",
    "ugetrlimit", "getrusage", "times", "pidfd_open", "pidfd_send_signal", "pidfd_getfd",
    "ioprio_get", "ioprio_set", "getcpu", "uname", "sysinfo", "personality",
    // signals
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "rt_sigpending",
    "rt_sigtimedwait", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "signalfd",
    "signalfd4", "pause", "alarm",
    // time
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    "timer_create", "timer_settime", "timer_gettime", "timer_getoverrun", "timer_delete",
    "timerfd_create", "timerfd_settime", "timerfd_gettime", "getitimer", "setitimer",
    // polling and events
    "poll", "ppoll", "select", "pselect6", "_newselect", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2",
    // sockets (socket itself is filtered below)
    "socketpair", "bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername",
    "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown",
    "setsockopt", "getsockopt",
    // System V and POSIX IPC: private to the sandbox's IPC namespace
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl", "msgget",
    "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive",
    "mq_notify", "mq_getsetattr",
    // misc
    "getrandom", "restart_syscall", "seccomp",
};

constexpr int kSockTypeMask = 0xf;  // SOCK_TYPE_MASK: type without SOCK_CLOEXEC/NONBLOCK

Result<void> add(scmp_filter_ctx ctx, uint32_t action, const char* name,
                 std::vector<scmp_arg_cmp> args = {}) {
  int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return ok();  // not on this architecture
  int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(args.size()),
                                  args.empty() ? nullptr : args.data());
  if (rc < 0) return Error(-rc, std::string("seccomp rule for ") + name);
  return ok();
}

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

}  // namespace

Result<SeccompProgram> compile_seccomp_program(const SeccompOptions& options) {
  std::unique_ptr<void, CtxDeleter> holder(seccomp_init(SCMP_ACT_NOTIFY));
  scmp_filter_ctx ctx = holder.get();
  if (!ctx) return Error(ENOMEM, "seccomp_init");
  // Calls from other ABIs (x32, i386 through int 0x80) are refused outright:
  // the notification path only names native calls.
  if (int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS); rc < 0) {
    return Error(-rc, "seccomp bad-arch action");
  }
  // A binary tree of syscall numbers instead of a linear list: shorter paths
  // through the filter, both per call and when the kernel pre-computes its
  // per-syscall action cache at load time (which is most of a load's cost).
  if (int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2); rc < 0) {
    return Error(-rc, "seccomp optimize attribute");
  }
  for (const char* name : kAllowed) {
    if (std::string_view(name) == "personality" || std::string_view(name) == "ioctl") continue;
    if (auto r = add(ctx, SCMP_ACT_ALLOW, name); !r) return r.error();
  }
  // clone: threads and processes, never new namespaces.
  constexpr uint64_t kNamespaceFlags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
                                       CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP |
                                       CLONE_NEWTIME;
  if (auto r = add(ctx, SCMP_ACT_ALLOW, "clone",
                   {SCMP_A0_64(SCMP_CMP_MASKED_EQ, kNamespaceFlags, 0)});
      !r) {
    return r.error();
  }
  // clone3 passes its flags in memory a filter cannot read: answer ENOSYS,
  // which makes glibc fall back to clone (as Docker and Chromium do).
  if (auto r = add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3"); !r) return r.error();
  // socket: local and IP stream/datagram sockets only; no raw or packet
  // sockets (they would see or forge other traffic).
  for (int domain : {AF_INET, AF_INET6}) {
    for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
      if (auto r = add(ctx, SCMP_ACT_ALLOW, "socket",
                       {SCMP_A0_32(SCMP_CMP_EQ, static_cast<uint32_t>(domain)),
                        SCMP_A1_32(SCMP_CMP_MASKED_EQ, kSockTypeMask, static_cast<uint32_t>(type))});
          !r) {
        return r.error();
      }
    }
  }
  if (auto r = add(ctx, SCMP_ACT_ALLOW, "socket", {SCMP_A0_32(SCMP_CMP_EQ, AF_UNIX)}); !r) {
    return r.error();
  }
  // Routing-table queries (getaddrinfo with AI_ADDRCONFIG, `ip addr`) use
  // NETLINK_ROUTE: harmless in a private network namespace, and without
  // CAP_NET_ADMIN over the host's they can only read. Other netlink
  // families (audit, netfilter, uevents…) stay out.
  if (auto r = add(ctx, SCMP_ACT_ALLOW, "socket",
                   {SCMP_A0_32(SCMP_CMP_EQ, AF_NETLINK), SCMP_A2_32(SCMP_CMP_EQ, NETLINK_ROUTE)});
      !r) {
    return r.error();
  }
  // The network permission widens this to socket diagnostics (ss, netstat),
  // which list the host's sockets once the host network is granted.
  if (options.network) {
    if (auto r = add(ctx, SCMP_ACT_ALLOW, "socket",
                     {SCMP_A0_32(SCMP_CMP_EQ, AF_NETLINK),
                      SCMP_A2_32(SCMP_CMP_EQ, NETLINK_SOCK_DIAG)});
        !r) {
      return r.error();
    }
  }
  // personality: only queries and the flags libc and Wine-less programs use;
  // READ_IMPLIES_EXEC and ADDR_NO_RANDOMIZE would weaken the process.
  for (uint32_t persona : {0u, 8u, 0x20000u, 0x20008u, 0xffffffffu}) {
    if (auto r = add(ctx, SCMP_ACT_ALLOW, "personality", {SCMP_A0_32(SCMP_CMP_EQ, persona)}); !r) {
      return r.error();
    }
  }
  // ioctl: everything but pushing bytes into the controlling terminal's input.
  if (auto r = add(ctx, SCMP_ACT_ALLOW, "ioctl",
                   {SCMP_A1_32(SCMP_CMP_NE, static_cast<uint32_t>(TIOCSTI))});
      !r) {
    return r.error();
  }

  // Export the BPF program through a memfd: libseccomp 2.5 has no in-memory export.
  UniqueFd fd(memfd_create("seccomp-bpf", MFD_CLOEXEC));
  if (!fd) return Error::from_errno("memfd_create");
  if (int rc = seccomp_export_bpf(ctx, fd.get()); rc < 0) return Error(-rc, "seccomp_export_bpf");
  off_t size = lseek(fd.get(), 0, SEEK_END);
  if (size <= 0 || size % static_cast<off_t>(sizeof(sock_filter)) != 0) {
    return Error(EINVAL, "seccomp_export_bpf produced " + std::to_string(size) + " bytes");
  }
  SeccompProgram program;
  program.filter.resize(static_cast<std::size_t>(size) / sizeof(sock_filter));
  if (pread(fd.get(), program.filter.data(), static_cast<std::size_t>(size), 0) != size) {
    return Error::from_errno("read exported seccomp program");
  }
  return program;
}

Result<const SeccompProgram*> seccomp_program(const SeccompOptions& options) {
  static std::mutex mutex;
  static std::map<bool, std::unique_ptr<SeccompProgram>> cache;
  std::lock_guard lock(mutex);
  auto key = options.network;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second.get();
  auto built = compile_seccomp_program(options);
  if (!built) return built.error();
  auto [inserted, _] =
      cache.emplace(key, std::make_unique<SeccompProgram>(std::move(built).value()));
  return inserted->second.get();
}

std::string syscall_name(int nr) {
  char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
  if (!name) return "syscall " + std::to_string(nr);
  std::string result(name);
  std::free(name);
  return result;
}

const std::vector<const char*>& seccomp_allowed_syscalls() { return kAllowed; }

}  // namespace symphony::sandbox
