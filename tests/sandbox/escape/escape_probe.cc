// escape_probe: the attack programs of the sandbox escape suite, one small
// function per way out of the sandbox, picked by argv[1]. escape_test.cc runs
// each inside a real sandbox and asserts how it failed. Every attack reports
// the same way, so the test can be exact about the outcome:
//   exit code N (1..133)  the attempt failed with errno N (EROFS, ENOENT, ...);
//   exit code 0           a positive control worked, or a check passed;
//   kEscaped (200)        the attempt SUCCEEDED: a hole in the sandbox;
//   kMixed (202)          a multi-target attack failed in different ways;
//   kProbeBroken (201)    the probe could not prepare its attempt.
// A call the seccomp filter denies never returns: the sandbox is killed in it,
// and the report names the call. Details go to stdout as "key=value" lines.
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/mount.h>
#include <linux/netlink.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <linux/sched.h>
#include <net/ethernet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

constexpr int kEscaped = 200;
constexpr int kProbeBroken = 201;
constexpr int kMixed = 202;

using Args = std::vector<std::string>;

const char* errno_name(int e) {
  const char* name = strerrorname_np(e);
  return name ? name : "E?";
}

// The exit code for a call's result: the errno it failed with, or kEscaped.
int failed_with(long result) {
  if (result >= 0) return kEscaped;
  int e = errno;
  std::printf("errno=%s\n", errno_name(e));
  return e;
}

// For attacks on several targets: each target's errno on stdout; the common
// errno when all agree, kEscaped if any succeeded, kMixed otherwise.
class Tally {
 public:
  void add(const std::string& target, long result) {
    int e = result >= 0 ? 0 : errno;
    std::printf("%s=%s\n", target.c_str(), e == 0 ? "OK" : errno_name(e));
    if (e == 0) escaped_ = true;
    if (first_ < 0) first_ = e;
    else if (first_ != e) mixed_ = true;
  }
  int code() const {
    if (escaped_) return kEscaped;
    if (mixed_) return kMixed;
    return first_ < 0 ? kProbeBroken : first_;
  }

 private:
  int first_ = -1;
  bool escaped_ = false;
  bool mixed_ = false;
};

std::int64_t now_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// ---------------------------------------------------------------------------
// System calls the seccomp filter must deny by name (the sandbox dies in them)

int ptrace_traceme(const Args&) { return failed_with(syscall(SYS_ptrace, 0 /*PTRACE_TRACEME*/, 0, 0, 0)); }
int ptrace_attach_init(const Args&) {
  return failed_with(syscall(SYS_ptrace, 16 /*PTRACE_ATTACH*/, 1, 0, 0));
}
int mount_tmpfs(const Args&) { return failed_with(syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, nullptr)); }
int umount_proc(const Args&) { return failed_with(syscall(SYS_umount2, "/proc", 2 /*MNT_DETACH*/)); }
int unshare_user(const Args&) { return failed_with(syscall(SYS_unshare, CLONE_NEWUSER)); }
int setns_mnt(const Args&) {
  int fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);  // -1 is fine: the filter acts first
  return failed_with(syscall(SYS_setns, fd, 0));
}
int pivot_root_tmp(const Args&) { return failed_with(syscall(SYS_pivot_root, "/tmp", "/tmp")); }
int chroot_tmp(const Args&) { return failed_with(syscall(SYS_chroot, "/tmp")); }
int bpf_map_create(const Args&) {
  bpf_attr attr{};
  attr.map_type = BPF_MAP_TYPE_ARRAY;
  attr.key_size = 4;
  attr.value_size = 4;
  attr.max_entries = 1;
  return failed_with(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
}
int io_uring_setup(const Args&) {
  io_uring_params params{};
  return failed_with(syscall(SYS_io_uring_setup, 8, &params));
}
int keyctl_join(const Args&) {
  return failed_with(syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, nullptr));
}
int add_key(const Args&) {
  return failed_with(syscall(SYS_add_key, "user", "escape", "x", 1, KEY_SPEC_PROCESS_KEYRING));
}
int perf_event_open(const Args&) {
  perf_event_attr attr{};
  attr.type = PERF_TYPE_SOFTWARE;
  attr.size = sizeof attr;
  attr.config = PERF_COUNT_SW_CPU_CLOCK;
  return failed_with(syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
}
int userfaultfd(const Args&) { return failed_with(syscall(SYS_userfaultfd, O_CLOEXEC)); }
int kexec_load(const Args&) { return failed_with(syscall(SYS_kexec_load, 0, 0, nullptr, 0)); }
int init_module(const Args&) { return failed_with(syscall(SYS_init_module, nullptr, 0, "")); }
int finit_module(const Args&) {
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return failed_with(syscall(SYS_finit_module, fd, "", 0));
}
int open_by_handle_at(const Args&) {
  // A handle for the host's root directory would open it from anywhere.
  alignas(8) unsigned char buffer[sizeof(unsigned int) * 2 + 8] = {};
  auto* handle = reinterpret_cast<unsigned int*>(buffer);
  handle[0] = 8;  // handle_bytes
  handle[1] = 1;  // handle_type: FILEID_INO32_GEN
  buffer[8] = 2;  // inode 2: the root of most file systems
  return failed_with(syscall(SYS_open_by_handle_at, AT_FDCWD, buffer, O_RDONLY));
}
int socket_packet(const Args&) {
  return failed_with(syscall(SYS_socket, AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)));
}
int socket_raw_icmp(const Args&) {
  return failed_with(syscall(SYS_socket, AF_INET, SOCK_RAW, IPPROTO_ICMP));
}
// Netlink beyond NETLINK_ROUTE: the audit log and the host's device events.
int socket_netlink_audit(const Args&) {
  return failed_with(syscall(SYS_socket, AF_NETLINK, SOCK_RAW, NETLINK_AUDIT));
}
int socket_netlink_uevent(const Args&) {
  return failed_with(syscall(SYS_socket, AF_NETLINK, SOCK_RAW, NETLINK_KOBJECT_UEVENT));
}
int personality_rie(const Args&) { return failed_with(syscall(SYS_personality, READ_IMPLIES_EXEC)); }

// clone with namespace flags: a child that starts is a hole, wherever it runs.
int clone_with(unsigned long flags) {
  long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) _exit(kEscaped);
  if (pid < 0) return failed_with(pid);
  waitpid(static_cast<pid_t>(pid), nullptr, 0);
  return kEscaped;
}
int clone_newns(const Args&) { return clone_with(CLONE_NEWNS); }
int clone_newuser(const Args&) { return clone_with(CLONE_NEWUSER); }
// clone3 hides its flags from the filter; it must answer ENOSYS (never run).
int clone3_newns(const Args&) {
  clone_args args{};
  args.flags = CLONE_NEWNS;
  args.exit_signal = SIGCHLD;
  long pid = syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) _exit(kEscaped);
  if (pid > 0) waitpid(static_cast<pid_t>(pid), nullptr, 0);
  return failed_with(pid);
}
int process_vm_readv_init(const Args&) {
  char buffer[16];
  iovec local{buffer, sizeof buffer};
  iovec remote{reinterpret_cast<void*>(0x400000), sizeof buffer};
  return failed_with(syscall(SYS_process_vm_readv, 1, &local, 1, &remote, 1, 0));
}
int tiocsti(const Args&) {
  // Pushing bytes into the terminal's input runs commands outside the sandbox.
  char c = 'x';
  return failed_with(syscall(SYS_ioctl, 0, TIOCSTI, &c));
}
int fsopen_tmpfs(const Args&) { return failed_with(syscall(SYS_fsopen, "tmpfs", 0)); }
int open_tree_root(const Args&) {
  return failed_with(syscall(SYS_open_tree, AT_FDCWD, "/", OPEN_TREE_CLONE));
}
int reboot_cad_off(const Args&) {
  return failed_with(syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
                             LINUX_REBOOT_CMD_CAD_OFF, nullptr));
}
// ptrace through the i386 ABI (int 0x80, number 26), which a filter written
// for x86-64 numbers would not recognise.
int int80_ptrace(const Args&) {
  long result = 26;
  asm volatile("int $0x80" : "+a"(result) : "b"(0), "c"(0), "d"(0) : "memory");
  if (result >= 0) return kEscaped;
  std::printf("errno=%s\n", errno_name(static_cast<int>(-result)));
  return static_cast<int>(-result);
}
// The x32 ABI: x86-64 numbers with bit 30 set.
int x32_ptrace(const Args&) {
  return failed_with(syscall(0x40000000 | SYS_ptrace, 0, 0, 0, 0));
}

// ---------------------------------------------------------------------------
// The file system: only what was granted, read-only unless granted rw

int create_file(const std::string& path) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return failed_with(fd);
  ssize_t n = write(fd, "escaped\n", 8);
  close(fd);
  return n == 8 ? 0 : failed_with(-1);
}
int write_usr(const Args&) { return create_file("/usr/evil"); }
// A port below 1024 in the sandbox's own network namespace: EACCES unless
// net_bind_service was granted (then 0).
int bind_port_80(const Args&) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(80);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int r = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 ? 0 : errno;
  close(fd);
  return r;
}

// A fake device node planted in /dev could fool a program that trusts it.
int write_dev(const Args&) { return create_file("/dev/nvidia0"); }
int write_etc(const Args&) { return create_file("/etc/evil"); }
int write_root(const Args&) { return create_file("/newfile"); }
// Writes DIR/escape-probe: 0 (success) is the positive control of a rw grant.
int write_into(const Args& a) { return a.empty() ? kProbeBroken : create_file(a[0] + "/escape-probe"); }
int read_shadow(const Args&) { return failed_with(open("/etc/shadow", O_RDONLY | O_CLOEXEC)); }
// Every PATH must be absent (or otherwise unreachable).
int stat_paths(const Args& a) {
  Tally tally;
  for (const auto& path : a) {
    struct stat st {};
    tally.add(path, stat(path.c_str(), &st));
  }
  return tally.code();
}
int sys_absent(const Args&) { return stat_paths({"/sys", "/sys/fs/cgroup"}); }
int oldroot_absent(const Args&) { return stat_paths({"/oldroot", "/newroot"}); }

int write_existing(const char* path, std::string_view text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return failed_with(fd);
  ssize_t n = write(fd, text.data(), text.size());
  close(fd);
  return n >= 0 ? kEscaped : failed_with(-1);
}
int proc_hostname(const Args&) { return write_existing("/proc/sys/kernel/hostname", "escaped"); }
// 'h' only prints help to the kernel log: harmless should the write go through.
int proc_sysrq(const Args&) { return write_existing("/proc/sysrq-trigger", "h"); }
int proc_uid_map(const Args&) { return write_existing("/proc/self/uid_map", "0 0 1\n"); }
// The sandbox's init holds the launcher's status socket: its memory and fds
// are out of reach.
int proc_mem_init(const Args&) { return failed_with(open("/proc/1/mem", O_RDWR | O_CLOEXEC)); }
int pidfd_getfd_init(const Args&) {
  long pidfd = syscall(SYS_pidfd_open, 1, 0);
  if (pidfd < 0) return failed_with(pidfd);
  Tally tally;
  for (int fd = 0; fd < 16; ++fd) {
    tally.add("fd" + std::to_string(fd), syscall(SYS_pidfd_getfd, pidfd, fd, 0));
  }
  return tally.code();
}

// Who this process sees: its pid, its parent, init's command and every pid in /proc.
int proc_view(const Args&) {
  std::printf("pid=%d\nppid=%d\n", getpid(), getppid());
  char cmdline[256] = {};
  int fd = open("/proc/1/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, cmdline, sizeof cmdline - 1);
    if (n < 0) n = 0;
    cmdline[n] = 0;
    close(fd);
  }
  std::printf("init=%s\n", cmdline);
  DIR* dir = opendir("/proc");
  if (!dir) return kProbeBroken;
  std::string pids;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] >= '0' && e->d_name[0] <= '9') pids += (pids.empty() ? "" : ",") + std::string(e->d_name);
  }
  closedir(dir);
  std::printf("pids=%s\n", pids.c_str());
  return 0;
}

// Which fds the program was given: only stdio (and the one listing them).
int fd_view(const Args&) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return kProbeBroken;
  std::string fds;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(dir)) continue;
    fds += (fds.empty() ? "" : ",") + std::string(e->d_name);
  }
  closedir(dir);
  std::printf("fds=%s\n", fds.c_str());
  return 0;
}

// ---------------------------------------------------------------------------
// Privileges, signals, devices

int setuid_root(const Args&) { return failed_with(syscall(SYS_setuid, 0)); }
int mknod_mem(const Args&) { return failed_with(mknod("/tmp/mem", S_IFCHR | 0666, makedev(1, 1))); }
int kill_pid(const Args& a) {
  if (a.empty()) return kProbeBroken;
  return failed_with(kill(static_cast<pid_t>(atol(a[0].c_str())), SIGKILL));
}
int kill_everyone(const Args&) { return failed_with(kill(-1, SIGKILL)); }

// What a setuid-root copy of this program runs as.
int euid(const Args&) {
  std::printf("euid=%d\nruid=%d\n", geteuid(), getuid());
  return geteuid() == 0 ? kEscaped : 0;
}

// no_new_privs, the capability sets and the seccomp mode, as the kernel reports them.
int privileges(const Args&) {
  std::printf("no_new_privs=%d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
  FILE* status = fopen("/proc/self/status", "re");
  if (!status) return kProbeBroken;
  char line[256];
  while (fgets(line, sizeof line, status)) {
    std::string_view l(line);
    if (l.rfind("Cap", 0) == 0 || l.rfind("Seccomp:", 0) == 0 || l.rfind("NoNewPrivs:", 0) == 0) {
      std::string key(l.substr(0, l.find(':')));
      std::string_view value = l.substr(l.find(':') + 1);
      while (!value.empty() && (value.front() == '\t' || value.front() == ' ')) value.remove_prefix(1);
      while (!value.empty() && value.back() == '\n') value.remove_suffix(1);
      std::printf("%s=%.*s\n", key.c_str(), static_cast<int>(value.size()), value.data());
    }
  }
  fclose(status);
  return 0;
}

// ---------------------------------------------------------------------------
// Network: the private namespace has only loopback

// Connects to ADDRESS PORT over TCP; 0 when connected (and "hi" sent).
int connect_tcp(const Args& a) {
  if (a.size() != 2) return kProbeBroken;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return failed_with(fd);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(atoi(a[1].c_str())));
  if (inet_pton(AF_INET, a[0].c_str(), &addr.sin_addr) != 1) return kProbeBroken;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) return failed_with(-1);
  ssize_t n = write(fd, "hi", 2);
  close(fd);
  return n == 2 ? 0 : failed_with(-1);
}

// ---------------------------------------------------------------------------
// Resources: limits hold, nothing outlives the sandbox

// Forks until fork fails; the children wait to be killed with the sandbox.
int fork_bomb(const Args&) {
  for (int forks = 0; forks < 10000; ++forks) {
    pid_t pid = fork();
    if (pid == 0) {
      for (;;) pause();
    }
    if (pid < 0) {
      std::printf("forks=%d\n", forks);
      return failed_with(-1);
    }
  }
  std::printf("forks=10000\n");
  return kEscaped;
}

// Touches 1 GiB, page by page.
int memory_hog(const Args&) {
  constexpr std::size_t kSize = std::size_t{1} << 30;
  auto* p = static_cast<volatile char*>(
      mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  if (p == MAP_FAILED) return kProbeBroken;
  for (std::size_t i = 0; i < kSize; i += 4096) p[i] = 1;
  std::printf("touched=%zu\n", kSize);
  return kEscaped;
}

// Two threads spin for 1.5 s of wall time; prints the wall and CPU time used.
int cpu_hog(const Args&) {
  std::int64_t start = now_ns(CLOCK_MONOTONIC);
  std::int64_t deadline = start + 1'500'000'000;
  auto spin = [deadline] {
    while (now_ns(CLOCK_MONOTONIC) < deadline) {
    }
  };
  std::thread a(spin), b(spin);
  a.join();
  b.join();
  std::printf("wall_ns=%lld\ncpu_ns=%lld\n", static_cast<long long>(now_ns(CLOCK_MONOTONIC) - start),
              static_cast<long long>(now_ns(CLOCK_PROCESS_CPUTIME_ID)));
  return 0;
}

// A grandchild in its own session, deaf to SIGHUP and SIGTERM, appends a
// byte to FILE every 10 ms for 30 s; the program exits as soon as it runs.
int orphan(const Args& a) {
  if (a.empty()) return kProbeBroken;
  int ready[2];
  if (pipe(ready) < 0) return kProbeBroken;
  pid_t child = fork();
  if (child < 0) return kProbeBroken;
  if (child == 0) {
    setsid();
    if (fork() != 0) _exit(0);
    signal(SIGHUP, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    int fd = open(a[0].c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) _exit(kProbeBroken);
    (void)!write(ready[1], "r", 1);
    for (int i = 0; i < 3000; ++i) {
      (void)!write(fd, ".", 1);
      usleep(10000);
    }
    _exit(0);
  }
  waitpid(child, nullptr, 0);
  close(ready[1]);
  char c = 0;
  if (read(ready[0], &c, 1) != 1) return kProbeBroken;
  usleep(50000);
  std::printf("grandchild=running\n");
  return 0;
}

int sleep_long(const Args&) {
  sleep(10);
  return 0;
}

// In seccomp log mode a denied call runs (and fails in the kernel for lack
// of privilege); the program carries on.
int bpf_logged(const Args& a) {
  int code = bpf_map_create(a);
  return code == kEscaped ? kEscaped : 0;
}

// ---------------------------------------------------------------------------
// Plain endings, for the CLI's exit status

int exit_with(const Args& a) { return a.empty() ? kProbeBroken : atoi(a[0].c_str()); }
int segfault(const Args&) {
  raise(SIGSEGV);
  return kProbeBroken;
}
int abort_now(const Args&) { abort(); }

struct Attack {
  const char* name;
  int (*run)(const Args&);
};

const Attack kAttacks[] = {
    {"ptrace_traceme", ptrace_traceme},
    {"ptrace_attach_init", ptrace_attach_init},
    {"mount", mount_tmpfs},
    {"umount2", umount_proc},
    {"unshare_user", unshare_user},
    {"setns", setns_mnt},
    {"pivot_root", pivot_root_tmp},
    {"chroot", chroot_tmp},
    {"bpf", bpf_map_create},
    {"io_uring_setup", io_uring_setup},
    {"keyctl", keyctl_join},
    {"add_key", add_key},
    {"perf_event_open", perf_event_open},
    {"userfaultfd", userfaultfd},
    {"kexec_load", kexec_load},
    {"init_module", init_module},
    {"finit_module", finit_module},
    {"open_by_handle_at", open_by_handle_at},
    {"socket_packet", socket_packet},
    {"socket_raw_icmp", socket_raw_icmp},
    {"socket_netlink_audit", socket_netlink_audit},
    {"socket_netlink_uevent", socket_netlink_uevent},
    {"personality_read_implies_exec", personality_rie},
    {"clone_newns", clone_newns},
    {"clone_newuser", clone_newuser},
    {"clone3_newns", clone3_newns},
    {"process_vm_readv_init", process_vm_readv_init},
    {"tiocsti", tiocsti},
    {"fsopen", fsopen_tmpfs},
    {"open_tree", open_tree_root},
    {"reboot", reboot_cad_off},
    {"int80_ptrace", int80_ptrace},
    {"x32_ptrace", x32_ptrace},
    {"write_usr", write_usr},
    {"write_dev", write_dev},
    {"bind_port_80", bind_port_80},
    {"write_etc", write_etc},
    {"write_root", write_root},
    {"write_into", write_into},
    {"read_shadow", read_shadow},
    {"stat_paths", stat_paths},
    {"sys_absent", sys_absent},
    {"oldroot_absent", oldroot_absent},
    {"proc_hostname", proc_hostname},
    {"proc_sysrq", proc_sysrq},
    {"proc_uid_map", proc_uid_map},
    {"proc_mem_init", proc_mem_init},
    {"pidfd_getfd_init", pidfd_getfd_init},
    {"proc_view", proc_view},
    {"fd_view", fd_view},
    {"setuid_root", setuid_root},
    {"mknod_mem", mknod_mem},
    {"kill_pid", kill_pid},
    {"kill_everyone", kill_everyone},
    {"euid", euid},
    {"privileges", privileges},
    {"connect_tcp", connect_tcp},
    {"fork_bomb", fork_bomb},
    {"memory_hog", memory_hog},
    {"cpu_hog", cpu_hog},
    {"orphan", orphan},
    {"sleep_long", sleep_long},
    {"bpf_logged", bpf_logged},
    {"exit_with", exit_with},
    {"segfault", segfault},
    {"abort", abort_now},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: escape_probe ATTACK [ARGS...]\n");
    return kProbeBroken;
  }
  std::string_view name = argv[1];
  Args args(argv + 2, argv + argc);
  for (const auto& attack : kAttacks) {
    if (name == attack.name) {
      int code = attack.run(args);
      std::fflush(stdout);
      return code;
    }
  }
  std::fprintf(stderr, "escape_probe: unknown attack '%s'\n", argv[1]);
  return kProbeBroken;
}
