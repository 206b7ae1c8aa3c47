// Tests of device restriction: the BPF program of attach_device_filter on a
// v2 group (this host's v2 hierarchy, hybrid or not), the v1 devices
// controller path, and both together through the manager. A child moved into
// the group tries to open device nodes; the kernel's answer (EPERM or not) is
// what is checked.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "sandbox/cgroup.h"
#include "tests/sandbox/cgroup_test_support.h"

namespace symphony::sandbox {
namespace {

using namespace std::chrono_literals;
using cgroup_testing::ForkedChild;
using cgroup_testing::read_text;
using cgroup_testing::ScratchSubtree;

struct OpenAttempt {
  const char* path;
  int flags;
};

// What the child saw for each attempt: "ok", "EPERM" or "errno N".
using Outcomes = std::vector<std::string>;

// Forks a child, lets `place` put it in a group, then has it open each of
// `attempts` (at most 8). The child reports through its exit status and a
// pipe of errno bytes, both async-signal-safe.
template <class Place>
Outcomes opens_in_group(const std::vector<OpenAttempt>& attempts, Place place) {
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return {"pipe failed"};
  UniqueFd read_end(report[0]);
  UniqueFd write_end(report[1]);
  const int out = write_end.get();
  auto child = ForkedChild::start([&attempts, out] {
    for (const OpenAttempt& a : attempts) {
      int fd = ::open(a.path, a.flags | O_CLOEXEC);
      unsigned char err = fd >= 0 ? 0 : static_cast<unsigned char>(errno);
      if (fd >= 0) ::close(fd);
      if (::write(out, &err, 1) != 1) return 1;
    }
    return 0;
  });
  write_end.reset();
  if (child.pid() <= 0) return {"fork failed"};
  if (!place(child.pid())) return {"could not put the child in the group"};
  child.release();
  auto status = child.wait_for(10s);
  if (!status || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0) return {"child failed"};
  Outcomes outcomes;
  unsigned char err;
  while (::read(read_end.get(), &err, 1) == 1) {
    outcomes.push_back(err == 0 ? "ok" : err == EPERM ? "EPERM" : "errno " + std::to_string(err));
  }
  return outcomes;
}

const OpenAttempt kNull{"/dev/null", O_RDWR};     // c 1:3
const OpenAttempt kZero{"/dev/zero", O_RDONLY};   // c 1:5
const OpenAttempt kZeroW{"/dev/zero", O_WRONLY};  // c 1:5
const OpenAttempt kFull{"/dev/full", O_RDONLY};   // c 1:7
const OpenAttempt kTty{"/dev/tty", O_RDWR};       // c 5:0

TEST(AttachDeviceFilter, RejectsMalformedRules) {
  for (const DeviceRule& rule :
       {DeviceRule{'x', 1, 3, "rwm"}, DeviceRule{'c', 1, 3, "rx"}, DeviceRule{'c', 1, 3, ""},
        DeviceRule{'c', 1, -2, "r"}, DeviceRule{'b', -5, 0, "r"}}) {
    auto fd = attach_device_filter(-1, {DeviceRule{'c', 1, 3, "rwm"}, rule});
    ASSERT_FALSE(fd);
    EXPECT_EQ(fd.error().code(), EINVAL);
    EXPECT_THAT(fd.error().message(), ::testing::HasSubstr("device rule"));
  }
}

// Each test makes its own group below the scratch subtree of the v2
// hierarchy and attaches a filter there directly.
class DeviceFilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "attaching BPF programs to cgroups needs root";
    auto host = detect_cgroup_host();
    ASSERT_TRUE(host) << host.error().message();
    host_ = *host;
    if (host_.unified_mount.empty()) GTEST_SKIP() << "no cgroup v2 hierarchy";
    scratch_.emplace(host_);
    ASSERT_EQ(::mkdir(scratch_->base("").c_str(), 0755), 0) << std::strerror(errno);
  }

  // A fresh v2 group with a filter for `rules`; its directory is `dir_`.
  void make_group(const std::vector<DeviceRule>& rules) {
    dir_ = scratch_->base("") + "/filter-" + std::to_string(++groups_);
    ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0) << std::strerror(errno);
    UniqueFd dir_fd(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dir_fd.valid());
    auto prog = attach_device_filter(dir_fd.get(), rules);
    ASSERT_TRUE(prog) << prog.error().message();
    EXPECT_TRUE(prog->valid());
    // The program fd closes here: the attachment keeps the program.
  }

  Outcomes opens(const std::vector<OpenAttempt>& attempts) {
    return opens_in_group(attempts, [&](int pid) {
      std::ofstream procs(dir_ + "/cgroup.procs");
      procs << pid;
      procs.close();
      return static_cast<bool>(procs);
    });
  }

  CgroupHost host_;
  std::optional<ScratchSubtree> scratch_;
  std::string dir_;
  int groups_ = 0;
};

TEST_F(DeviceFilterTest, AllowsOnlyTheListedDevice) {
  make_group({DeviceRule{'c', 1, 3, "rwm"}});
  EXPECT_EQ(opens({kNull, kZero}), (Outcomes{"ok", "EPERM"}));
}

TEST_F(DeviceFilterTest, NoRulesDeniesEveryDevice) {
  make_group({});
  EXPECT_EQ(opens({kNull, kZero}), (Outcomes{"EPERM", "EPERM"}));
}

TEST_F(DeviceFilterTest, AccessIsPartOfTheRule) {
  make_group({DeviceRule{'c', 1, 3, "rwm"}, DeviceRule{'c', 1, 5, "r"}});
  EXPECT_EQ(opens({kNull, kZero, kZeroW}), (Outcomes{"ok", "ok", "EPERM"}));
}

TEST_F(DeviceFilterTest, MinusOneMinorIsAnyMinor) {
  make_group({DeviceRule{'c', 1, -1, "rw"}});
  EXPECT_EQ(opens({kNull, kZero, kFull, kTty}), (Outcomes{"ok", "ok", "ok", "EPERM"}));
}

TEST_F(DeviceFilterTest, TypeIsPartOfTheRule) {
  make_group({DeviceRule{'b', 1, 3, "rwm"}, DeviceRule{'a', 1, 5, "rwm"}});
  // /dev/null is a character device, so the block rule does not cover it;
  // type 'a' covers both.
  EXPECT_EQ(opens({kNull, kZero}), (Outcomes{"EPERM", "ok"}));
}

// Through the manager: v2 forced, v1 (legacy) forced, and hybrid as detected.
class ManagedDevicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "creating cgroups needs root";
    auto host = detect_cgroup_host();
    ASSERT_TRUE(host) << host.error().message();
    host_ = *host;
    scratch_.emplace(host_);
    options_.subtree = scratch_->name();
    limits_.devices = {DeviceRule{'c', 1, 3, "rwm"}};
  }

  Outcomes opens(Cgroup& group, const std::vector<OpenAttempt>& attempts) {
    return opens_in_group(attempts,
                          [&](int pid) { return static_cast<bool>(group.add_process(pid)); });
  }

  std::unique_ptr<Cgroup> create() {
    auto manager = open_cgroup_manager(options_);
    EXPECT_TRUE(manager) << manager.error().message();
    if (!manager) return nullptr;
    auto group = (*manager)->create("devices", limits_);
    EXPECT_TRUE(group) << group.error().message();
    return group ? std::move(*group) : nullptr;
  }

  CgroupHost host_;
  std::optional<ScratchSubtree> scratch_;
  CgroupOptions options_;
  CgroupLimits limits_;
};

TEST_F(ManagedDevicesTest, V2UsesTheBpfFilter) {
  if (host_.unified_mount.empty()) GTEST_SKIP() << "no cgroup v2 hierarchy";
  options_.force_layout = CgroupLayout::unified;
  auto group = create();
  ASSERT_TRUE(group);
  EXPECT_EQ(opens(*group, {kNull, kZero}), (Outcomes{"ok", "EPERM"}));
  EXPECT_TRUE(group->remove());
}

TEST_F(ManagedDevicesTest, V2UnrestrictedLeavesDevicesAlone) {
  if (host_.unified_mount.empty()) GTEST_SKIP() << "no cgroup v2 hierarchy";
  options_.force_layout = CgroupLayout::unified;
  limits_.restrict_devices = false;
  auto group = create();
  ASSERT_TRUE(group);
  EXPECT_EQ(opens(*group, {kNull, kZero}), (Outcomes{"ok", "ok"}));
}

TEST_F(ManagedDevicesTest, V1UsesTheDevicesController) {
  if (!host_.v1_mounts.count("devices")) GTEST_SKIP() << "no v1 devices controller";
  options_.force_layout = CgroupLayout::legacy;
  limits_.devices.push_back(DeviceRule{'c', 5, -1, "rw"});
  auto group = create();
  ASSERT_TRUE(group);
  std::string dir;
  for (const auto& entry : group->paths()) {
    if (entry.rfind("devices:", 0) == 0) dir = entry.substr(8);
  }
  ASSERT_NE(dir, "");
  EXPECT_EQ(read_text(dir + "/devices.list"), "c 1:3 rwm\nc 5:* rw");
  EXPECT_EQ(opens(*group, {kNull, kZero, kFull}), (Outcomes{"ok", "EPERM", "EPERM"}));
  EXPECT_TRUE(group->remove());
}

TEST_F(ManagedDevicesTest, V1UnrestrictedMakesNoDevicesGroup) {
  if (!host_.v1_mounts.count("devices")) GTEST_SKIP() << "no v1 devices controller";
  options_.force_layout = CgroupLayout::legacy;
  limits_.restrict_devices = false;
  auto group = create();
  ASSERT_TRUE(group);
  for (const auto& entry : group->paths()) EXPECT_EQ(entry.rfind("devices", 0), std::string::npos);
  EXPECT_EQ(opens(*group, {kNull, kZero}), (Outcomes{"ok", "ok"}));
}

// The number of BPF device programs attached to the cgroup at `dir_fd`.
int attached_device_programs(int dir_fd) {
  bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.query.target_fd = static_cast<std::uint32_t>(dir_fd);
  attr.query.attach_type = BPF_CGROUP_DEVICE;
  if (::syscall(SYS_bpf, BPF_PROG_QUERY, &attr, sizeof attr) != 0) return -1;
  return static_cast<int>(attr.query.prog_cnt);
}

TEST_F(ManagedDevicesTest, HybridRestrictsThroughV1AndBpf) {
  if (host_.layout != CgroupLayout::hybrid) GTEST_SKIP() << "not a hybrid host";
  auto group = create();
  ASSERT_TRUE(group);
  // Both mechanisms are in place: the v1 devices group and, on this
  // kernel, the BPF program on the v2 group.
  EXPECT_EQ(attached_device_programs(group->v2_dir_fd()), 1);
  EXPECT_EQ(opens(*group, {kNull, kZero}), (Outcomes{"ok", "EPERM"}));
}

}  // namespace
}  // namespace symphony::sandbox
