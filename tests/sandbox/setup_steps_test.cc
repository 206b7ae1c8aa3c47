// Tests of the child's setup steps (sandbox/child_setup.h) through the
// system-call seam: each step is run alone against a recording fake to check
// the exact calls it makes, then against injected EPERM/ENOSYS/EBUSY/EACCES
// to check that it stops, returns -errno and is described naming the step and
// the path. Last, the whole launcher is given a forwarding fake that fails
// one call in the parent (clone3, the id maps) or in the cloned child.
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <linux/prctl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sandbox/child_setup.h"
#include "sandbox/launcher.h"
#include "sandbox/linux_launcher.h"
#include "sandbox/plan.h"
#include "sandbox/spawn_internal.h"
#include "sandbox/spec.h"
#include "sandbox/syscalls.h"

namespace symphony::sandbox {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

// ---------------------------------------------------------------------------
// The fake

// A fixed-size line of text, built without the heap: the fake records calls
// in a cloned child too, between clone and exec, where allocating is unsafe.
class Line {
 public:
  static constexpr std::size_t kCap = 512;
  Line() { buf_[0] = '\0'; }
  Line& raw(const char* s, std::size_t len) {
    for (std::size_t i = 0; i < len && s[i] && n_ + 1 < kCap; ++i) buf_[n_++] = s[i];
    buf_[n_] = '\0';
    return *this;
  }
  Line& raw(const char* s) { return raw(s, ~std::size_t{0}); }
  Line& str(const char* s) { return s ? raw("\"").raw(s).raw("\"") : raw("NULL"); }
  Line& num(unsigned long long v, unsigned base) {
    char digits[32];
    int n = 0;
    do {
      digits[n++] = "0123456789abcdef"[v % base];
      v /= base;
    } while (v);
    if (base == 16) raw("0x");
    if (base == 8) raw("0");
    while (n > 0) raw(&digits[--n], 1);
    return *this;
  }
  Line& dec(long long v) {
    if (v < 0) raw("-");
    return num(v < 0 ? 0ull - static_cast<unsigned long long>(v) : static_cast<unsigned long long>(v), 10);
  }
  Line& hex(unsigned long long v) { return num(v, 16); }
  Line& oct(unsigned long long v) { return num(v, 8); }
  const char* c_str() const { return buf_; }

 private:
  char buf_[kCap];
  std::size_t n_ = 0;
};

// How each call is shown; the tests build their expectations with the same
// functions (Mount(...), Chdir(...) below), so a mismatch prints both lists.
Line fmt_mount(const char* source, const char* target, const char* fstype, unsigned long flags,
               const void* data) {
  Line l;
  l.raw("mount(").str(source).raw(", ").str(target).raw(", ").str(fstype).raw(", ").hex(flags);
  return l.raw(", ").str(static_cast<const char*>(data)).raw(")");
}
Line fmt_umount2(const char* target, int flags) {
  Line l;
  return l.raw("umount2(").str(target).raw(", ").hex(static_cast<unsigned>(flags)).raw(")");
}
Line fmt_mount_setattr(const char* path, unsigned flags, std::uint64_t set, std::uint64_t clear) {
  Line l;
  l.raw("mount_setattr(").str(path).raw(", ").hex(flags).raw(", set=").hex(set);
  return l.raw(", clear=").hex(clear).raw(")");
}
Line fmt_two(const char* name, const char* a, const char* b) {
  Line l;
  return l.raw(name).raw("(").str(a).raw(", ").str(b).raw(")");
}
Line fmt_path_mode(const char* name, const char* path, mode_t mode) {
  Line l;
  return l.raw(name).raw("(").str(path).raw(", ").oct(mode).raw(")");
}
Line fmt_one(const char* name, const char* path) {
  Line l;
  return l.raw(name).raw("(").str(path).raw(")");
}
Line fmt_numbers(const char* name, std::initializer_list<long long> args, bool hex_first = false) {
  Line l;
  l.raw(name).raw("(");
  bool first = true;
  for (long long a : args) {
    if (!first) l.raw(", ");
    if (first && hex_first) {
      l.hex(static_cast<unsigned long long>(a));
    } else {
      l.dec(a);
    }
    first = false;
  }
  return l.raw(")");
}
Line fmt_sethostname(const char* name, std::size_t len) {
  Line l;
  l.raw("sethostname(\"").raw(name, len).raw("\", ");
  return l.dec(static_cast<long long>(len)).raw(")");
}
Line fmt_prlimit(int resource, rlim_t cur, rlim_t max) {
  Line l;
  l.raw("prlimit(").dec(resource).raw(", cur=").dec(static_cast<long long>(cur));
  return l.raw(", max=").dec(static_cast<long long>(max)).raw(")");
}
Line fmt_capset(std::uint64_t e, std::uint64_t p, std::uint64_t i) {
  Line l;
  return l.raw("capset(").hex(e).raw(", ").hex(p).raw(", ").hex(i).raw(")");
}
Line fmt_seccomp(unsigned short len, unsigned flags) {
  Line l;
  return l.raw("seccomp_filter(len=").dec(len).raw(", ").hex(flags).raw(")");
}
Line fmt_execve(const char* path, char* const argv[]) {
  Line l;
  l.raw("execve(").str(path).raw(", [");
  for (std::size_t i = 0; argv && argv[i]; ++i) l.raw(i ? ", " : "").str(argv[i]);
  return l.raw("])");
}
Line fmt_write_file(const char* path, const char* data, std::size_t len) {
  Line l;
  return l.raw("write_file(").str(path).raw(", \"").raw(data, len).raw("\")");
}

// A SysCalls that records every call (its name, its key argument, the call
// as text) and fails the calls it is told to fail. In Mode::record it
// touches nothing and succeeds (0) — except seccomp_filter, which returns a
// fresh /dev/null fd so the step has a "listener" to pass on and close, and
// clone3, which returns -ENOSYS rather than pretend to be a child. In
// Mode::forward it passes every call it does not fail to the real seam.
// No heap, no locks: a cloned child records into its own copy.
class FaultySysCalls : public SysCalls {
 public:
  enum class Mode { record, forward };
  static constexpr std::size_t kMaxCalls = 1024;
  static constexpr std::size_t kMaxFaults = 16;

  explicit FaultySysCalls(Mode mode = Mode::record) : mode_(mode) {}

  // Fails calls named `name` with `err`: the nth (1-based) call whose key
  // argument equals `key` (every call when key is null), or every such call
  // when nth is 0. Keys: the path a call acts on (mount's target, symlink's
  // link path, execve's file), else its first number in decimal (prctl's
  // option, prlimit's resource, dup3's target fd). A key "*end" matches
  // every key that ends with "end".
  FaultySysCalls& fail(const char* name, int err, int nth = 0, const char* key = nullptr) {
    if (faults_used_ == kMaxFaults) std::abort();
    Fault& f = faults_[faults_used_++];
    f.name = name;
    f.any_key = key == nullptr;
    copy(f.key, key ? key : "");
    f.nth = nth;
    f.err = err;
    f.seen = 0;
    return *this;
  }

  // Sleeps `ms` before (or after) each call named `name` whose key matches
  // (any when null): widens a race window so a test can hit it every time.
  FaultySysCalls& delay(const char* name, int ms, bool after_call = false, const char* key = nullptr) {
    if (delays_used_ == kMaxFaults) std::abort();
    Delay& d = delays_[delays_used_++];
    d.name = name;
    d.any_key = key == nullptr;
    copy(d.key, key ? key : "");
    d.ms = ms;
    d.after = after_call;
    return *this;
  }

  std::vector<std::string> calls() const {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < used_; ++i) out.emplace_back(calls_[i].text.c_str());
    return out;
  }
  std::vector<std::string> calls(std::string_view name) const {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < used_; ++i) {
      if (name == calls_[i].name) out.emplace_back(calls_[i].text.c_str());
    }
    return out;
  }
  int count(std::string_view name) const { return static_cast<int>(calls(name).size()); }
  bool overflowed() const { return overflowed_; }
  void clear() { used_ = 0; }
  // The flags of each clone3 call, in order (the parent's calls only).
  std::vector<std::uint64_t> clone_flags() const { return {clone_flags_, clone_flags_ + clones_}; }

  long mount(const char* source, const char* target, const char* fstype, unsigned long flags,
             const void* data) override {
    if (long r = enter("mount", target, fmt_mount(source, target, fstype, flags, data))) return r;
    return forward() ? SysCalls::mount(source, target, fstype, flags, data) : 0;
  }
  long umount2(const char* target, int flags) override {
    if (long r = enter("umount2", target, fmt_umount2(target, flags))) return r;
    return forward() ? SysCalls::umount2(target, flags) : 0;
  }
  long mount_setattr(const char* path, unsigned flags, std::uint64_t set,
                     std::uint64_t clear) override {
    if (long r = enter("mount_setattr", path, fmt_mount_setattr(path, flags, set, clear))) return r;
    return forward() ? SysCalls::mount_setattr(path, flags, set, clear) : 0;
  }
  long pivot_root(const char* new_root, const char* put_old) override {
    if (long r = enter("pivot_root", new_root, fmt_two("pivot_root", new_root, put_old))) return r;
    return forward() ? SysCalls::pivot_root(new_root, put_old) : 0;
  }
  long chdir(const char* path) override {
    if (long r = enter("chdir", path, fmt_one("chdir", path))) return r;
    return forward() ? SysCalls::chdir(path) : 0;
  }
  long mkdir(const char* path, mode_t mode) override {
    if (long r = enter("mkdir", path, fmt_path_mode("mkdir", path, mode))) return r;
    return forward() ? SysCalls::mkdir(path, mode) : 0;
  }
  long create_file(const char* path, mode_t mode) override {
    if (long r = enter("create_file", path, fmt_path_mode("create_file", path, mode))) return r;
    return forward() ? SysCalls::create_file(path, mode) : 0;
  }
  long symlink(const char* target, const char* linkpath) override {
    if (long r = enter("symlink", linkpath, fmt_two("symlink", target, linkpath))) return r;
    return forward() ? SysCalls::symlink(target, linkpath) : 0;
  }
  long unshare(int flags) override {
    if (long r = enter("unshare", Line().dec(flags).c_str(), fmt_numbers("unshare", {flags}, true))) {
      return r;
    }
    return forward() ? SysCalls::unshare(flags) : 0;
  }
  long sethostname(const char* name, std::size_t len) override {
    Line key;
    key.raw(name, len);
    if (long r = enter("sethostname", key.c_str(), fmt_sethostname(name, len))) return r;
    return forward() ? SysCalls::sethostname(name, len) : 0;
  }
  long prlimit(int resource, const rlimit& limit) override {
    if (long r = enter("prlimit", Line().dec(resource).c_str(),
                       fmt_prlimit(resource, limit.rlim_cur, limit.rlim_max))) {
      return r;
    }
    return forward() ? SysCalls::prlimit(resource, limit) : 0;
  }
  long prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,
             unsigned long a5) override {
    Line text = fmt_numbers("prctl", {option, static_cast<long long>(a2), static_cast<long long>(a3),
                                      static_cast<long long>(a4), static_cast<long long>(a5)});
    if (long r = enter("prctl", Line().dec(option).c_str(), text)) return r;
    return forward() ? SysCalls::prctl(option, a2, a3, a4, a5) : 0;
  }
  long capset(std::uint64_t effective, std::uint64_t permitted, std::uint64_t inheritable) override {
    if (long r = enter("capset", "", fmt_capset(effective, permitted, inheritable))) return r;
    return forward() ? SysCalls::capset(effective, permitted, inheritable) : 0;
  }
  long setresuid(uid_t uid) override {
    if (long r = enter("setresuid", Line().dec(uid).c_str(), fmt_numbers("setresuid", {uid}))) return r;
    return forward() ? SysCalls::setresuid(uid) : 0;
  }
  long setresgid(gid_t gid) override {
    if (long r = enter("setresgid", Line().dec(gid).c_str(), fmt_numbers("setresgid", {gid}))) return r;
    return forward() ? SysCalls::setresgid(gid) : 0;
  }
  long setgroups_empty() override {
    if (long r = enter("setgroups_empty", "", fmt_numbers("setgroups_empty", {}))) return r;
    return forward() ? SysCalls::setgroups_empty() : 0;
  }
  long seccomp_filter(const sock_fprog* program, unsigned flags) override {
    if (long r = enter("seccomp_filter", "", fmt_seccomp(program->len, flags))) return r;
    if (forward()) return SysCalls::seccomp_filter(program, flags);
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
  }
  long bring_up_loopback() override {
    if (long r = enter("bring_up_loopback", "", fmt_numbers("bring_up_loopback", {}))) return r;
    return forward() ? SysCalls::bring_up_loopback() : 0;
  }
  long dup3(int from, int to) override {
    if (long r = enter("dup3", Line().dec(to).c_str(), fmt_numbers("dup3", {from, to}))) return r;
    return forward() ? SysCalls::dup3(from, to) : 0;
  }
  long execve(const char* path, char* const argv[], char* const envp[]) override {
    if (long r = enter("execve", path, fmt_execve(path, argv))) return r;
    return forward() ? SysCalls::execve(path, argv, envp) : 0;
  }
  long clone3(clone_args* args, std::size_t size) override {
    if (clones_ < kMaxClones) clone_flags_[clones_++] = args->flags;
    if (long r = enter("clone3", "", fmt_numbers("clone3", {static_cast<long long>(args->flags)}, true))) {
      return r;
    }
    return forward() ? SysCalls::clone3(args, size) : -ENOSYS;
  }
  long write_file(const char* path, const char* data, std::size_t len) override {
    if (long r = enter("write_file", path, fmt_write_file(path, data, len))) return r;
    long r = forward() ? SysCalls::write_file(path, data, len) : 0;
    leave("write_file", path);
    return r;
  }

 private:
  struct Call {
    const char* name;
    Line text;
  };
  struct Fault {
    const char* name;
    bool any_key;
    char key[256];
    int nth;
    int err;
    int seen;
  };
  struct Delay {
    const char* name;
    bool any_key;
    char key[256];
    int ms;
    bool after;
  };
  static constexpr std::size_t kMaxClones = 8;

  static bool matches(const char* want_name, bool any_key, const char* want_key, const char* name,
                      const char* key) {
    if (std::strcmp(want_name, name) != 0) return false;
    if (any_key) return true;
    if (!key) key = "";
    if (want_key[0] == '*') {  // "*suffix"
      std::size_t n = std::strlen(key), m = std::strlen(want_key + 1);
      return n >= m && std::strcmp(key + n - m, want_key + 1) == 0;
    }
    return std::strcmp(want_key, key) == 0;
  }
  void sleep_for(const char* name, const char* key, bool after) const {
    for (std::size_t i = 0; i < delays_used_; ++i) {
      const Delay& d = delays_[i];
      if (d.after != after || !matches(d.name, d.any_key, d.key, name, key)) continue;
      timespec ts{d.ms / 1000, (d.ms % 1000) * 1000000L};
      while (::nanosleep(&ts, &ts) < 0 && errno == EINTR) {
      }
    }
  }
  // After a call that was made (delays with after_call; the others run in
  // enter()). Only write_file has them, which is all the tests need.
  void leave(const char* name, const char* key) const { sleep_for(name, key, true); }

  static void copy(char (&to)[256], const char* from) {
    std::size_t i = 0;
    for (; from[i] && i + 1 < sizeof to; ++i) to[i] = from[i];
    to[i] = '\0';
  }
  bool forward() const { return mode_ == Mode::forward; }

  // Records the call; returns -errno when a fault applies, else 0.
  long enter(const char* name, const char* key, const Line& text) {
    if (used_ < kMaxCalls) {
      calls_[used_].name = name;
      calls_[used_].text = text;
      ++used_;
    } else {
      overflowed_ = true;
    }
    sleep_for(name, key, false);
    for (std::size_t i = 0; i < faults_used_; ++i) {
      Fault& f = faults_[i];
      if (!matches(f.name, f.any_key, f.key, name, key)) continue;
      ++f.seen;
      if (f.nth == 0 || f.seen == f.nth) return -f.err;
    }
    return 0;
  }

  Mode mode_;
  Call calls_[kMaxCalls];
  std::size_t used_ = 0;
  bool overflowed_ = false;
  Fault faults_[kMaxFaults];
  std::size_t faults_used_ = 0;
  Delay delays_[kMaxFaults];
  std::size_t delays_used_ = 0;
  std::uint64_t clone_flags_[kMaxClones] = {};
  std::size_t clones_ = 0;
};

// Expected calls, spelled like the fake records them.
std::string Mount(const char* source, const char* target, const char* fstype, unsigned long flags,
                  const char* data) {
  return fmt_mount(source, target, fstype, flags, data).c_str();
}
std::string Bind(const std::string& source, const std::string& target) {
  return Mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr);
}
std::string Tmpfs(const char* target, const char* data) {
  return Mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, data);
}
std::string MountSetattr(const std::string& path, unsigned flags, std::uint64_t set, std::uint64_t clear) {
  return fmt_mount_setattr(path.c_str(), flags, set, clear).c_str();
}
std::string Umount2(const char* target, int flags) { return fmt_umount2(target, flags).c_str(); }
std::string PivotRoot(const char* new_root, const char* put_old) {
  return fmt_two("pivot_root", new_root, put_old).c_str();
}
std::string Chdir(const std::string& path) { return fmt_one("chdir", path.c_str()).c_str(); }
std::string Mkdir(const std::string& path) { return fmt_path_mode("mkdir", path.c_str(), 0755).c_str(); }
std::string CreateFile(const std::string& path) {
  return fmt_path_mode("create_file", path.c_str(), 0644).c_str();
}
std::string Symlink(const char* target, const char* linkpath) {
  return fmt_two("symlink", target, linkpath).c_str();
}
std::string Unshare(int flags) { return fmt_numbers("unshare", {flags}, true).c_str(); }
std::string Sethostname(const char* name) { return fmt_sethostname(name, std::strlen(name)).c_str(); }
std::string Prlimit(int resource, rlim_t value) { return fmt_prlimit(resource, value, value).c_str(); }
std::string Prctl(int option, unsigned long a2 = 0, unsigned long a3 = 0) {
  return fmt_numbers("prctl", {option, static_cast<long long>(a2), static_cast<long long>(a3), 0, 0})
      .c_str();
}
std::string Capset(std::uint64_t e, std::uint64_t p, std::uint64_t i) { return fmt_capset(e, p, i).c_str(); }
std::string Setresuid(uid_t uid) { return fmt_numbers("setresuid", {uid}).c_str(); }
std::string Setresgid(gid_t gid) { return fmt_numbers("setresgid", {gid}).c_str(); }
std::string SetgroupsEmpty() { return fmt_numbers("setgroups_empty", {}).c_str(); }
std::string SeccompFilter(unsigned short len, unsigned flags) { return fmt_seccomp(len, flags).c_str(); }
std::string BringUpLoopback() { return fmt_numbers("bring_up_loopback", {}).c_str(); }
std::string Execve(const std::string& path, const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  return fmt_execve(path.c_str(), args.data()).c_str();
}

std::string errno_name(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EBUSY: return "EBUSY";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    default: return std::to_string(err);
  }
}

// ---------------------------------------------------------------------------
// The fake itself

TEST(FaultySysCalls, RecordsWithoutTouchingTheSystem) {
  FaultySysCalls sys;
  EXPECT_EQ(sys.mkdir("/nonexistent/setup_steps_test/dir", 0755), 0);
  EXPECT_EQ(sys.chdir("/nonexistent/setup_steps_test"), 0);
  EXPECT_FALSE(fs::exists("/nonexistent/setup_steps_test/dir"));
  EXPECT_THAT(sys.calls(), ElementsAre(Mkdir("/nonexistent/setup_steps_test/dir"),
                                       Chdir("/nonexistent/setup_steps_test")));
}

TEST(FaultySysCalls, FailsTheNthMatchingCall) {
  FaultySysCalls sys;
  sys.fail("mkdir", EPERM, 2).fail("chdir", EACCES, 0, "/b");
  EXPECT_EQ(sys.mkdir("/a", 0755), 0);
  EXPECT_EQ(sys.mkdir("/a", 0755), -EPERM);
  EXPECT_EQ(sys.mkdir("/a", 0755), 0);
  EXPECT_EQ(sys.chdir("/a"), 0);
  EXPECT_EQ(sys.chdir("/b"), -EACCES);
  EXPECT_EQ(sys.chdir("/b"), -EACCES);
  EXPECT_EQ(sys.count("mkdir"), 3);
}

TEST(FaultySysCalls, ForwardsToTheRealSeamWhenAsked) {
  FaultySysCalls sys(FaultySysCalls::Mode::forward);
  std::string dir = (fs::temp_directory_path() / ("faulty_forward." + std::to_string(::getpid()))).string();
  EXPECT_EQ(sys.mkdir(dir.c_str(), 0700), 0);
  EXPECT_TRUE(fs::is_directory(dir));
  EXPECT_EQ(sys.mkdir(dir.c_str(), 0700), -EEXIST);  // the real errno comes back
  sys.fail("mkdir", EPERM);
  EXPECT_EQ(sys.mkdir((dir + "/x").c_str(), 0700), -EPERM);
  EXPECT_FALSE(fs::exists(dir + "/x"));  // a failed call is not forwarded
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------
// One step at a time, against a plan built from a realistic spec

class SetupSteps : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/setup_steps.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr) << std::strerror(errno);
    base_ = pattern;
    ro_ = base_ + "/ro";
    rw_ = base_ + "/rw";
    ASSERT_EQ(::mkdir(ro_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(rw_.c_str(), 0777), 0);
    ASSERT_EQ(::chmod(base_.c_str(), 0755), 0);
    ASSERT_EQ(::chmod(rw_.c_str(), 0777), 0);  // the sandbox may run as nobody
    std::ofstream(ro_ + "/in") << "granted\n";
    ASSERT_EQ(::pipe2(pipe_, O_CLOEXEC), 0);
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    status_parent_ = sv[0];
    status_child_ = sv[1];

    spec_.argv = {"true", "--version"};
    spec_.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"};
    spec_.cwd = rw_;
    spec_.hostname = "steps-test";
    spec_.name = "setup-steps";
    spec_.permissions.binds = {{rw_, Access::read_write}, {ro_, Access::read_only}};
    spec_.permissions.capabilities = {Capability::net_bind_service};
    spec_.limits.cpu = 0.5;
    spec_.limits.memory = Bytes{64u << 20};
    spec_.limits.open_files = 256;
    spec_.limits.file_size = Bytes{1u << 20};
    spec_.fds = {{pipe_[1], 3}};
    ASSERT_TRUE(validate(spec_));
    rebuild();
  }

  void TearDown() override {
    for (int fd : {pipe_[0], pipe_[1], status_parent_, status_child_}) {
      if (fd >= 0) ::close(fd);
    }
    close_fd_copies();
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  // (Re)builds plan_ from spec_ as the launcher does.
  void rebuild() {
    close_fd_copies();
    arena_.reset();
    auto arena = Arena::create(1 << 20, false);
    ASSERT_TRUE(arena) << arena.error().message();
    arena_.emplace(std::move(arena).value());
    plan_ = arena_->make<ChildPlan>();
    ASSERT_NE(plan_, nullptr);
    auto shape = shape_of(spec_);
    ASSERT_TRUE(shape) << shape.error().message();
    auto a = build_phase_a(*arena_, *plan_, *shape, {});
    ASSERT_TRUE(a) << a.error().message();
    auto b = build_phase_b(*arena_, *plan_, spec_, {});
    ASSERT_TRUE(b) << b.error().message();
    plan_->status_fd = status_child_;
    for (std::size_t i = 0; i < plan_->fd_count; ++i) original_from_.push_back(plan_->fds[i].from);
  }

  long run(Step step) {
    detail_ = -2;
    return run_step(step, *plan_, sys_, &detail_);
  }

  // What the parent makes of the child's report of this failure.
  Error describe(Step step, long result, int detail) const {
    ChildMessage m{};
    m.kind = ChildMessage::step_failed;
    m.step = static_cast<std::uint8_t>(step);
    m.error = static_cast<std::int32_t>(-result);
    m.detail = detail;
    return describe_step_failure(*plan_, m);
  }

  // Index of the op of `step` in `ops` with this kind and target; -1 if none.
  static int find_op(const MountOp* ops, std::size_t count, MountOp::Kind kind, const std::string& target) {
    for (std::size_t i = 0; i < count; ++i) {
      if (ops[i].kind == kind && target == ops[i].target) return static_cast<int>(i);
    }
    return -1;
  }

  // The fds step duplicates the plan's fds above the targets (for real);
  // those copies are this test's to close.
  void close_fd_copies() {
    if (plan_ && !original_from_.empty()) {
      for (std::size_t i = 0; i < plan_->fd_count && i < original_from_.size(); ++i) {
        if (plan_->fds[i].from != original_from_[i]) ::close(plan_->fds[i].from);
      }
    }
    original_from_.clear();
  }

  static std::string in(const std::string& path) { return "/newroot" + path; }
  static std::string out(const std::string& path) { return "/oldroot" + path; }

  std::string base_, ro_, rw_;
  int pipe_[2] = {-1, -1};
  int status_parent_ = -1, status_child_ = -1;
  Spec spec_;
  std::optional<Arena> arena_;
  ChildPlan* plan_ = nullptr;
  std::vector<int> original_from_;
  FaultySysCalls sys_;
  int detail_ = -2;
};

// The steps run_step does not run (run_child does: they need the process
// layout of a real spawn) are refused.
TEST_F(SetupSteps, StepsOfTheSpawnLayoutAreNotRunAlone) {
  for (Step s : {Step::wait_for_parent, Step::wait_for_request, Step::fork_program}) {
    EXPECT_EQ(run(s), -EINVAL) << step_name(s);
    EXPECT_THAT(sys_.calls(), IsEmpty()) << step_name(s);
  }
}

TEST_F(SetupSteps, SwitchIdsDropsGroupsThenGidThenUid) {
  EXPECT_EQ(run(Step::switch_ids), 0);
  EXPECT_EQ(detail_, -1);
  if (::geteuid() == 0) {
    EXPECT_THAT(sys_.calls(), ElementsAre(SetgroupsEmpty(), Setresgid(65534), Setresuid(65534)));
  } else {
    EXPECT_THAT(sys_.calls(), ElementsAre(Setresgid(::getegid()), Setresuid(::geteuid())));
  }
}

TEST_F(SetupSteps, MountPrivateStopsPropagationToTheHost) {
  EXPECT_EQ(run(Step::mount_private), 0);
  EXPECT_THAT(sys_.calls(), ElementsAre(Mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr)));
}

TEST_F(SetupSteps, RootTmpfsStagesOldrootAndNewroot) {
  EXPECT_EQ(run(Step::root_tmpfs), 0);
  EXPECT_THAT(sys_.calls(), ElementsAre(Tmpfs("/tmp", "mode=0755,size=64k"), Chdir("/tmp"),
                                        Mkdir("oldroot"), Mkdir("newroot")));
}

TEST_F(SetupSteps, StagePivotParksTheHostRootAndMountsTheNewRoot) {
  EXPECT_EQ(run(Step::stage_pivot), 0);
  EXPECT_THAT(sys_.calls(), ElementsAre(PivotRoot(".", "oldroot"), Chdir("/"),
                                        Tmpfs("/newroot", "mode=0755,size=1m")));
}

TEST_F(SetupSteps, RuntimeMountsBindTheRuntimeReadOnlyAndNothingElse) {
  EXPECT_EQ(run(Step::runtime_mounts), 0);
  auto calls = sys_.calls();
  constexpr std::uint64_t kReadOnly = MOUNT_ATTR_NOSUID | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV;
  // /usr: a directory, created then bound read-only (recursively).
  auto usr = std::find(calls.begin(), calls.end(), Bind(out("/usr"), in("/usr")));
  ASSERT_NE(usr, calls.end());
  ASSERT_NE(usr + 1, calls.end());
  EXPECT_EQ(usr[1], MountSetattr(in("/usr"), AT_RECURSIVE, kReadOnly, 0));
  EXPECT_THAT(calls, Contains(Mkdir(in("/usr"))));
  // Merged-/usr links are recreated as links, not bound.
  for (const char* dir : {"/bin", "/lib", "/lib64", "/sbin"}) {
    std::error_code ec;
    if (fs::is_symlink(dir, ec)) {
      std::string target = fs::read_symlink(dir).string();
      EXPECT_THAT(calls, Contains(Symlink(target.c_str(), in(dir).c_str()))) << dir;
    }
  }
  // A minimal /etc: the files a program needs, as read-only file mounts.
  if (fs::exists("/etc/passwd")) {
    std::string passwd = fs::canonical("/etc/passwd").string();
    EXPECT_THAT(calls, Contains(CreateFile(in("/etc/passwd"))));
    EXPECT_THAT(calls, Contains(Bind(out(passwd), in("/etc/passwd"))));
    EXPECT_THAT(calls, Contains(MountSetattr(in("/etc/passwd"), AT_RECURSIVE, kReadOnly, 0)));
  }
  for (const auto& call : calls) {
    EXPECT_THAT(call, Not(HasSubstr("shadow")));
    EXPECT_THAT(call, Not(HasSubstr("/newroot/dev")));  // other steps' ops
    EXPECT_THAT(call, Not(HasSubstr("/newroot/proc")));
    EXPECT_THAT(call, Not(HasSubstr("/newroot/tmp")));
    EXPECT_THAT(call, Not(HasSubstr(base_)));
    // Every bind of the runtime is read-only.
    if (call.rfind("mount_setattr(", 0) == 0) {
      EXPECT_THAT(call, HasSubstr(Line().hex(AT_RECURSIVE).raw(", set=").hex(kReadOnly).raw(", clear=0x0)").c_str()));
    }
  }
}

TEST_F(SetupSteps, DevIsAMinimalTmpfsWithBoundNodes) {
  EXPECT_EQ(run(Step::dev), 0);
  std::vector<std::string> want = {Mkdir(in("/dev")), Tmpfs("/newroot/dev", "mode=0755,size=64k")};
  for (const char* node : {"null", "zero", "full", "random", "urandom", "tty"}) {
    std::string path = std::string("/dev/") + node;
    want.push_back(CreateFile(in(path)));
    want.push_back(Bind(out(path), in(path)));
    // Device nodes must stay usable: nosuid, but not nodev.
    want.push_back(MountSetattr(in(path), AT_RECURSIVE, MOUNT_ATTR_NOSUID, 0));
  }
  want.push_back(Symlink("/proc/self/fd", "/newroot/dev/fd"));
  want.push_back(Symlink("/proc/self/fd/0", "/newroot/dev/stdin"));
  want.push_back(Symlink("/proc/self/fd/1", "/newroot/dev/stdout"));
  want.push_back(Symlink("/proc/self/fd/2", "/newroot/dev/stderr"));
  want.push_back(Mkdir(in("/dev/shm")));
  want.push_back(Tmpfs("/newroot/dev/shm", "mode=1777"));
  want.push_back(Mkdir(in("/dev/pts")));
  want.push_back(Mount("devpts", "/newroot/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                       "newinstance,ptmxmode=0666,mode=620"));
  want.push_back(Symlink("pts/ptmx", "/newroot/dev/ptmx"));
  // Built: the /dev tmpfs itself read-only (the node binds stay writable).
  want.push_back(MountSetattr(in("/dev"), 0, MOUNT_ATTR_RDONLY, 0));
  EXPECT_THAT(sys_.calls(), ElementsAreArray(want));
}

TEST_F(SetupSteps, DevSealFallsBackToRemountWithoutMountSetattr) {
  sys_.fail("mount_setattr", ENOSYS);
  EXPECT_EQ(run(Step::dev), 0);
  EXPECT_THAT(sys_.calls().back(),
              ::testing::AnyOf(Mount(nullptr, "/newroot/dev", nullptr, MS_REMOUNT | MS_NOSUID | MS_RDONLY, nullptr),
                               Mount(nullptr, "/newroot/dev", nullptr,
                                     MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_RDONLY, nullptr)));
}

TEST_F(SetupSteps, DevSealFailureIsDescribed) {
  int seal = find_op(plan_->base_ops, plan_->base_op_count, MountOp::seal, in("/dev"));
  ASSERT_GE(seal, 0);
  sys_.fail("mount_setattr", EPERM, 0, in("/dev").c_str());
  EXPECT_EQ(run(Step::dev), -EPERM);
  EXPECT_EQ(detail_, seal);
  EXPECT_EQ(describe(Step::dev, -EPERM, detail_).message(),
            std::string("setup step 'dev': make /dev read-only: ") + std::strerror(EPERM));
}

TEST_F(SetupSteps, ProcMountsTheNewPidNamespacesProc) {
  EXPECT_EQ(run(Step::proc), 0);
  EXPECT_THAT(sys_.calls(), ElementsAre(Mkdir(in("/proc")), Mount("proc", "/newroot/proc", "proc",
                                                                  MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr)));
}

TEST_F(SetupSteps, TmpIsPrivate) {
  EXPECT_EQ(run(Step::tmp), 0);
  EXPECT_THAT(sys_.calls(), ElementsAre(Mkdir(in("/tmp")), Tmpfs("/newroot/tmp", "mode=1777")));
}

// The network namespace is unshared by this step (not by clone), so it is
// made while the parent writes the id maps.
TEST_F(SetupSteps, LoopbackOnlyInAPrivateNetworkNamespace) {
  EXPECT_EQ(run(Step::loopback), 0);
  EXPECT_THAT(sys_.calls(), ElementsAre(Unshare(CLONE_NEWNET), BringUpLoopback()));

  sys_.clear();
  sys_.fail("unshare", EPERM);
  EXPECT_EQ(run(Step::loopback), -EPERM);
  EXPECT_THAT(sys_.calls(), ElementsAre(Unshare(CLONE_NEWNET)));

  spec_.permissions.network = true;
  rebuild();
  sys_.clear();
  EXPECT_EQ(run(Step::loopback), 0);
  EXPECT_THAT(sys_.calls(), IsEmpty());
}

TEST_F(SetupSteps, CgroupNamespaceIsUnshared) {
  EXPECT_EQ(run(Step::cgroup_namespace), 0);
  EXPECT_THAT(sys_.calls(), ElementsAre(Unshare(CLONE_NEWCGROUP)));
}

TEST_F(SetupSteps, GrantMountsBindReadOnlyAndReadWrite) {
  EXPECT_EQ(run(Step::grant_mounts), 0);
  constexpr std::uint64_t kNosuidNodev = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  EXPECT_THAT(sys_.calls(),
              ElementsAre(Mkdir(in("/tmp")), Mkdir(in(base_)),
                          // Granted paths are bound in path order, whatever the spec's order.
                          Mkdir(in(ro_)), Bind(out(ro_), in(ro_)),
                          MountSetattr(in(ro_), AT_RECURSIVE, kNosuidNodev | MOUNT_ATTR_RDONLY, 0),
                          Mkdir(in(rw_)), Bind(out(rw_), in(rw_)),
                          MountSetattr(in(rw_), AT_RECURSIVE, kNosuidNodev, 0)));
}

TEST_F(SetupSteps, GrantedSymlinksAreBoundFromWhereTheyPoint) {
  std::string link = base_ + "/link";
  fs::create_directory_symlink(ro_, link);
  spec_.permissions.binds = {{link, Access::read_only}};
  rebuild();
  EXPECT_EQ(run(Step::grant_mounts), 0);
  EXPECT_THAT(sys_.calls(), Contains(Bind(out(ro_), in(link))));
}

TEST_F(SetupSteps, ExistingDirectoriesAndMountPointsAreFine) {
  // /newroot/tmp exists in a real spawn (the private /tmp of phase A).
  sys_.fail("mkdir", EEXIST, 0, in("/tmp").c_str());
  EXPECT_EQ(run(Step::grant_mounts), 0);
  EXPECT_THAT(sys_.calls(), Contains(Bind(out(ro_), in(ro_))));
  EXPECT_THAT(sys_.calls(), Contains(Bind(out(rw_), in(rw_))));

  sys_.clear();
  sys_.fail("create_file", EEXIST);
  EXPECT_EQ(run(Step::dev), 0);
  EXPECT_EQ(sys_.count("create_file"), 6);
}

TEST_F(SetupSteps, MkdirFailureOtherThanExistsStopsTheStep) {
  sys_.fail("mkdir", EACCES, 0, in(base_).c_str());
  EXPECT_EQ(run(Step::grant_mounts), -EACCES);
  ASSERT_GE(detail_, 0);
  EXPECT_EQ(plan_->grant_ops[detail_].kind, MountOp::mkdir);
  EXPECT_EQ(plan_->grant_ops[detail_].target, in(base_));
  EXPECT_EQ(sys_.calls().back(), Mkdir(in(base_)));
  Error e = describe(Step::grant_mounts, -EACCES, detail_);
  EXPECT_EQ(failed_step(e), "grant_mounts");
  EXPECT_EQ(e.message(), "setup step 'grant_mounts': create directory " + base_ + ": " + std::strerror(EACCES));
}

// Kernels before 5.12 have no mount_setattr: a remount of the bind applies
// the same attributes (non-recursively).
TEST_F(SetupSteps, GrantMountsFallBackToRemountWithoutMountSetattr) {
  sys_.fail("mount_setattr", ENOSYS);
  EXPECT_EQ(run(Step::grant_mounts), 0);
  EXPECT_THAT(sys_.calls("mount"),
              ElementsAre(Bind(out(ro_), in(ro_)),
                          Mount(nullptr, in(ro_).c_str(), nullptr,
                                MS_BIND | MS_REMOUNT | MS_NOSUID | MS_RDONLY | MS_NODEV, nullptr),
                          Bind(out(rw_), in(rw_)),
                          Mount(nullptr, in(rw_).c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV,
                                nullptr)));
}

TEST_F(SetupSteps, DeviceBindsFallBackWithoutNodev) {
  sys_.fail("mount_setattr", ENOSYS);
  EXPECT_EQ(run(Step::dev), 0);
  EXPECT_THAT(sys_.calls("mount"),
              Contains(Mount(nullptr, "/newroot/dev/null", nullptr, MS_BIND | MS_REMOUNT | MS_NOSUID, nullptr)));
}

TEST_F(SetupSteps, FailedFallbackRemountIsReported) {
  int ro_bind = find_op(plan_->grant_ops, plan_->grant_op_count, MountOp::bind, in(ro_));
  ASSERT_GE(ro_bind, 0);
  sys_.fail("mount_setattr", ENOSYS).fail("mount", EPERM, 2, in(ro_).c_str());  // the remount
  EXPECT_EQ(run(Step::grant_mounts), -EPERM);
  EXPECT_EQ(detail_, ro_bind);
  Error e = describe(Step::grant_mounts, -EPERM, detail_);
  EXPECT_EQ(e.message(),
            "setup step 'grant_mounts': bind " + ro_ + " read-only: " + std::strerror(EPERM));
}

TEST_F(SetupSteps, MountSetattrFailureOtherThanEnosysIsNotHidden) {
  sys_.fail("mount_setattr", EPERM, 0, in(rw_).c_str());
  EXPECT_EQ(run(Step::grant_mounts), -EPERM);
  EXPECT_EQ(sys_.count("mount"), 2);  // no remount attempted
  Error e = describe(Step::grant_mounts, -EPERM, detail_);
  EXPECT_EQ(e.message(),
            "setup step 'grant_mounts': bind " + rw_ + " read-write: " + std::strerror(EPERM));
}

TEST_F(SetupSteps, OptionalBindsTolerateAMissingSource) {
  MountOp ops[2] = {};
  ops[0] = {MountOp::bind, Step::runtime_mounts, true, false, true, "/oldroot/etc/missing",
            "/newroot/etc/missing", nullptr, "/etc/missing"};
  ops[1] = {MountOp::bind, Step::runtime_mounts, true, false, false, "/oldroot/etc/needed",
            "/newroot/etc/needed", nullptr, "/etc/needed"};
  plan_->base_ops = ops;
  plan_->base_op_count = 2;
  sys_.fail("mount", ENOENT);
  EXPECT_EQ(run(Step::runtime_mounts), -ENOENT);
  EXPECT_EQ(detail_, 1);  // the optional one was skipped, the required one failed
  EXPECT_THAT(sys_.calls(), ElementsAre(Bind("/oldroot/etc/missing", "/newroot/etc/missing"),
                                        Bind("/oldroot/etc/needed", "/newroot/etc/needed")));
  Error e = describe(Step::runtime_mounts, -ENOENT, detail_);
  EXPECT_EQ(e.message(), std::string("setup step 'runtime_mounts': bind /etc/needed read-only: ") +
                             std::strerror(ENOENT));
  plan_->base_ops = nullptr;
  plan_->base_op_count = 0;
}

TEST_F(SetupSteps, ReadOnlyRootMakesTheNewRootReadOnly) {
  EXPECT_EQ(run(Step::read_only_root), 0);
  EXPECT_THAT(sys_.calls(), ElementsAre(MountSetattr("/newroot", 0, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0)));
}

TEST_F(SetupSteps, ReadOnlyRootFallsBackToRemountWithoutMountSetattr) {
  sys_.fail("mount_setattr", ENOSYS);
  EXPECT_EQ(run(Step::read_only_root), 0);
  EXPECT_THAT(sys_.calls(),
              ElementsAre(MountSetattr("/newroot", 0, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0),
                          Mount(nullptr, "/newroot", nullptr,
                                MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr)));

  sys_.clear();
  sys_.fail("mount", EPERM);
  EXPECT_EQ(run(Step::read_only_root), -EPERM);
}

// Anything but ENOSYS from mount_setattr is a failure: the root must not
// silently stay writable.
TEST_F(SetupSteps, ReadOnlyRootFailureIsNotIgnored) {
  sys_.fail("mount_setattr", EPERM);
  EXPECT_EQ(run(Step::read_only_root), -EPERM);
  EXPECT_EQ(sys_.count("mount"), 0);
}

TEST_F(SetupSteps, HostnameIsTheSpecs) {
  EXPECT_EQ(run(Step::hostname), 0);
  EXPECT_THAT(sys_.calls(), ElementsAre(Sethostname("steps-test")));
}

TEST_F(SetupSteps, PivotRootDetachesTheHostRoot) {
  EXPECT_EQ(run(Step::pivot_root), 0);
  EXPECT_THAT(sys_.calls(), ElementsAre(Chdir("/newroot"), PivotRoot(".", "."), Umount2(".", MNT_DETACH),
                                        Chdir("/")));
}

TEST_F(SetupSteps, ChdirToTheSpecsCwd) {
  EXPECT_EQ(run(Step::chdir), 0);
  EXPECT_THAT(sys_.calls(), ElementsAre(Chdir(rw_)));
}

TEST_F(SetupSteps, RlimitsNoCoreThenTheSpecsLimits) {
  EXPECT_EQ(run(Step::rlimits), 0);
  EXPECT_THAT(sys_.calls(), ElementsAre(Prlimit(RLIMIT_CORE, 0), Prlimit(RLIMIT_NOFILE, 256),
                                        Prlimit(RLIMIT_FSIZE, 1u << 20)));
}

TEST_F(SetupSteps, CapabilitiesKeepOnlyTheGrantedOne) {
  std::ifstream last_cap_file("/proc/sys/kernel/cap_last_cap");
  int last_cap = -1;
  last_cap_file >> last_cap;
  ASSERT_GE(last_cap, CAP_NET_BIND_SERVICE);
  EXPECT_EQ(plan_->last_cap, last_cap);

  EXPECT_EQ(run(Step::capabilities), 0);
  std::vector<std::string> want;
  for (int cap = 0; cap <= last_cap; ++cap) {
    if (cap != CAP_NET_BIND_SERVICE) want.push_back(Prctl(PR_CAPBSET_DROP, static_cast<unsigned long>(cap)));
  }
  constexpr std::uint64_t kKeep = 1ull << CAP_NET_BIND_SERVICE;
  want.push_back(Capset(kKeep, kKeep, kKeep));
  want.push_back(Prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL));
  want.push_back(
      fmt_numbers("prctl", {PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0}).c_str());
  EXPECT_THAT(sys_.calls(), ElementsAreArray(want));
}

TEST_F(SetupSteps, CapabilitiesUnknownToTheKernelAreSkipped) {
  // EINVAL from PR_CAPBSET_DROP: a capability this kernel does not have.
  sys_.fail("prctl", EINVAL, 1, std::to_string(PR_CAPBSET_DROP).c_str());
  EXPECT_EQ(run(Step::capabilities), 0);
  EXPECT_EQ(sys_.count("capset"), 1);
}

TEST_F(SetupSteps, CapabilitiesBoundingDropFailureIsReported) {
  sys_.fail("prctl", EPERM, 3, std::to_string(PR_CAPBSET_DROP).c_str());
  EXPECT_EQ(run(Step::capabilities), -EPERM);
  EXPECT_EQ(sys_.count("prctl"), 3);
  EXPECT_EQ(sys_.count("capset"), 0);
}

TEST_F(SetupSteps, CapabilitiesAmbientRaiseFailureIsReported) {
  sys_.fail("prctl", EPERM, 2, std::to_string(PR_CAP_AMBIENT).c_str());  // after CLEAR_ALL
  EXPECT_EQ(run(Step::capabilities), -EPERM);
  EXPECT_EQ(sys_.calls().back(),
            fmt_numbers("prctl", {PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0}).c_str());
}

TEST_F(SetupSteps, NoCapabilitiesGrantedRaisesNone) {
  spec_.permissions.capabilities.clear();
  rebuild();
  EXPECT_EQ(run(Step::capabilities), 0);
  EXPECT_THAT(sys_.calls(), Contains(Capset(0, 0, 0)));
  EXPECT_EQ(sys_.calls().back(), Prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL));
}

TEST_F(SetupSteps, NoNewPrivs) {
  EXPECT_EQ(run(Step::no_new_privs), 0);
  EXPECT_THAT(sys_.calls(), ElementsAre(Prctl(PR_SET_NO_NEW_PRIVS, 1)));
}

TEST_F(SetupSteps, SeccompInstallsTheFilterAndHandsOverItsListener) {
  ASSERT_GT(plan_->seccomp.len, 0);
  EXPECT_EQ(run(Step::seccomp), 0);
  EXPECT_THAT(sys_.calls(), ElementsAre(SeccompFilter(plan_->seccomp.len, SECCOMP_FILTER_FLAG_NEW_LISTENER)));

  ChildMessage m{};
  iovec iov{&m, sizeof m};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ASSERT_EQ(::recvmsg(status_parent_, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC), static_cast<ssize_t>(sizeof m));
  EXPECT_EQ(m.kind, ChildMessage::seccomp_listener);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->cmsg_type, SCM_RIGHTS);
  int listener = -1;
  std::memcpy(&listener, CMSG_DATA(c), sizeof listener);
  struct stat got {}, null {};
  ASSERT_EQ(::fstat(listener, &got), 0);
  ASSERT_EQ(::stat("/dev/null", &null), 0);
  EXPECT_EQ(got.st_rdev, null.st_rdev);  // the fd the "kernel" returned
  ::close(listener);
}

TEST_F(SetupSteps, SeccompFailureSendsNoListener) {
  sys_.fail("seccomp_filter", ENOSYS);
  EXPECT_EQ(run(Step::seccomp), -ENOSYS);
  char byte;
  EXPECT_EQ(::recv(status_parent_, &byte, 1, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EAGAIN);
}

bool same_file(int a, int b) {
  struct stat sa {}, sb {};
  return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

TEST_F(SetupSteps, FdsMoveToTheirNumbersThroughCopiesAboveThem) {
  ASSERT_EQ(plan_->fd_count, 4u);  // the pipe as 3, then stdio
  EXPECT_EQ(plan_->max_target_fd, 3);
  EXPECT_EQ(run(Step::fds), 0);
  auto calls = sys_.calls("dup3");
  ASSERT_EQ(calls.size(), 4u);
  const int targets[] = {3, 0, 1, 2};
  for (std::size_t i = 0; i < 4; ++i) {
    int copy = plan_->fds[i].from;
    // Copies live above every target, so no move clobbers a later source.
    EXPECT_GT(copy, plan_->max_target_fd);
    EXPECT_TRUE(same_file(copy, original_from_[i])) << i;
    EXPECT_EQ(calls[i], fmt_numbers("dup3", {copy, targets[i]}).c_str());
  }
}

TEST_F(SetupSteps, FdsFailureNamesTheFd) {
  sys_.fail("dup3", EBADF, 0, "0");
  EXPECT_EQ(run(Step::fds), -EBADF);
  EXPECT_EQ(detail_, 1);
  Error e = describe(Step::fds, -EBADF, detail_);
  EXPECT_EQ(e.message(), std::string("setup step 'fds': fd 0: ") + std::strerror(EBADF));
}

TEST_F(SetupSteps, FdsThatAreNotOpenAreReported) {
  int closed = ::dup(0);
  ASSERT_GE(closed, 0);
  ::close(closed);
  spec_.fds = {{closed, 5}};
  rebuild();
  EXPECT_EQ(run(Step::fds), -EBADF);
  EXPECT_EQ(detail_, 0);
  EXPECT_THAT(sys_.calls(), IsEmpty());
  EXPECT_EQ(describe(Step::fds, -EBADF, detail_).context(), "setup step 'fds': fd 5");
}

TEST_F(SetupSteps, ExecSearchesPathWhenTheProgramHasNoSlash) {
  sys_.fail("execve", ENOENT);
  EXPECT_EQ(run(Step::exec), -ENOENT);
  std::vector<std::string> argv = {"true", "--version"};
  EXPECT_THAT(sys_.calls(), ElementsAre(Execve("/usr/local/bin/true", argv), Execve("/usr/bin/true", argv),
                                        Execve("/bin/true", argv)));
}

TEST_F(SetupSteps, ExecStopsAtTheFirstDirectoryThatWorks) {
  EXPECT_EQ(run(Step::exec), 0);  // the fake's execve "succeeds"
  EXPECT_THAT(sys_.calls(), ElementsAre(Execve("/usr/local/bin/true", {"true", "--version"})));
}

TEST_F(SetupSteps, ExecRemembersEaccesButKeepsSearching) {
  sys_.fail("execve", EACCES, 0, "/usr/local/bin/true").fail("execve", ENOTDIR, 0, "/usr/bin/true");
  sys_.fail("execve", ENOENT, 0, "/bin/true");
  EXPECT_EQ(run(Step::exec), -EACCES);
  EXPECT_EQ(sys_.count("execve"), 3);
}

TEST_F(SetupSteps, ExecStopsAtAnErrorOtherThanNotFound) {
  sys_.fail("execve", E2BIG);
  EXPECT_EQ(run(Step::exec), -E2BIG);
  EXPECT_EQ(sys_.count("execve"), 1);
}

TEST_F(SetupSteps, ExecOfAPathDoesNotSearch) {
  spec_.argv = {"/opt/tool/bin/run", "-x"};
  rebuild();
  sys_.fail("execve", ENOENT);
  EXPECT_EQ(run(Step::exec), -ENOENT);
  EXPECT_THAT(sys_.calls(), ElementsAre(Execve("/opt/tool/bin/run", {"/opt/tool/bin/run", "-x"})));
}

TEST_F(SetupSteps, ExecSearchesTheSpecsPath) {
  spec_.env = {"PATH=/opt/a::/opt/b"};
  rebuild();
  sys_.fail("execve", ENOENT);
  EXPECT_EQ(run(Step::exec), -ENOENT);
  EXPECT_THAT(sys_.calls(), ElementsAre(Execve("/opt/a/true", {"true", "--version"}),
                                        Execve("/opt/b/true", {"true", "--version"})));
}

// A failure in the staging tmpfs of stage_pivot is described like any op.
TEST_F(SetupSteps, StagePivotTmpfsFailureNamesTheMount) {
  sys_.fail("mount", EPERM, 0, "/newroot");
  EXPECT_EQ(run(Step::stage_pivot), -EPERM);
  ASSERT_GE(detail_, 0);
  EXPECT_EQ(plan_->base_ops[detail_].target, std::string("/newroot"));
  Error e = describe(Step::stage_pivot, -EPERM, detail_);
  EXPECT_EQ(failed_step(e), "stage_pivot");
  EXPECT_EQ(e.message(), std::string("setup step 'stage_pivot': mount tmpfs on /: ") + std::strerror(EPERM));
}

// ---------------------------------------------------------------------------
// Every step, its key call failing with each errno

struct StepCase {
  Step step;
  const char* call;  // the key call of the step
  const char* key;   // its key argument; {ro}/{rw} expand to the granted paths; null: any
  // Where the failure points: base_ops/grant_ops (the op with the key as
  // target), rlimits/fds (an index), none (-1).
  enum Where { none, base_op, grant_op, index } where;
  int index_value;
  const char* says;  // in the message after the step name; {ro}/{rw} expand
};

const StepCase kStepCases[] = {
    {Step::switch_ids, "setresuid", nullptr, StepCase::none, 0, ""},
    {Step::mount_private, "mount", "/", StepCase::none, 0, ""},
    {Step::root_tmpfs, "mount", "/tmp", StepCase::none, 0, ""},
    {Step::stage_pivot, "pivot_root", ".", StepCase::none, 0, ""},
    {Step::runtime_mounts, "mount", "/newroot/usr", StepCase::base_op, 0, "bind /usr read-only"},
    {Step::dev, "mount", "/newroot/dev/null", StepCase::base_op, 0, "bind /dev/null read-write"},
    {Step::proc, "mount", "/newroot/proc", StepCase::base_op, 0, "mount proc on /proc"},
    {Step::tmp, "mount", "/newroot/tmp", StepCase::base_op, 0, "mount tmpfs on /tmp"},
    {Step::loopback, "bring_up_loopback", nullptr, StepCase::none, 0, ""},
    {Step::cgroup_namespace, "unshare", nullptr, StepCase::none, 0, ""},
    {Step::grant_mounts, "mount", "/newroot{ro}", StepCase::grant_op, 0, "bind {ro} read-only"},
    {Step::read_only_root, "mount_setattr", "/newroot", StepCase::none, 0, ""},
    {Step::hostname, "sethostname", "steps-test", StepCase::none, 0, ""},
    {Step::pivot_root, "pivot_root", ".", StepCase::none, 0, ""},
    {Step::chdir, "chdir", "{rw}", StepCase::none, 0, ""},
    {Step::rlimits, "prlimit", "7" /* RLIMIT_NOFILE */, StepCase::index, 1, "RLIMIT_nofile (256)"},
    {Step::capabilities, "capset", nullptr, StepCase::none, 0, ""},
    {Step::no_new_privs, "prctl", "38" /* PR_SET_NO_NEW_PRIVS */, StepCase::none, 0, ""},
    {Step::seccomp, "seccomp_filter", nullptr, StepCase::none, 0, ""},
    {Step::fds, "dup3", "0", StepCase::index, 1, "fd 0"},
    {Step::exec, "execve", nullptr, StepCase::none, 0, "execute true"},
};
static_assert(RLIMIT_NOFILE == 7 && PR_SET_NO_NEW_PRIVS == 38);

void PrintTo(const StepCase& c, std::ostream* os) {
  *os << step_name(c.step) << " (" << c.call << (c.key ? std::string(" ") + c.key : "") << " failing)";
}

class StepFailure : public SetupSteps, public ::testing::WithParamInterface<std::tuple<StepCase, int>> {
 protected:
  std::string expand(std::string s) const {
    for (auto [from, to] : {std::pair<std::string, std::string>{"{ro}", ro_}, {"{rw}", rw_}}) {
      for (auto at = s.find(from); at != std::string::npos; at = s.find(from)) s.replace(at, from.size(), to);
    }
    return s;
  }
};

TEST_P(StepFailure, ReturnsTheErrnoAndIsDescribedNamingTheStep) {
  auto [c, err] = GetParam();
  std::string key = c.key ? expand(c.key) : "";
  sys_.fail(c.call, err, 0, c.key ? key.c_str() : nullptr);

  long r = run(c.step);
  ASSERT_EQ(r, -err) << step_name(c.step) << " with " << c.call << " failing " << errno_name(err);
  auto calls = sys_.calls();
  ASSERT_THAT(calls, Not(IsEmpty()));
  if (!(c.step == Step::exec && err == EACCES)) {
    // The step stops at the failing call (exec alone keeps searching PATH past EACCES).
    EXPECT_THAT(calls.back(), StartsWith(std::string(c.call) + "(")) << testing::PrintToString(calls);
  }

  int detail = detail_;
  switch (c.where) {
    case StepCase::none: EXPECT_EQ(detail_, -1); break;
    case StepCase::index: EXPECT_EQ(detail_, c.index_value); break;
    case StepCase::base_op:
      ASSERT_GE(detail_, 0);
      ASSERT_LT(static_cast<std::size_t>(detail_), plan_->base_op_count);
      EXPECT_EQ(plan_->base_ops[detail_].target, key);
      EXPECT_EQ(plan_->base_ops[detail_].step, c.step);
      break;
    case StepCase::grant_op:
      ASSERT_GE(detail_, 0);
      ASSERT_LT(static_cast<std::size_t>(detail_), plan_->grant_op_count);
      EXPECT_EQ(plan_->grant_ops[detail_].target, key);
      break;
  }
  if (c.step == Step::exec) detail = 0;  // what run_child reports for exec

  Error e = describe(c.step, r, detail);
  EXPECT_EQ(failed_step(e), step_name(c.step));
  EXPECT_EQ(e.code(), err);
  std::string context = "setup step '" + std::string(step_name(c.step)) + "'";
  if (*c.says) context += ": " + expand(c.says);
  EXPECT_EQ(e.context(), context);
  EXPECT_EQ(e.message(), context + ": " + std::strerror(err));

  ExitReport report = setup_failed_report(e);
  EXPECT_EQ(report.reason, ExitReason::setup_failed);
  EXPECT_EQ(report.step, step_name(c.step));
  EXPECT_EQ(report.error_code, err);
}

std::vector<std::tuple<StepCase, int>> step_failure_cases() {
  std::vector<std::tuple<StepCase, int>> out;
  for (const auto& c : kStepCases) {
    for (int err : {EPERM, ENOSYS, EBUSY, EACCES}) {
      // ENOSYS from mount_setattr is the old-kernel fallback, tested above.
      if (c.step == Step::read_only_root && err == ENOSYS) continue;
      out.emplace_back(c, err);
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(EveryStep, StepFailure, ::testing::ValuesIn(step_failure_cases()),
                         [](const auto& info) {
                           return std::string(step_name(std::get<0>(info.param).step)) + "_" +
                                  errno_name(std::get<1>(info.param));
                         });

// The table covers every step run_step runs.
TEST(StepCases, CoverEveryStepRunStepRuns) {
  for (std::size_t i = 0; i < kStepCount; ++i) {
    auto step = static_cast<Step>(i);
    if (step == Step::wait_for_parent || step == Step::wait_for_request || step == Step::fork_program) continue;
    bool covered = std::any_of(std::begin(kStepCases), std::end(kStepCases),
                               [&](const StepCase& c) { return c.step == step; });
    EXPECT_TRUE(covered) << step_name(step);
  }
}

// ---------------------------------------------------------------------------
// Naming of failures

TEST(StepErrors, FailedStepReadsTheStepFromTheContext) {
  Error e = step_error("pivot_root", EBUSY, "");
  EXPECT_EQ(e.context(), "setup step 'pivot_root'");
  EXPECT_EQ(failed_step(e), "pivot_root");
  EXPECT_EQ(failed_step(Error(EBUSY, "something else")), "");
  EXPECT_EQ(failed_step(Error(EBUSY, "setup step 'unterminated")), "");
  Error wrapped = step_error("dev", EPERM, "bind /dev/null read-write");
  wrapped.wrap("spawn extension foo");
  EXPECT_EQ(failed_step(wrapped), "dev");
}

TEST(StepErrors, SetupFailedReportOfAnErrorWithoutAStep) {
  ExitReport report = setup_failed_report(Error(ENOMEM, "out of memory"));
  EXPECT_EQ(report.reason, ExitReason::setup_failed);
  EXPECT_EQ(report.step, "spawn");
  EXPECT_EQ(report.error_code, ENOMEM);
  EXPECT_EQ(report.shell_status(), 125);
}

TEST(StepErrors, EveryStepHasAName) {
  for (std::size_t i = 0; i < kStepCount; ++i) {
    EXPECT_NE(step_name(static_cast<Step>(i)), "unknown") << i;
  }
  EXPECT_EQ(step_name(Step::count), "unknown");
  EXPECT_EQ(step_name(Step::grant_mounts), "grant_mounts");
}

// ---------------------------------------------------------------------------
// The whole launcher with the fake injected

// waitpid(-1, WNOHANG) fails with ECHILD when this process has no children.
void expect_no_children() {
  int status = 0;
  pid_t pid = ::waitpid(-1, &status, WNOHANG | __WALL);
  int err = errno;
  EXPECT_EQ(pid, -1) << "a child is left: pid " << pid;
  EXPECT_EQ(err, ECHILD);
}

class LauncherInjection : public SetupSteps {
 protected:
  void SetUp() override {
    SetupSteps::SetUp();
    if (HasFatalFailure()) return;
    // What the program checks: the read-only grant is readable and not
    // writable, the read-write one is writable.
    spec_.argv = {"/bin/sh", "-c", "cat " + ro_ + "/in > " + rw_ + "/out && ! (echo x > " + ro_ + "/denied) 2>/dev/null"};
    spec_.fds.clear();
    spec_.cwd = base_;
    spec_.limits.cpu.reset();  // no cgroup needed
    spec_.limits.memory.reset();
    spec_.limits.timeout = std::chrono::seconds(20);
    fake_ = std::make_unique<FaultySysCalls>(FaultySysCalls::Mode::forward);
  }
  void TearDown() override {
    expect_no_children();
    SetupSteps::TearDown();
  }

  Result<std::unique_ptr<Child>> spawn() {
    auto launcher = make_launcher(LauncherOptions{.sys = fake_.get()});
    if (!launcher) return launcher.error();
    return (*launcher)->spawn(spec_);
  }

  // Spawns with the faults set, expects the spawn to fail in `step` with
  // `err`, and that nothing of the sandbox is left.
  Error expect_spawn_fails(std::string_view step, int err) {
    auto child = spawn();
    if (child) {
      ADD_FAILURE() << "spawn succeeded; expected a failure in step " << step;
      (*child)->wait();
      child.value().reset();
      return Error(0, "");
    }
    Error e = child.error();
    EXPECT_EQ(failed_step(e), step) << e.message();
    EXPECT_EQ(e.code(), err) << e.message();
    ExitReport report = setup_failed_report(e);
    EXPECT_EQ(report.reason, ExitReason::setup_failed);
    EXPECT_EQ(report.step, step);
    EXPECT_EQ(report.error_code, err);
    expect_no_children();
    return e;
  }

  void skip_without_namespaces() {
    auto probe = std::make_unique<FaultySysCalls>(FaultySysCalls::Mode::forward);
    auto launcher = make_launcher(LauncherOptions{.sys = probe.get()});
    ASSERT_TRUE(launcher) << launcher.error().message();
    Spec spec;
    spec.argv = {"/bin/true"};
    auto child = (*launcher)->spawn(spec);
    if (!child && failed_step(child.error()) == "clone" &&
        (child.error().code() == EPERM || child.error().code() == ENOSPC || child.error().code() == EINVAL)) {
      GTEST_SKIP() << "this host cannot create sandboxes: " << child.error().message();
    }
    ASSERT_TRUE(child) << child.error().message();
    EXPECT_EQ((*child)->wait().reason, ExitReason::exited);
  }

  std::unique_ptr<FaultySysCalls> fake_;
};

TEST_F(LauncherInjection, ForwardingFakeRunsTheRealisticSpec) {
  skip_without_namespaces();
  if (IsSkipped() || HasFatalFailure()) return;
  auto child = spawn();
  ASSERT_TRUE(child) << child.error().message();
  ExitReport report = (*child)->wait();
  EXPECT_EQ(report.reason, ExitReason::exited) << report.message;
  EXPECT_EQ(report.exit_code, 0) << report.message;
  child.value().reset();
  std::ifstream copied(rw_ + "/out");
  std::string line;
  std::getline(copied, line);
  EXPECT_EQ(line, "granted");
  EXPECT_FALSE(fs::exists(ro_ + "/denied"));

  // The parent's calls: clone3 into the namespaces, then the id maps. The
  // child's calls were made in its own copy of the fake, not this one.
  auto flags = fake_->clone_flags();
  ASSERT_FALSE(flags.empty());
  // (The network namespace is the child's own unshare: see Step::loopback.)
  std::uint64_t ns = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
  EXPECT_EQ(flags.back() & ns, ns);
  EXPECT_TRUE(flags.back() & CLONE_PIDFD);
  auto writes = fake_->calls("write_file");
  ASSERT_FALSE(writes.empty());
  EXPECT_THAT(writes.back(), HasSubstr("/gid_map"));
  EXPECT_EQ(fake_->count("pivot_root"), 0);
  EXPECT_EQ(fake_->count("execve"), 0);
}

TEST_F(LauncherInjection, CloneFailureIsStepClone) {
  fake_->fail("clone3", EPERM);  // every attempt, with or without CLONE_INTO_CGROUP
  expect_spawn_fails("clone", EPERM);
  EXPECT_EQ(fake_->count("write_file"), 0);
}

// CLONE_INTO_CGROUP refused once: the launcher clones without it and joins
// the cgroup by pid instead.
TEST_F(LauncherInjection, CloneIntoCgroupRefusedIsRetriedWithout) {
  skip_without_namespaces();
  if (IsSkipped() || HasFatalFailure()) return;
  fake_->fail("clone3", EPERM, 1);
  auto child = spawn();
  auto flags = fake_->clone_flags();
  ASSERT_FALSE(flags.empty());
  RecordProperty("clone_into_cgroup", (flags[0] & CLONE_INTO_CGROUP) ? "asked" : "not asked");
  if (!(flags[0] & CLONE_INTO_CGROUP)) {
    // No v2 cgroup directory to clone into: the first failure is final.
    ASSERT_FALSE(child);
    EXPECT_EQ(failed_step(child.error()), "clone");
    EXPECT_EQ(flags.size(), 1u);
    return;
  }
  ASSERT_TRUE(child) << child.error().message();
  ASSERT_EQ(flags.size(), 2u);
  EXPECT_FALSE(flags[1] & CLONE_INTO_CGROUP);
  EXPECT_EQ((*child)->wait().reason, ExitReason::exited);
}

TEST_F(LauncherInjection, IdMapFailureIsStepIdMaps) {
  skip_without_namespaces();
  if (IsSkipped() || HasFatalFailure()) return;
  fake_->fail("write_file", EPERM, 1);
  Error e = expect_spawn_fails("id_maps", EPERM);
  EXPECT_THAT(e.message(), HasSubstr("/proc/"));
}

// loopback runs before the child waits for its id maps, while the parent
// writes them: its failure must still be what the spawn reports, however
// the two race.
TEST_F(LauncherInjection, LoopbackFailureInTheChild) {
  skip_without_namespaces();
  if (IsSkipped() || HasFatalFailure()) return;
  fake_->fail("unshare", EPERM, 0, std::to_string(CLONE_NEWNET).c_str());
  expect_spawn_fails("loopback", EPERM);
}

// The same with the child gone before the parent releases it: the parent's
// "go" meets a closed socket (EPIPE), but the child's report is waiting.
TEST_F(LauncherInjection, LoopbackFailureBeforeTheParentReleasesTheChild) {
  skip_without_namespaces();
  if (IsSkipped() || HasFatalFailure()) return;
  std::string newnet = std::to_string(CLONE_NEWNET);
  // Child: fails 20 ms in, once the parent has written both maps. Parent:
  // waits 200 ms after the gid map, so the child is gone by the release.
  fake_->delay("unshare", 20, false, newnet.c_str()).fail("unshare", EPERM, 0, newnet.c_str());
  fake_->delay("write_file", 200, /*after_call=*/true, "*/gid_map");
  expect_spawn_fails("loopback", EPERM);
}

TEST_F(LauncherInjection, StagePivotFailureInTheChild) {
  skip_without_namespaces();
  if (IsSkipped() || HasFatalFailure()) return;
  fake_->fail("pivot_root", EINVAL, 1);
  expect_spawn_fails("stage_pivot", EINVAL);
}

TEST_F(LauncherInjection, PivotRootFailureInTheChild) {
  skip_without_namespaces();
  if (IsSkipped() || HasFatalFailure()) return;
  fake_->fail("pivot_root", EBUSY, 2);
  expect_spawn_fails("pivot_root", EBUSY);
}

TEST_F(LauncherInjection, HostnameFailureInTheChild) {
  skip_without_namespaces();
  if (IsSkipped() || HasFatalFailure()) return;
  fake_->fail("sethostname", EPERM);
  expect_spawn_fails("hostname", EPERM);
}

TEST_F(LauncherInjection, SeccompFailureInTheChild) {
  skip_without_namespaces();
  if (IsSkipped() || HasFatalFailure()) return;
  fake_->fail("seccomp_filter", ENOSYS);
  expect_spawn_fails("seccomp", ENOSYS);
}

TEST_F(LauncherInjection, GrantFailureInTheChildNamesThePath) {
  skip_without_namespaces();
  if (IsSkipped() || HasFatalFailure()) return;
  fake_->fail("mount", EACCES, 0, in(ro_).c_str());
  Error e = expect_spawn_fails("grant_mounts", EACCES);
  EXPECT_EQ(e.message(), "setup step 'grant_mounts': bind " + ro_ + " read-only: " + std::strerror(EACCES));
}

TEST_F(LauncherInjection, RlimitFailureInTheChildNamesTheResource) {
  skip_without_namespaces();
  if (IsSkipped() || HasFatalFailure()) return;
  fake_->fail("prlimit", EPERM, 0, "7");
  Error e = expect_spawn_fails("rlimits", EPERM);
  EXPECT_THAT(e.message(), HasSubstr("RLIMIT_nofile"));
}

TEST_F(LauncherInjection, ExecFailureInTheProgram) {
  skip_without_namespaces();
  if (IsSkipped() || HasFatalFailure()) return;
  fake_->fail("execve", ENOENT);
  Error e = expect_spawn_fails("exec", ENOENT);
  EXPECT_EQ(e.message(), std::string("setup step 'exec': execute /bin/sh: ") + std::strerror(ENOENT));
  EXPECT_EQ(setup_failed_report(e).shell_status(), 127);
}

// The program's fds step runs in the program, before exec, and reports on
// the exec pipe: a failure there is the fds step's, not exec's.
TEST_F(LauncherInjection, FdsFailureInTheProgramIsNotExecs) {
  skip_without_namespaces();
  if (IsSkipped() || HasFatalFailure()) return;
  fake_->fail("dup3", EBADF, 0, "1");
  Error e = expect_spawn_fails("fds", EBADF);
  EXPECT_EQ(e.message(), std::string("setup step 'fds': fd 1: ") + std::strerror(EBADF));
  EXPECT_EQ(setup_failed_report(e).shell_status(), 125);
}

TEST_F(LauncherInjection, ExecNotPermittedIs126) {
  skip_without_namespaces();
  if (IsSkipped() || HasFatalFailure()) return;
  fake_->fail("execve", EACCES);
  Error e = expect_spawn_fails("exec", EACCES);
  EXPECT_EQ(setup_failed_report(e).shell_status(), 126);
}

// Without mount_setattr (kernels before 5.12) the remount fallback must
// still leave read-only grants read-only: the program's write is refused.
TEST_F(LauncherInjection, WithoutMountSetattrGrantsAreStillEnforced) {
  skip_without_namespaces();
  if (IsSkipped() || HasFatalFailure()) return;
  fake_->fail("mount_setattr", ENOSYS);
  auto child = spawn();
  ASSERT_TRUE(child) << child.error().message();
  ExitReport report = (*child)->wait();
  EXPECT_EQ(report.reason, ExitReason::exited) << report.message;
  EXPECT_EQ(report.exit_code, 0) << report.message;
  child.value().reset();
  EXPECT_TRUE(fs::exists(rw_ + "/out"));
  EXPECT_FALSE(fs::exists(ro_ + "/denied"));
}

}  // namespace
}  // namespace symphony::sandbox
