// The sandbox escape suite: every way out of a sandbox that escape_probe
// (escape/escape_probe.cc) knows is tried inside a real sandbox, through the
// library (make_launcher, spawn, wait) and, for the exit-status contract,
// through the symphony-sandbox CLI. Each attempt must fail in the one way
// the sandbox promises: the seccomp filter names the call, the file system
// answers EROFS or ENOENT, the private network refuses, the limits hold.
// A test that fails here is a hole to fix in the sandbox, never in the test.
#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "sandbox/launcher.h"
#include "sandbox/linux_launcher.h"

namespace symphony::sandbox {
namespace {

using namespace std::chrono_literals;
using ::testing::Contains;

// The probe's exit codes besides errno values (escape_probe.cc).
constexpr int kEscaped = 200;

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// Where things are

std::string self_dir() {
  std::error_code ec;
  return fs::read_symlink("/proc/self/exe", ec).parent_path().string();
}

// meson test sets ESCAPE_PROBE and SYMPHONY_SANDBOX; run by hand, the build
// layout next to this executable is used.
std::string probe_path() {
  if (const char* p = std::getenv("ESCAPE_PROBE")) return p;
  return self_dir() + "/escape/escape_probe";
}

std::string cli_path() {
  if (const char* p = std::getenv("SYMPHONY_SANDBOX")) return p;
  return fs::weakly_canonical(self_dir() + "/../../sandbox/symphony-sandbox").string();
}

// The uid a sandbox runs as by default: nobody for a root launcher.
uid_t sandbox_uid() { return ::geteuid() == 0 ? 65534 : ::geteuid(); }

// A host directory for one test, owned by the sandbox's user so that a
// read-write grant is writable; removed with its contents.
class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/symphony-escape-XXXXXX";
    if (::mkdtemp(name) != nullptr) path_ = name;
    (void)::chmod(path_.c_str(), 0755);
    if (::geteuid() == 0) (void)::chown(path_.c_str(), sandbox_uid(), sandbox_uid());
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::uintmax_t file_size(const std::string& path) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  return ec ? 0 : size;
}

// ---------------------------------------------------------------------------
// Running the probe in a sandbox

struct Outcome {
  ExitReport report;
  std::string out;  // the program's stdout

  // The "key=value" lines the probe printed.
  std::map<std::string, std::string> values() const {
    std::map<std::string, std::string> v;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
      auto eq = line.find('=');
      if (eq != std::string::npos) v[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return v;
  }
  // For failure messages: the report and what the probe said.
  std::string describe() const { return "report: " + report.to_json() + "\nprobe stdout:\n" + out; }
};

// A probe run: ATTACK ARGS..., with the probe's directory granted read-only
// (nothing else), stdout captured.
Spec probe_spec(const std::string& attack, std::vector<std::string> args = {}) {
  Spec spec;
  spec.argv = {probe_path(), attack};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.name = "escape-" + attack;
  spec.permissions.binds.push_back({fs::path(probe_path()).parent_path().string(), Access::read_only});
  return spec;
}

class EscapeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto made = make_launcher({});
    if (!made) {
      launcher_error_ = made.error().message();
      return;
    }
    launcher_ = std::move(made).value().release();
  }
  static void TearDownTestSuite() {
    delete launcher_;
    launcher_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(launcher_, nullptr) << "make_launcher: " << launcher_error_;
    ASSERT_EQ(::access(probe_path().c_str(), X_OK), 0) << "no probe at " << probe_path();
  }

  // Spawns `spec` with stdout into a pipe, waits for the sandbox to end and
  // returns the report and the output. A spawn error is a setup_failed report.
  static Outcome sandboxed(Spec spec) {
    Outcome result;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return result;
    }
    UniqueFd read_end(fds[0]);
    UniqueFd write_end(fds[1]);
    spec.fds.push_back({write_end.get(), 1});
    auto child = launcher_->spawn(spec);
    write_end.reset();  // EOF once every process of the sandbox is gone
    std::thread reader([&] {
      char buffer[4096];
      for (;;) {
        ssize_t n = ::read(read_end.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        result.out.append(buffer, static_cast<std::size_t>(n));
      }
    });
    if (child) {
      result.report = (*child)->wait();
    } else {
      result.report = setup_failed_report(child.error());
    }
    reader.join();
    return result;
  }

  static Launcher* launcher_;
  static std::string launcher_error_;
};

Launcher* EscapeTest::launcher_ = nullptr;
std::string EscapeTest::launcher_error_;

const char* errno_name(int code) {
  const char* name = code == 0 ? "0" : strerrorname_np(code);
  return name ? name : "?";
}

// The probe exited with `code`: an errno it was refused with, or 0.
#define EXPECT_EXITED(run, code)                                           \
  do {                                                                     \
    const Outcome& r_ = (run);                                                 \
    EXPECT_EQ(to_string(r_.report.reason), "exited") << r_.describe();     \
    EXPECT_NE(r_.report.exit_code, kEscaped) << "ESCAPED: " << r_.describe(); \
    EXPECT_EQ(r_.report.exit_code, (code))                                 \
        << "expected " << errno_name(code) << "; " << r_.describe();  \
  } while (0)

// ---------------------------------------------------------------------------
// System calls outside the allow-list: the sandbox is killed inside the call
// and the report names it.

struct SeccompCase {
  const char* attack;
  const char* syscall;
};

const SeccompCase kSeccompCases[] = {
    {"ptrace_traceme", "ptrace"},
    {"ptrace_attach_init", "ptrace"},
    {"mount", "mount"},
    {"umount2", "umount2"},
    {"unshare_user", "unshare"},
    {"setns", "setns"},
    {"pivot_root", "pivot_root"},
    {"chroot", "chroot"},
    {"bpf", "bpf"},
    {"io_uring_setup", "io_uring_setup"},
    {"keyctl", "keyctl"},
    {"add_key", "add_key"},
    {"perf_event_open", "perf_event_open"},
    {"userfaultfd", "userfaultfd"},
    {"kexec_load", "kexec_load"},
    {"init_module", "init_module"},
    {"finit_module", "finit_module"},
    {"open_by_handle_at", "open_by_handle_at"},
    {"socket_packet", "socket"},
    {"socket_raw_icmp", "socket"},
    {"socket_netlink_audit", "socket"},  // of netlink, only NETLINK_ROUTE is allowed
    {"socket_netlink_uevent", "socket"},
    {"personality_read_implies_exec", "personality"},
    {"clone_newns", "clone"},
    {"clone_newuser", "clone"},
    {"process_vm_readv_init", "process_vm_readv"},
    {"tiocsti", "ioctl"},
    {"fsopen", "fsopen"},
    {"open_tree", "open_tree"},
    {"reboot", "reboot"},
};

class SeccompKills : public EscapeTest, public ::testing::WithParamInterface<SeccompCase> {};

TEST_P(SeccompKills, NamesTheDeniedCall) {
  auto r = sandboxed(probe_spec(GetParam().attack));
  EXPECT_EQ(to_string(r.report.reason), "seccomp") << r.describe();
  EXPECT_EQ(r.report.syscall, GetParam().syscall) << r.describe();
  EXPECT_EQ(r.report.signal, SIGSYS) << r.describe();
}

INSTANTIATE_TEST_SUITE_P(Escape, SeccompKills, ::testing::ValuesIn(kSeccompCases),
                         [](const auto& info) { return std::string(info.param.attack); });

// The one grantable capability works where the sandbox owns the resource:
// its own network namespace.
TEST_F(EscapeTest, GrantedNetBindServiceBindsALowPort) {
  auto spec = probe_spec("bind_port_80");
  spec.permissions.capabilities = {Capability::net_bind_service};
  EXPECT_EXITED(sandboxed(spec), 0);
}

// The i386 (int 0x80) and x32 ABIs number calls differently; the filter
// kills any call from them outright (SCMP_ACT_KILL_PROCESS: no notification
// names the call, so the report says which kind of call it was).
TEST_F(EscapeTest, OtherAbisAreKilledOutright) {
  for (const char* attack : {"int80_ptrace", "x32_ptrace"}) {
    auto r = sandboxed(probe_spec(attack));
    EXPECT_EQ(to_string(r.report.reason), "seccomp") << attack << ": " << r.describe();
    EXPECT_EQ(r.report.syscall, "(call through a non-native ABI)") << attack << ": " << r.describe();
    EXPECT_EQ(r.report.signal, SIGSYS) << attack << ": " << r.describe();
  }
}

// ---------------------------------------------------------------------------
// Attempts the kernel refuses with a specific errno (the probe's exit code).

struct RefusedCase {
  const char* attack;
  int error;
};

const RefusedCase kRefusedCases[] = {
    // clone3 hides its flags from the filter: ENOSYS, and glibc falls back to clone.
    {"clone3_newns", ENOSYS},
    // The root, /usr and the minimal /etc are read-only.
    {"write_usr", EROFS},
    {"write_dev", EROFS},
    // No capability by default: ports below 1024 are refused even in the
    // sandbox's own network namespace.
    {"bind_port_80", EACCES},
    {"write_etc", EROFS},
    {"write_root", EROFS},
    // Never bound in: the host's secrets, /sys, the staging directories.
    {"read_shadow", ENOENT},
    {"sys_absent", ENOENT},
    {"oldroot_absent", ENOENT},
    // /proc of the sandbox's own namespaces, still not writable where it matters.
    {"proc_hostname", EACCES},
    {"proc_uid_map", EPERM},
    // The sandbox's init holds the launcher's status socket: neither its
    // memory nor its fds can be taken.
    {"proc_mem_init", EACCES},
    {"pidfd_getfd_init", EPERM},
    // Root is not mapped in the user namespace; no CAP_MKNOD.
    {"setuid_root", EINVAL},
    {"mknod_mem", EPERM},
};

class Refused : public EscapeTest, public ::testing::WithParamInterface<RefusedCase> {};

TEST_P(Refused, WithTheExpectedErrno) {
  EXPECT_EXITED(sandboxed(probe_spec(GetParam().attack)), GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(Escape, Refused, ::testing::ValuesIn(kRefusedCases),
                         [](const auto& info) { return std::string(info.param.attack); });

// ---------------------------------------------------------------------------
// The file system

TEST_F(EscapeTest, ReadOnlyGrantRefusesWrites) {
  TempDir dir;
  auto spec = probe_spec("write_into", {dir.path()});
  spec.permissions.binds.push_back({dir.path(), Access::read_only});
  EXPECT_EXITED(sandboxed(spec), EROFS);
  EXPECT_FALSE(fs::exists(dir.path() + "/escape-probe"));
}

// Positive control: the same write into a read-write grant reaches the host.
TEST_F(EscapeTest, ReadWriteGrantTakesWrites) {
  TempDir dir;
  auto spec = probe_spec("write_into", {dir.path()});
  spec.permissions.binds.push_back({dir.path(), Access::read_write});
  EXPECT_EXITED(sandboxed(spec), 0);
  EXPECT_EQ(read_file(dir.path() + "/escape-probe"), "escaped\n");
}

// Host paths that exist but were not granted are simply not there, even
// beside the probe's own granted directory and in /tmp.
TEST_F(EscapeTest, UngrantedHostPathsAreAbsent) {
  TempDir dir;
  std::string secret = dir.path() + "/secret";
  std::ofstream(secret) << "host only\n";
  std::string beside_probe = fs::path(probe_path()).parent_path().parent_path().string() + "/escape_test";
  std::vector<std::string> paths = {"/root", "/home", "/var", "/srv", "/opt", "/mnt", "/boot", "/run",
                                    "/etc/hostname", "/etc/machine-id", "/etc/ssh", secret};
  if (fs::exists(beside_probe)) paths.push_back(beside_probe);
  if (const char* source = std::getenv("SYMPHONY_SOURCE_ROOT")) {
    paths.push_back(std::string(source) + "/meson.build");
  }
  auto r = sandboxed(probe_spec("stat_paths", paths));
  EXPECT_EXITED(r, ENOENT);
  auto v = r.values();
  for (const auto& p : paths) EXPECT_EQ(v[p], "ENOENT") << p;
}

// ---------------------------------------------------------------------------
// /proc and processes

// /proc/sysrq-trigger is root's (EACCES); kernels without magic SysRq have none.
TEST_F(EscapeTest, SysrqTriggerIsOutOfReach) {
  int expected = fs::exists("/proc/sysrq-trigger") ? EACCES : ENOENT;
  EXPECT_EXITED(sandboxed(probe_spec("proc_sysrq")), expected);
}

// The program is pid 2 under the sandbox's own init, and /proc shows those
// two processes only: not the host's init, not the launcher.
TEST_F(EscapeTest, ProcShowsOnlyTheSandbox) {
  std::string host_init = read_file("/proc/1/cmdline");
  host_init = host_init.substr(0, host_init.find('\0'));
  auto r = sandboxed(probe_spec("proc_view"));
  EXPECT_EXITED(r, 0);
  auto v = r.values();
  EXPECT_EQ(v["pid"], "2");
  EXPECT_EQ(v["ppid"], "1");
  EXPECT_EQ(v["pids"], "1,2");
  EXPECT_FALSE(v["init"].empty()) << r.describe();
  EXPECT_NE(v["init"], host_init) << "the sandbox sees the host's init";
}

// Descriptors the launcher's process holds (even without O_CLOEXEC) stay
// outside: the program has exactly stdin, stdout and stderr.
TEST_F(EscapeTest, OnlyStdioIsInherited) {
  UniqueFd leaky(::open("/dev/null", O_RDONLY));  // deliberately inheritable
  ASSERT_TRUE(leaky);
  auto r = sandboxed(probe_spec("fd_view"));
  EXPECT_EXITED(r, 0);
  EXPECT_EQ(r.values()["fds"], "0,1,2") << r.describe();
}

// A host process running as the sandbox's own uid, for kill(-1) to find
// were the pid namespace not there. Killed and reaped when the test ends.
class HostSleeper {
 public:
  HostSleeper() {
    pid_ = ::fork();
    if (pid_ == 0) {
      uid_t uid = sandbox_uid();
      if (::setresgid(uid, uid, uid) != 0 || ::setresuid(uid, uid, uid) != 0) _exit(1);
      for (;;) ::pause();
    }
  }
  ~HostSleeper() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  bool alive() const {
    int status = 0;
    return pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == 0;
  }

 private:
  pid_t pid_ = -1;
};

TEST_F(EscapeTest, HostProcessesCannotBeSignalled) {
  HostSleeper sleeper;
  ASSERT_GT(sleeper.pid(), 0);
  std::this_thread::sleep_for(50ms);  // past its setresuid
  ASSERT_TRUE(sleeper.alive());
  // The host pids are not in the sandbox's pid namespace (both far above
  // the sandbox's 1 and 2).
  EXPECT_EXITED(sandboxed(probe_spec("kill_pid", {std::to_string(::getpid())})), ESRCH);
  EXPECT_EXITED(sandboxed(probe_spec("kill_pid", {std::to_string(sleeper.pid())})), ESRCH);
  // kill(-1) reaches every process of the namespace but init and the caller: none.
  EXPECT_EXITED(sandboxed(probe_spec("kill_everyone")), ESRCH);
  EXPECT_TRUE(sleeper.alive()) << "a host process was killed from inside the sandbox";
}

// ---------------------------------------------------------------------------
// Privileges

// A setuid-root copy of the probe runs as the sandbox's user: no_new_privs,
// nosuid mounts and an unmapped root each stop it.
TEST_F(EscapeTest, SetuidBinaryKeepsTheSandboxUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a setuid-root file";
  TempDir dir;
  std::string copy = dir.path() + "/setuid_probe";
  fs::copy_file(probe_path(), copy);
  ASSERT_EQ(::chown(copy.c_str(), 0, 0), 0);
  ASSERT_EQ(::chmod(copy.c_str(), 04755), 0);
  auto spec = probe_spec("euid");
  spec.argv[0] = copy;
  spec.permissions.binds = {{dir.path(), Access::read_only}};
  auto r = sandboxed(spec);
  EXPECT_EXITED(r, 0);
  auto v = r.values();
  EXPECT_EQ(v["euid"], std::to_string(sandbox_uid())) << r.describe();
  EXPECT_EQ(v["ruid"], std::to_string(sandbox_uid())) << r.describe();
}

TEST_F(EscapeTest, NoPrivilegesAreLeft) {
  auto r = sandboxed(probe_spec("privileges"));
  EXPECT_EXITED(r, 0);
  auto v = r.values();
  EXPECT_EQ(v["no_new_privs"], "1") << r.describe();
  for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
    EXPECT_EQ(v[set], "0000000000000000") << set << "\n" << r.describe();
  }
  EXPECT_EQ(v["Seccomp"], "2") << "seccomp filter mode";
}

// ---------------------------------------------------------------------------
// The network: without the permission, a private namespace with loopback only

// A TCP listener on the host's 127.0.0.1.
class HostListener {
 public:
  HostListener() {
    fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::listen(fd_.get(), 8) == 0 &&
        ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  int port() const { return port_; }
  // What the first connection sent, or "" when none came within `wait`.
  std::string accept_and_read(std::chrono::milliseconds wait) {
    pollfd pfd{fd_.get(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(wait.count())) != 1) return "";
    UniqueFd conn(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) return "";
    char buffer[16] = {};
    ssize_t n = ::recv(conn.get(), buffer, sizeof buffer, 0);
    return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : "";
  }
  bool pending() {
    pollfd pfd{fd_.get(), POLLIN, 0};
    return ::poll(&pfd, 1, 0) == 1;
  }

 private:
  UniqueFd fd_;
  int port_ = 0;
};

// The host's first non-loopback IPv4 address, if it has one.
std::string host_address() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "";
  std::string found;
  for (ifaddrs* i = list; i && found.empty(); i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK)) continue;
    char text[INET_ADDRSTRLEN];
    auto* in = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
    if (::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text)) found = text;
  }
  ::freeifaddrs(list);
  return found;
}

TEST_F(EscapeTest, HostLoopbackIsNotReachable) {
  HostListener listener;
  ASSERT_GT(listener.port(), 0);
  EXPECT_EXITED(sandboxed(probe_spec("connect_tcp", {"127.0.0.1", std::to_string(listener.port())})),
                ECONNREFUSED);
  EXPECT_FALSE(listener.pending()) << "a connection from the sandbox reached the host";
}

TEST_F(EscapeTest, NoRouteLeavesThePrivateNetwork) {
  std::vector<std::string> targets = {"10.255.255.1"};
  if (auto host = host_address(); !host.empty()) targets.push_back(host);
  for (const auto& address : targets) {
    SCOPED_TRACE(address);
    EXPECT_EXITED(sandboxed(probe_spec("connect_tcp", {address, "80"})), ENETUNREACH);
  }
}

// Positive control: with the network permission the same connect reaches
// the host's listener (so the refusals above are the namespace's doing).
TEST_F(EscapeTest, NetworkPermissionReachesTheHost) {
  HostListener listener;
  ASSERT_GT(listener.port(), 0);
  auto spec = probe_spec("connect_tcp", {"127.0.0.1", std::to_string(listener.port())});
  spec.permissions.network = true;
  EXPECT_EXITED(sandboxed(spec), 0);
  EXPECT_EQ(listener.accept_and_read(10s), "hi");
}

// ---------------------------------------------------------------------------
// Devices: nothing but the minimal /dev without the GPU or device permission

TEST_F(EscapeTest, HostDeviceNodesAreAbsent) {
  std::vector<std::string> nodes = {"/dev/nvidia0", "/dev/nvidiactl", "/dev/dri", "/dev/sda",
                                    "/dev/vda",     "/dev/mem",       "/dev/kmem", "/dev/port",
                                    "/dev/kmsg",    "/dev/kvm",       "/dev/loop0", "/dev/fuse",
                                    "/dev/console", "/dev/tty0"};
  auto r = sandboxed(probe_spec("stat_paths", nodes));
  EXPECT_EXITED(r, ENOENT);
  auto v = r.values();
  for (const auto& n : nodes) EXPECT_EQ(v[n], "ENOENT") << n;
}

// ---------------------------------------------------------------------------
// Resources

TEST_F(EscapeTest, ForkBombStopsAtThePidsLimit) {
  auto spec = probe_spec("fork_bomb");
  spec.limits.pids = 16;
  auto r = sandboxed(spec);
  EXPECT_EXITED(r, EAGAIN);
  int forks = std::atoi(r.values()["forks"].c_str());
  EXPECT_GE(forks, 1) << r.describe();
  EXPECT_LT(forks, 16) << r.describe();  // init and the program count too
}

TEST_F(EscapeTest, MemoryHogIsOomKilled) {
  auto spec = probe_spec("memory_hog");
  spec.limits.memory = Bytes{64u << 20};
  auto r = sandboxed(spec);
  EXPECT_EQ(to_string(r.report.reason), "oom") << r.describe();
  EXPECT_EQ(r.report.signal, SIGKILL) << r.describe();
}

// Two spinning threads for 1.5 s under a 0.2-CPU quota: unlimited they
// would use about twice the wall time; the quota allows a fifth of it.
TEST_F(EscapeTest, CpuQuotaHolds) {
  auto spec = probe_spec("cpu_hog");
  spec.limits.cpu = 0.2;
  auto r = sandboxed(spec);
  EXPECT_EXITED(r, 0);
  double wall = std::atof(r.values()["wall_ns"].c_str());
  double cpu = std::atof(r.values()["cpu_ns"].c_str());
  EXPECT_GE(wall, 1.5e9) << r.describe();
  EXPECT_GT(cpu, 0) << r.describe();
  EXPECT_LT(cpu, 0.6 * wall) << "CPU quota not enforced: " << r.describe();
}

// A grandchild in its own session, ignoring SIGHUP and SIGTERM, must not
// outlive the sandbox: once wait() returns, it has stopped writing.
TEST_F(EscapeTest, NothingOutlivesTheSandbox) {
  TempDir dir;
  std::string marks = dir.path() + "/marks";
  std::ofstream(marks).close();
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown(marks.c_str(), sandbox_uid(), sandbox_uid()), 0);
  }
  auto spec = probe_spec("orphan", {marks});
  spec.permissions.binds.push_back({dir.path(), Access::read_write});
  auto r = sandboxed(spec);
  EXPECT_EXITED(r, 0);
  EXPECT_EQ(r.values()["grandchild"], "running") << r.describe();
  auto size = file_size(marks);
  EXPECT_GT(size, 0u) << "the grandchild never wrote";
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(file_size(marks), size) << "the grandchild is still writing after wait()";
}

TEST_F(EscapeTest, TimeoutKills) {
  auto spec = probe_spec("sleep_long");
  spec.limits.timeout = 300ms;
  auto r = sandboxed(spec);
  EXPECT_EQ(to_string(r.report.reason), "timeout") << r.describe();
  EXPECT_EQ(r.report.signal, SIGKILL);
  EXPECT_GE(r.report.wall, 300ms);
  EXPECT_LT(r.report.wall, 3s) << r.describe();
}

// ---------------------------------------------------------------------------
// Seccomp log mode and setup failures

TEST_F(EscapeTest, SeccompLogModeRunsAndNamesTheCall) {
  auto spec = probe_spec("bpf_logged");
  spec.seccomp = SeccompMode::log;
  auto r = sandboxed(spec);
  EXPECT_EXITED(r, 0);
  EXPECT_THAT(r.report.seccomp_log, Contains("bpf")) << r.describe();
}

TEST_F(EscapeTest, MissingProgramFailsAtExec) {
  Spec spec;
  spec.argv = {"/nonexistent/escape-probe"};
  spec.name = "escape-missing";
  auto child = launcher_->spawn(spec);
  ASSERT_FALSE(child) << "spawned a program that does not exist";
  EXPECT_EQ(failed_step(child.error()), "exec") << child.error().message();
  auto report = setup_failed_report(child.error());
  EXPECT_EQ(to_string(report.reason), "setup_failed");
  EXPECT_EQ(report.step, "exec");
  EXPECT_EQ(report.error_code, ENOENT);
  EXPECT_EQ(report.shell_status(), 127);
}

// ---------------------------------------------------------------------------
// The CLI: symphony-sandbox run --json-status, its exit status and JSON line

struct CliRun {
  int status = -1;  // the CLI's exit code (-1: did not exit normally)
  std::string out;
  nlohmann::json json;  // the last line of stdout
};

CliRun run_cli(std::vector<std::string> args) {
  CliRun result;
  args.insert(args.begin(), {cli_path(), "run", "--json-status"});
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return result;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    _exit(126);
  }
  ::close(fds[1]);
  char buffer[4096];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    result.out.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  if (pid > 0 && ::waitpid(pid, &status, 0) == pid && WIFEXITED(status)) {
    result.status = WEXITSTATUS(status);
  }
  std::string last;
  std::istringstream in(result.out);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) last = line;
  }
  result.json = nlohmann::json::parse(last, nullptr, /*allow_exceptions=*/false);
  if (!result.json.is_object()) result.json = nlohmann::json::object();  // no JSON line: every check fails
  return result;
}

class EscapeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access(cli_path().c_str(), X_OK), 0) << "no symphony-sandbox at " << cli_path();
    ASSERT_EQ(::access(probe_path().c_str(), X_OK), 0) << "no probe at " << probe_path();
  }
};

TEST_F(EscapeCli, ExitCodePassesThrough) {
  auto r = run_cli({probe_path(), "exit_with", "7"});
  EXPECT_EQ(r.status, 7) << r.out;
  EXPECT_EQ(r.json.value("reason", ""), "exited") << r.out;
  EXPECT_EQ(r.json.value("exit_code", -1), 7) << r.out;
}

TEST_F(EscapeCli, SegfaultIs139) {
  auto r = run_cli({probe_path(), "segfault"});
  EXPECT_EQ(r.status, 139) << r.out;
  EXPECT_EQ(r.json.value("reason", ""), "signaled") << r.out;
  EXPECT_EQ(r.json.value("signal", -1), SIGSEGV) << r.out;
}

TEST_F(EscapeCli, AbortIs134) {
  auto r = run_cli({probe_path(), "abort"});
  EXPECT_EQ(r.status, 134) << r.out;
  EXPECT_EQ(r.json.value("reason", ""), "signaled") << r.out;
  EXPECT_EQ(r.json.value("signal", -1), SIGABRT) << r.out;
}

TEST_F(EscapeCli, SeccompKillNamesTheCall) {
  auto r = run_cli({probe_path(), "ptrace_traceme"});
  EXPECT_EQ(r.status, 128 + SIGSYS) << r.out;
  EXPECT_EQ(r.json.value("reason", ""), "seccomp") << r.out;
  EXPECT_EQ(r.json.value("syscall", ""), "ptrace") << r.out;
  EXPECT_EQ(r.json.value("signal", -1), SIGSYS) << r.out;
}

TEST_F(EscapeCli, MissingProgramIs127) {
  auto r = run_cli({"/nonexistent/escape-probe"});
  EXPECT_EQ(r.status, 127) << r.out;
  EXPECT_EQ(r.json.value("reason", ""), "setup_failed") << r.out;
  EXPECT_EQ(r.json.value("step", ""), "exec") << r.out;
  EXPECT_EQ(r.json.value("errno", -1), ENOENT) << r.out;
}

TEST_F(EscapeCli, PidsLimitStopsAForkBomb) {
  auto r = run_cli({"--pids", "16", probe_path(), "fork_bomb"});
  EXPECT_EQ(r.status, EAGAIN) << r.out;
  EXPECT_EQ(r.json.value("reason", ""), "exited") << r.out;
  EXPECT_EQ(r.json.value("exit_code", -1), EAGAIN) << r.out;
}

TEST_F(EscapeCli, MemoryLimitIsOom) {
  auto r = run_cli({"--memory", "64M", probe_path(), "memory_hog"});
  EXPECT_EQ(r.status, 128 + SIGKILL) << r.out;
  EXPECT_EQ(r.json.value("reason", ""), "oom") << r.out;
}

}  // namespace
}  // namespace symphony::sandbox
