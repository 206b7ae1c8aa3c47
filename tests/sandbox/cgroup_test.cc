// Tests of the cgroup layer (sandbox/cgroup.h): layout detection from this
// host's files and from fixtures, and the v1 (hybrid, legacy) and v2 code
// paths on this host's real hierarchies; the v2 path is forced onto the v2
// hierarchy of a hybrid host. Groups are made only in the scratch subtree
// "symphony-test-<pid>" (cgroup_test_support.h), removed however a test ends.
#include "sandbox/cgroup.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "tests/sandbox/cgroup_test_support.h"

namespace symphony::sandbox {
namespace {

using namespace std::chrono_literals;
using cgroup_testing::ForkedChild;
using cgroup_testing::is_dir;
using cgroup_testing::read_text;
using cgroup_testing::ScratchSubtree;

// ---------------------------------------------------------------------------
// Detection from fixtures

// A temporary directory for fixture files; removed with what is in it.
class FixtureDir {
 public:
  FixtureDir() {
    char name[] = "/tmp/symphony-cgroup-fixture-XXXXXX";
    if (::mkdtemp(name) != nullptr) dir_ = name;
  }
  ~FixtureDir() {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  const std::string& path() const { return dir_; }
  std::string write(const std::string& name, const std::string& content) const {
    std::string path = dir_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path) << content;
    return path;
  }

 private:
  std::string dir_;
};

TEST(CgroupLayoutName, IsTheLayoutWord) {
  EXPECT_EQ(to_string(CgroupLayout::unified), "unified");
  EXPECT_EQ(to_string(CgroupLayout::hybrid), "hybrid");
  EXPECT_EQ(to_string(CgroupLayout::legacy), "legacy");
  EXPECT_EQ(to_string(CgroupLayout::none), "none");
}

TEST(DetectCgroupHost, UnifiedFromFixture) {
  FixtureDir f;
  std::string cg2 = f.path() + "/cg2";
  f.write("cg2/cgroup.controllers", "cpuset cpu io memory pids\n");
  std::string mountinfo = f.write(
      "mountinfo",
      "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
      "30 22 0:26 / " +
          cg2 + " rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n");
  std::string self = f.write("cgroup", "0::/system.slice/symphonyd.service\n");

  auto host = detect_cgroup_host(mountinfo, self);
  ASSERT_TRUE(host) << host.error().message();
  EXPECT_EQ(host->layout, CgroupLayout::unified);
  EXPECT_EQ(host->unified_mount, cg2);
  EXPECT_EQ(host->unified_controllers,
            (std::vector<std::string>{"cpuset", "cpu", "io", "memory", "pids"}));
  EXPECT_TRUE(host->v1_mounts.empty());
  EXPECT_EQ(host->self_paths.at(""), "/system.slice/symphonyd.service");
}

const char* const kHybridMountinfo =
    "25 22 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755\n"
    "26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"
    "27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:10 - cgroup cgroup "
    "rw,xattr,name=systemd\n"
    "28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:11 - cgroup cgroup rw,cpu,cpuacct\n"
    "29 25 0:26 / /sys/fs/cgroup/memory rw,nosuid shared:12 - cgroup cgroup rw,memory\n"
    "30 25 0:27 / /sys/fs/cgroup/pids rw,nosuid shared:13 - cgroup cgroup rw,pids\n";

const char* const kHybridSelf =
    "12:pids:/user.slice/user-0.slice/session-1.scope\n"
    "4:memory:/user.slice/user-0.slice\n"
    "3:cpu,cpuacct:/\n"
    "1:name=systemd:/user.slice/user-0.slice/session-1.scope\n"
    "0::/user.slice/user-0.slice/session-1.scope\n";

TEST(DetectCgroupHost, HybridFromFixture) {
  FixtureDir f;
  auto host =
      detect_cgroup_host(f.write("mountinfo", kHybridMountinfo), f.write("cgroup", kHybridSelf));
  ASSERT_TRUE(host) << host.error().message();
  EXPECT_EQ(host->layout, CgroupLayout::hybrid);
  EXPECT_EQ(host->unified_mount, "/sys/fs/cgroup/unified");
  EXPECT_EQ(host->v1_mounts,
            (std::map<std::string, std::string>{{"cpu", "/sys/fs/cgroup/cpu,cpuacct"},
                                                {"cpuacct", "/sys/fs/cgroup/cpu,cpuacct"},
                                                {"memory", "/sys/fs/cgroup/memory"},
                                                {"pids", "/sys/fs/cgroup/pids"}}));
  EXPECT_EQ(host->self_paths.at("memory"), "/user.slice/user-0.slice");
  EXPECT_EQ(host->self_paths.at("cpu"), "/");
  EXPECT_EQ(host->self_paths.at(""), "/user.slice/user-0.slice/session-1.scope");
  // name=systemd names a hierarchy without controllers: not one of ours.
  EXPECT_EQ(host->self_paths.count("name=systemd"), 0u);
  EXPECT_EQ(host->self_paths.count("systemd"), 0u);
}

TEST(DetectCgroupHost, LegacyFromFixture) {
  FixtureDir f;
  std::string mountinfo = f.write(
      "mountinfo",
      "25 22 0:22 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755\n"
      "29 25 0:26 / /sys/fs/cgroup/memory rw,nosuid shared:12 - cgroup cgroup rw,memory\n"
      "31 25 0:28 / /sys/fs/cgroup/freezer rw,nosuid shared:14 - cgroup cgroup rw,freezer\n");
  // The kernel prints the "0::" line even with no v2 hierarchy mounted.
  std::string self = f.write("cgroup", "7:freezer:/\n4:memory:/symphony.service\n0::/\n");
  auto host = detect_cgroup_host(mountinfo, self);
  ASSERT_TRUE(host) << host.error().message();
  EXPECT_EQ(host->layout, CgroupLayout::legacy);
  EXPECT_EQ(host->unified_mount, "");
  EXPECT_EQ(host->v1_mounts.size(), 2u);
  EXPECT_EQ(host->self_paths.at("memory"), "/symphony.service");
}

TEST(DetectCgroupHost, NoneFromFixture) {
  FixtureDir f;
  std::string mountinfo = f.write("mountinfo",
                                  "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
                                  "23 22 0:5 / /proc rw,nosuid shared:2 - proc proc rw\n");
  auto host = detect_cgroup_host(mountinfo, f.write("cgroup", "0::/\n"));
  ASSERT_TRUE(host) << host.error().message();
  EXPECT_EQ(host->layout, CgroupLayout::none);
  EXPECT_TRUE(host->v1_mounts.empty());
  EXPECT_EQ(host->unified_mount, "");
}

TEST(DetectCgroupHost, MountRootAndEscapedMountPoint) {
  FixtureDir f;
  // A container's view: the mount shows only /docker/abc of the hierarchy,
  // and the mount point has a blank in it (mountinfo writes "\040").
  std::string mountinfo =
      f.write("mountinfo",
              "40 25 0:29 /docker/abc /sys/fs/cgroup/my\\040memory rw - cgroup cgroup rw,memory\n"
              "41 25 0:30 /other /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n");
  std::string self = f.write("cgroup", "5:pids:/docker/abc\n4:memory:/docker/abc/inner\n0::/\n");
  auto host = detect_cgroup_host(mountinfo, self);
  ASSERT_TRUE(host) << host.error().message();
  EXPECT_EQ(host->v1_mounts.at("memory"), "/sys/fs/cgroup/my memory");
  EXPECT_EQ(host->self_paths.at("memory"), "/inner");
  // We are outside what the pids mount shows: it cannot hold our subtree.
  EXPECT_EQ(host->v1_mounts.count("pids"), 0u);
  EXPECT_EQ(host->layout, CgroupLayout::legacy);
}

TEST(DetectCgroupHost, MalformedMountinfoLineIsNamed) {
  FixtureDir f;
  std::string mountinfo = f.write("mountinfo",
                                  "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
                                  "23 22 0:5 / /proc rw,nosuid proc proc rw\n");
  auto host = detect_cgroup_host(mountinfo, f.write("cgroup", "0::/\n"));
  ASSERT_FALSE(host);
  EXPECT_EQ(host.error().code(), EINVAL);
  EXPECT_THAT(host.error().message(), ::testing::HasSubstr(mountinfo + ":2:"));
}

TEST(DetectCgroupHost, MalformedCgroupLineIsNamed) {
  FixtureDir f;
  std::string self = f.write("cgroup", "4:memory:/a\n0::/\nmemory-without-colons\n");
  auto host = detect_cgroup_host(f.write("mountinfo", kHybridMountinfo), self);
  ASSERT_FALSE(host);
  EXPECT_EQ(host.error().code(), EINVAL);
  EXPECT_THAT(host.error().message(), ::testing::HasSubstr(self + ":3:"));
}

TEST(DetectCgroupHost, MissingFileIsAnError) {
  auto host = detect_cgroup_host("/nonexistent/mountinfo", "/proc/self/cgroup");
  ASSERT_FALSE(host);
  EXPECT_EQ(host.error().code(), ENOENT);
  EXPECT_THAT(host.error().message(), ::testing::HasSubstr("/nonexistent/mountinfo"));
}

// What /proc/self/cgroup says our path in `controller`'s hierarchy is.
std::string self_path_from_proc(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    auto first = line.find(':');
    auto second = line.find(':', first + 1);
    std::stringstream names(line.substr(first + 1, second - first - 1));
    for (std::string name; std::getline(names, name, ',');) {
      if (name == controller) return line.substr(second + 1);
    }
    if (controller.empty() && second == first + 1) return line.substr(second + 1);
  }
  return "?";
}

TEST(DetectCgroupHost, ThisHost) {
  auto host = detect_cgroup_host();
  ASSERT_TRUE(host) << host.error().message();
  const bool v1_memory = is_dir("/sys/fs/cgroup/memory") &&
                         std::filesystem::exists("/sys/fs/cgroup/memory/memory.limit_in_bytes");
  const bool v2_unified = std::filesystem::exists("/sys/fs/cgroup/unified/cgroup.procs");
  if (v1_memory && v2_unified) {
    // The development machines: v1 controllers, v2 at /sys/fs/cgroup/unified.
    EXPECT_EQ(host->layout, CgroupLayout::hybrid);
    EXPECT_EQ(host->unified_mount, "/sys/fs/cgroup/unified");
    EXPECT_EQ(host->v1_mounts.at("memory"), "/sys/fs/cgroup/memory");
    EXPECT_EQ(host->self_paths.at("memory"), self_path_from_proc("memory"));
    EXPECT_EQ(host->self_paths.at(""), self_path_from_proc(""));
    EXPECT_EQ(host->v1_mounts.count("name=systemd"), 0u);
  } else if (std::filesystem::exists("/sys/fs/cgroup/cgroup.controllers")) {
    EXPECT_EQ(host->layout, CgroupLayout::unified);
    EXPECT_EQ(host->unified_mount, "/sys/fs/cgroup");
  } else {
    EXPECT_NE(host->layout, CgroupLayout::unified);
  }
}

// ---------------------------------------------------------------------------
// The manager on this host's hierarchies

// "memory" -> the group's directory in the hierarchy holding memory ("" for
// the v2 one), from Cgroup::paths() ("cpu,cpuacct:/sys/…", "v2:/sys/…").
std::string dir_for(const Cgroup& group, const std::string& controller) {
  for (const std::string& entry : group.paths()) {
    auto colon = entry.find(':');
    std::stringstream names(entry.substr(0, colon));
    for (std::string name; std::getline(names, name, ',');) {
      if (name == (controller.empty() ? "v2" : controller)) return entry.substr(colon + 1);
    }
  }
  return "";
}

std::string last_component(const std::string& path) { return path.substr(path.rfind('/') + 1); }

// The group's directory name ("sbx-NAME-PID-N").
std::string group_dir_name(const Cgroup& group) {
  auto paths = group.paths();
  if (paths.empty()) return "";
  return last_component(paths.front());
}

// /proc/PID/cgroup as controller -> path ("" for the v2 line).
std::map<std::string, std::string> proc_cgroups(int pid) {
  std::map<std::string, std::string> out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  for (std::string line; std::getline(in, line);) {
    auto first = line.find(':');
    auto second = line.find(':', first + 1);
    std::string names = line.substr(first + 1, second - first - 1);
    std::string path = line.substr(second + 1);
    if (names.empty()) out[""] = path;
    std::stringstream ss(names);
    for (std::string name; std::getline(ss, name, ',');) out[name] = path;
  }
  return out;
}

[[noreturn]] void sleep_forever() {
  for (;;) ::pause();
}

class CgroupManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "creating cgroups needs root";
    auto host = detect_cgroup_host();
    ASSERT_TRUE(host) << host.error().message();
    host_ = *host;
    scratch_.emplace(host_);
    options_.subtree = scratch_->name();
    // Grandchildren that outlive their parent come back to us to be reaped.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  }
  void TearDown() override {
    scratch_.reset();
    auto deadline = std::chrono::steady_clock::now() + 2s;
    while (std::chrono::steady_clock::now() < deadline) {
      pid_t r = ::waitpid(-1, nullptr, WNOHANG);
      if (r < 0) break;  // ECHILD: none left
      if (r == 0) std::this_thread::sleep_for(5ms);
    }
    ::prctl(PR_SET_CHILD_SUBREAPER, 0);
  }

  bool has_v1() const { return !host_.v1_mounts.empty(); }
  bool has_v2() const { return !host_.unified_mount.empty(); }
  bool has_v1(const char* controller) const { return host_.v1_mounts.count(controller) != 0; }
  // The layout as detected takes the v1 code path (hybrid or legacy).
  bool v1_path() const {
    return host_.layout == CgroupLayout::hybrid || host_.layout == CgroupLayout::legacy;
  }

  std::unique_ptr<CgroupManager> open_manager() {
    auto manager = open_cgroup_manager(options_);
    EXPECT_TRUE(manager) << manager.error().message();
    return manager ? std::move(*manager) : nullptr;
  }

  CgroupHost host_;
  std::optional<ScratchSubtree> scratch_;
  CgroupOptions options_;
};

TEST_F(CgroupManagerTest, V1WritesCpuMemoryAndPidsLimits) {
  if (!v1_path()) GTEST_SKIP() << "no cgroup v1 controllers (" << to_string(host_.layout) << ")";
  auto manager = open_manager();
  ASSERT_TRUE(manager);
  CgroupLimits limits;
  limits.cpu = 0.25;
  limits.memory = Bytes{64ull << 20};
  limits.pids = 16;
  auto group = manager->create("limits", limits);
  ASSERT_TRUE(group) << group.error().message();
  Cgroup& g = **group;

  if (has_v1("cpu")) {
    std::string cpu = dir_for(g, "cpu");
    EXPECT_EQ(read_text(cpu + "/cpu.cfs_period_us"), "100000");
    EXPECT_EQ(read_text(cpu + "/cpu.cfs_quota_us"), "25000");
  }
  if (has_v1("memory")) {
    std::string memory = dir_for(g, "memory");
    EXPECT_EQ(read_text(memory + "/memory.limit_in_bytes"), "67108864");
    if (std::filesystem::exists(memory + "/memory.memsw.limit_in_bytes")) {
      // No swap asked for: memory plus swap is just memory.
      EXPECT_EQ(read_text(memory + "/memory.memsw.limit_in_bytes"), "67108864");
    }
  }
  if (has_v1("pids")) {
    EXPECT_EQ(read_text(dir_for(g, "pids") + "/pids.max"), "16");
  }
  // On a hybrid host the group has a v2 directory too, for membership and cgroup.kill.
  if (host_.layout == CgroupLayout::hybrid) {
    EXPECT_TRUE(is_dir(dir_for(g, "")));
    EXPECT_GE(g.v2_dir_fd(), 0);
  }

  std::vector<std::string> dirs;
  for (const std::string& entry : g.paths()) dirs.push_back(entry.substr(entry.find(':') + 1));
  ASSERT_FALSE(dirs.empty());
  for (const auto& d : dirs) {
    EXPECT_TRUE(is_dir(d)) << d;
    EXPECT_EQ(last_component(d), group_dir_name(g));
  }
  ASSERT_TRUE(g.remove());
  for (const auto& d : dirs) EXPECT_FALSE(is_dir(d)) << d;
  EXPECT_TRUE(g.remove());  // idempotent
}

// On a hybrid host a group joins a v1 hierarchy only for a limit that
// hierarchy enforces (each v1 join costs an RCU grace period); without
// limits it lives on the v2 hierarchy alone.
TEST_F(CgroupManagerTest, HybridJoinsOnlyTheV1HierarchiesItsLimitsNeed) {
  if (host_.layout != CgroupLayout::hybrid) GTEST_SKIP() << "needs a hybrid host";
  if (::geteuid() != 0) GTEST_SKIP() << "the BPF device filter needs root";
  auto manager = open_manager();
  ASSERT_TRUE(manager);
  auto v1_parts = [](const Cgroup& g) {
    std::vector<std::string> out;
    for (const auto& p : g.paths()) {
      if (p.rfind("v2:", 0) != 0) out.push_back(p.substr(0, p.find(':')));
    }
    return out;
  };
  CgroupLimits none;
  auto bare = manager->create("bare", none);
  ASSERT_TRUE(bare) << bare.error().message();
  EXPECT_TRUE(v1_parts(**bare).empty()) << testing::PrintToString(v1_parts(**bare));
  EXPECT_GE((*bare)->v2_dir_fd(), 0);

  CgroupLimits memory;
  memory.memory = Bytes{64ull << 20};
  auto limited = manager->create("memory", memory);
  ASSERT_TRUE(limited) << limited.error().message();
  EXPECT_EQ(v1_parts(**limited), std::vector<std::string>{"memory"});
}

TEST_F(CgroupManagerTest, V1AddKillRemove) {
  if (!v1_path()) GTEST_SKIP() << "no cgroup v1 controllers (" << to_string(host_.layout) << ")";
  auto manager = open_manager();
  ASSERT_TRUE(manager);
  CgroupLimits limits;
  limits.memory = Bytes{64ull << 20};
  limits.prepare_all = true;  // every v1 hierarchy, as a zygote shell's group
  auto group = manager->create("add", limits);
  ASSERT_TRUE(group) << group.error().message();
  Cgroup& g = **group;

  auto child = ForkedChild::start([] {
    sleep_forever();
    return 0;
  });
  ASSERT_GT(child.pid(), 0);
  ASSERT_TRUE(g.add_process(child.pid()));

  const std::string name = group_dir_name(g);
  auto where = proc_cgroups(child.pid());
  for (const char* c : {"memory", "pids", "cpu", "cpuacct"}) {
    if (has_v1(c)) {
      EXPECT_EQ(last_component(where[c]), name) << c;
    }
  }
  if (host_.layout == CgroupLayout::hybrid) {
    EXPECT_EQ(last_component(where[""]), name);
  }
  EXPECT_TRUE(g.populated());
  EXPECT_THAT(g.pids(), ::testing::Contains(child.pid()));

  ASSERT_TRUE(g.kill());
  auto status = child.wait_for(5s);
  ASSERT_TRUE(status) << "the child survived kill()";
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
  for (int i = 0; i < 400 && g.populated(); ++i) std::this_thread::sleep_for(5ms);
  EXPECT_FALSE(g.populated());
  EXPECT_TRUE(g.pids().empty());

  auto paths = g.paths();
  ASSERT_TRUE(g.remove());
  for (const auto& entry : paths) EXPECT_FALSE(is_dir(entry.substr(entry.find(':') + 1))) << entry;
}

TEST_F(CgroupManagerTest, V1PidsLimitStopsForks) {
  if (!v1_path()) GTEST_SKIP() << "no cgroup v1 controllers (" << to_string(host_.layout) << ")";
  if (!has_v1("pids")) GTEST_SKIP() << "no v1 pids controller";
  auto manager = open_manager();
  ASSERT_TRUE(manager);
  CgroupLimits limits;
  limits.pids = 4;
  auto group = manager->create("pids", limits);
  ASSERT_TRUE(group) << group.error().message();

  auto child = ForkedChild::start([] {
    int forked = 0;
    int refused = 0;
    for (int i = 0; i < 10; ++i) {
      pid_t pid = ::fork();
      if (pid == 0) sleep_forever();
      if (pid > 0) ++forked;
      if (pid < 0 && errno == EAGAIN) ++refused;
    }
    return forked * 16 + refused;
  });
  ASSERT_GT(child.pid(), 0);
  ASSERT_TRUE((*group)->add_process(child.pid()));
  child.release();
  auto status = child.wait_for(10s);
  ASSERT_TRUE(status);
  ASSERT_TRUE(WIFEXITED(*status));
  // The child is one of the four tasks: three forks succeed, seven fail.
  EXPECT_EQ(WEXITSTATUS(*status) / 16, 3);
  EXPECT_EQ(WEXITSTATUS(*status) % 16, 7);
  EXPECT_TRUE((*group)->remove());
}

TEST_F(CgroupManagerTest, V1OomKillIsCounted) {
  if (!v1_path()) GTEST_SKIP() << "no cgroup v1 controllers (" << to_string(host_.layout) << ")";
  if (!has_v1("memory")) GTEST_SKIP() << "no v1 memory controller";
  auto manager = open_manager();
  ASSERT_TRUE(manager);
  CgroupLimits limits;
  limits.memory = Bytes{32ull << 20};
  auto group = manager->create("oom", limits);
  ASSERT_TRUE(group) << group.error().message();
  EXPECT_EQ((*group)->oom_kills(), 0u);

  auto child = ForkedChild::start([] {
    const std::size_t size = 256u << 20;
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 2;
    volatile char* bytes = static_cast<volatile char*>(p);
    for (std::size_t i = 0; i < size; i += 4096) bytes[i] = 1;
    return 0;
  });
  ASSERT_GT(child.pid(), 0);
  ASSERT_TRUE((*group)->add_process(child.pid()));
  child.release();
  auto status = child.wait_for(30s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << "status " << *status;
  EXPECT_GE((*group)->oom_kills(), 1u);
}

TEST_F(CgroupManagerTest, V1CpuQuotaThrottles) {
  if (!v1_path()) GTEST_SKIP() << "no cgroup v1 controllers (" << to_string(host_.layout) << ")";
  if (!has_v1("cpu")) GTEST_SKIP() << "no v1 cpu controller";
  auto manager = open_manager();
  ASSERT_TRUE(manager);
  CgroupLimits limits;
  limits.cpu = 0.2;
  auto group = manager->create("cpu", limits);
  ASSERT_TRUE(group) << group.error().message();

  auto child = ForkedChild::start([] {
    timespec start{};
    ::clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
      timespec now{};
      ::clock_gettime(CLOCK_MONOTONIC, &now);
      long long ns = (now.tv_sec - start.tv_sec) * 1000000000LL + (now.tv_nsec - start.tv_nsec);
      if (ns >= 1000000000LL) break;
    }
    return 0;
  });
  ASSERT_GT(child.pid(), 0);
  ASSERT_TRUE((*group)->add_process(child.pid()));
  child.release();
  auto status = child.wait_for(10s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  auto used = (*group)->cpu_usage();
  // 1 s of wall time at 0.2 CPU: about 200 ms.
  EXPECT_LT(used, 500ms) << used.count() << " us";
  EXPECT_GT(used, 50ms) << used.count() << " us";
}

TEST_F(CgroupManagerTest, LegacyKillFreezesThenKillsEveryProcess) {
  if (!has_v1("freezer")) GTEST_SKIP() << "no v1 freezer";
  options_.force_layout = CgroupLayout::legacy;
  auto manager = open_manager();
  ASSERT_TRUE(manager);
  EXPECT_EQ(manager->layout(), CgroupLayout::legacy);
  EXPECT_THAT(manager->describe(), ::testing::StartsWith("cgroup v1 (legacy): "));
  CgroupLimits limits;
  limits.pids = 64;
  auto group = manager->create("legacy", limits);
  ASSERT_TRUE(group) << group.error().message();
  Cgroup& g = **group;
  EXPECT_EQ(g.v2_dir_fd(), -1);
  EXPECT_NE(dir_for(g, "freezer"), "");
  EXPECT_EQ(dir_for(g, ""), "");

  auto child = ForkedChild::start([] {
    if (::fork() == 0) sleep_forever();
    sleep_forever();
    return 0;
  });
  ASSERT_GT(child.pid(), 0);
  ASSERT_TRUE(g.add_process(child.pid()));
  child.release();
  for (int i = 0; i < 400 && g.pids().size() < 2; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(g.pids().size(), 2u);

  ASSERT_TRUE(g.kill());
  EXPECT_FALSE(g.populated());
  auto status = child.wait_for(5s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
  EXPECT_EQ(read_text(dir_for(g, "freezer") + "/freezer.state"), "THAWED");
  EXPECT_TRUE(g.remove());
}

TEST_F(CgroupManagerTest, V2ForcedOnThisHierarchy) {
  if (!has_v2()) GTEST_SKIP() << "no cgroup v2 hierarchy";
  options_.force_layout = CgroupLayout::unified;
  auto manager = open_manager();
  ASSERT_TRUE(manager);
  EXPECT_EQ(manager->layout(), CgroupLayout::unified);
  EXPECT_THAT(manager->describe(), ::testing::StartsWith("cgroup v2: "));
  // Limits whose controller the v2 subtree lacks (all of them on a hybrid
  // host) are reported, and create() goes ahead with what there is.
  auto unsupported = manager->unsupported();
  auto reported = [&](const std::string& what) {
    return std::any_of(unsupported.begin(), unsupported.end(),
                       [&](const std::string& u) { return u.rfind(what + ":", 0) == 0; });
  };
  CgroupLimits limits;
  limits.cpu = 0.5;
  limits.memory = Bytes{64ull << 20};
  limits.pids = 32;
  limits.restrict_devices = false;
  auto group = manager->create("v2", limits);
  ASSERT_TRUE(group) << group.error().message();
  Cgroup& g = **group;
  std::string dir = dir_for(g, "");
  ASSERT_TRUE(is_dir(dir));
  EXPECT_EQ(g.paths().size(), 1u);
  EXPECT_GE(g.v2_dir_fd(), 0);
  if (!reported("cpu")) {
    EXPECT_EQ(read_text(dir + "/cpu.max"), "50000 100000");
  }
  if (!reported("memory")) {
    EXPECT_EQ(read_text(dir + "/memory.max"), "67108864");
  }
  if (!reported("swap")) {
    EXPECT_EQ(read_text(dir + "/memory.swap.max"), "0");
  }
  if (!reported("pids")) {
    EXPECT_EQ(read_text(dir + "/pids.max"), "32");
  }
  if (host_.layout == CgroupLayout::hybrid) {
    EXPECT_TRUE(reported("cpu") && reported("memory") && reported("pids"));
  }

  auto child = ForkedChild::start([] {
    sleep_forever();
    return 0;
  });
  ASSERT_GT(child.pid(), 0);
  EXPECT_FALSE(g.populated());
  ASSERT_TRUE(g.add_process(child.pid()));
  EXPECT_EQ(last_component(proc_cgroups(child.pid())[""]), group_dir_name(g));
  EXPECT_TRUE(g.populated());
  EXPECT_EQ(g.pids(), std::vector<int>{child.pid()});

  ASSERT_TRUE(g.kill());
  auto status = child.wait_for(5s);
  ASSERT_TRUE(status) << "cgroup.kill did not kill the child";
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
  for (int i = 0; i < 400 && g.populated(); ++i) std::this_thread::sleep_for(5ms);
  EXPECT_FALSE(g.populated());
  EXPECT_GE(g.cpu_usage().count(), 0);

  ASSERT_TRUE(g.remove());
  EXPECT_FALSE(is_dir(dir));
  EXPECT_EQ(g.v2_dir_fd(), -1);
}

TEST_F(CgroupManagerTest, CloneIntoCgroupUsesTheV2DirFd) {
  if (!has_v2()) GTEST_SKIP() << "no cgroup v2 hierarchy";
  auto manager = open_manager();
  ASSERT_TRUE(manager);
  CgroupLimits limits;
  limits.restrict_devices = false;
  limits.memory = Bytes{64ull << 20};  // so that the group has a v1 memory part
  auto group = manager->create("clone3", limits);
  ASSERT_TRUE(group) << group.error().message();
  Cgroup& g = **group;
  ASSERT_GE(g.v2_dir_fd(), 0);

  clone_args args{};
  args.flags = CLONE_INTO_CGROUP;
  args.exit_signal = SIGCHLD;
  args.cgroup = static_cast<std::uint64_t>(g.v2_dir_fd());
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) sleep_forever();
  if (pid < 0 && (errno == ENOSYS || errno == E2BIG)) GTEST_SKIP() << "no clone3 CLONE_INTO_CGROUP";
  ASSERT_GT(pid, 0) << std::strerror(errno);
  const int child = static_cast<int>(pid);
  EXPECT_EQ(last_component(proc_cgroups(child)[""]), group_dir_name(g));
  // v1 membership (hybrid) comes with add_process; writing v2 again is harmless.
  EXPECT_TRUE(g.add_process(child));
  if (has_v1("memory") && host_.layout == CgroupLayout::hybrid) {
    EXPECT_EQ(last_component(proc_cgroups(child)["memory"]), group_dir_name(g));
  }
  EXPECT_TRUE(g.kill());
  int status = 0;
  EXPECT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(g.remove());
}

TEST_F(CgroupManagerTest, DestroyingTheGroupRemovesItsDirectories) {
  auto manager = open_manager();
  ASSERT_TRUE(manager);
  std::vector<std::string> dirs;
  {
    auto group = manager->create("scoped", CgroupLimits{});
    ASSERT_TRUE(group) << group.error().message();
    for (const auto& entry : (*group)->paths()) dirs.push_back(entry.substr(entry.find(':') + 1));
    for (const auto& d : dirs) EXPECT_TRUE(is_dir(d)) << d;
  }
  ASSERT_FALSE(dirs.empty());
  for (const auto& d : dirs) EXPECT_FALSE(is_dir(d)) << d;
}

TEST_F(CgroupManagerTest, GroupNamesAreSanitizedAndUnique) {
  auto manager = open_manager();
  ASSERT_TRUE(manager);
  const std::string weird = "weird name/with*chars and a tail well beyond forty characters";
  auto a = manager->create(weird, CgroupLimits{});
  auto b = manager->create(weird, CgroupLimits{});
  ASSERT_TRUE(a) << a.error().message();
  ASSERT_TRUE(b) << b.error().message();
  std::string name_a = group_dir_name(**a);
  std::string name_b = group_dir_name(**b);
  std::regex form("sbx-[A-Za-z0-9_.-]{1,40}-" + std::to_string(::getpid()) + "-[0-9]+");
  EXPECT_TRUE(std::regex_match(name_a, form)) << name_a;
  // The first 40 characters of the name, each outside [A-Za-z0-9_.-] made '_'.
  EXPECT_EQ(name_a.substr(0, 4 + 40 + 1), "sbx-weird_name_with_chars_and_a_tail_well_be-");
  EXPECT_NE(name_a, name_b);
}

TEST_F(CgroupManagerTest, BadLimitsAreRejected) {
  auto manager = open_manager();
  ASSERT_TRUE(manager);
  CgroupLimits limits;
  limits.cpu = -1;
  auto group = manager->create("bad", limits);
  ASSERT_FALSE(group);
  EXPECT_EQ(group.error().code(), EINVAL);
  limits.cpu = std::nan("");
  EXPECT_FALSE(manager->create("bad", limits));
}

TEST_F(CgroupManagerTest, AFailedLimitNamesTheFileAndLeavesNoGroup) {
  if (!v1_path()) GTEST_SKIP() << "no cgroup v1 controllers (" << to_string(host_.layout) << ")";
  if (!has_v1("cpu")) GTEST_SKIP() << "no v1 cpu controller";
  auto manager = open_manager();
  ASSERT_TRUE(manager);
  CgroupLimits limits;
  limits.cpu = 1e9;  // a quota beyond what the kernel accepts
  auto group = manager->create("toomuch", limits);
  ASSERT_FALSE(group);
  EXPECT_THAT(group.error().message(), ::testing::HasSubstr("/cpu.cfs_quota_us"));
  for (const auto& entry : host_.v1_mounts) {
    std::error_code ec;  // hierarchies the manager does not use have no subtree
    for (const auto& e : std::filesystem::directory_iterator(scratch_->base(entry.first), ec)) {
      EXPECT_FALSE(e.is_directory()) << e.path();
    }
  }
}

TEST_F(CgroupManagerTest, CleanupStaleRemovesOnlyDeadLaunchersGroups) {
  auto manager = open_manager();
  ASSERT_TRUE(manager);
  // A pid that was alive and is no longer.
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  ::waitpid(dead, nullptr, 0);

  std::vector<std::string> bases;
  if (manager->layout() != CgroupLayout::legacy && has_v2()) bases.push_back(scratch_->base(""));
  if (manager->layout() != CgroupLayout::unified && has_v1("memory")) {
    bases.push_back(scratch_->base("memory"));
  }
  ASSERT_FALSE(bases.empty());
  const std::string stale = "sbx-x-" + std::to_string(dead) + "-1";
  const std::string ours = "sbx-x-" + std::to_string(::getpid()) + "-1";
  const std::string foreign = "someone-elses-" + std::to_string(dead);
  for (const auto& base : bases) {
    for (const auto& name : {stale, ours, foreign}) {
      ASSERT_EQ(::mkdir((base + "/" + name).c_str(), 0755), 0) << base << "/" << name;
    }
  }
  // Something left running in the stale group is killed first.
  auto child = ForkedChild::start([] {
    sleep_forever();
    return 0;
  });
  ASSERT_GT(child.pid(), 0);
  std::ofstream(bases.front() + "/" + stale + "/cgroup.procs") << child.pid();

  auto removed = manager->cleanup_stale();
  ASSERT_TRUE(removed) << removed.error().message();
  EXPECT_EQ(*removed, 1);
  for (const auto& base : bases) {
    EXPECT_FALSE(is_dir(base + "/" + stale)) << base;
    EXPECT_TRUE(is_dir(base + "/" + ours)) << base;
    EXPECT_TRUE(is_dir(base + "/" + foreign)) << base;
  }
  auto status = child.wait_for(5s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);

  auto again = manager->cleanup_stale();
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0);
}

TEST_F(CgroupManagerTest, DescribeAndUnsupportedOnThisHost) {
  auto manager = open_manager();
  ASSERT_TRUE(manager);
  EXPECT_EQ(manager->layout(), host_.layout);
  std::string text = manager->describe();
  if (host_.layout == CgroupLayout::hybrid) {
    EXPECT_THAT(text, ::testing::StartsWith("cgroup v1 (hybrid): "));
    EXPECT_THAT(text, ::testing::HasSubstr("v2 core at " + host_.unified_mount));
    if (has_v1("memory")) {
      EXPECT_THAT(text, ::testing::HasSubstr("memory"));
    }
    // Every limit has a v1 controller here; swap needs memsw.
    bool memsw = std::filesystem::exists(scratch_->base("memory") + "/memory.memsw.limit_in_bytes");
    if (has_v1("cpu") && has_v1("memory") && has_v1("pids") && has_v1("devices") && memsw) {
      EXPECT_TRUE(manager->unsupported().empty())
          << ::testing::PrintToString(manager->unsupported());
    }
  } else if (host_.layout == CgroupLayout::unified) {
    EXPECT_THAT(text, ::testing::StartsWith("cgroup v2: "));
  }
}

TEST_F(CgroupManagerTest, SubtreeMustBeRelative) {
  options_.subtree = "/abs";
  auto a = open_cgroup_manager(options_);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code(), EINVAL);
  options_.subtree = "x/../../escape";
  EXPECT_FALSE(open_cgroup_manager(options_));
}

}  // namespace
}  // namespace symphony::sandbox
