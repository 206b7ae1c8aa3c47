// The zygote: spawns served from pre-forked shells behave exactly like
// direct spawns (exit reports, grants, limits), only the spec-dependent
// steps run on the spawn's path, the pool refills after use, and specs of
// another shape fall back to a direct spawn.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "sandbox/linux_launcher.h"

namespace symphony::sandbox {
namespace {

bool has_step(const std::vector<StepTiming>& timings, const std::string& step) {
  return std::any_of(timings.begin(), timings.end(),
                     [&](const StepTiming& t) { return t.step == step; });
}

class ZygoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the sandbox tests run as root (cgroups, uid 65534)";
    LauncherOptions options;
    options.zygote_shells = 1;
    auto launcher = make_launcher(options);
    ASSERT_TRUE(launcher) << launcher.error().message();
    launcher_ = std::move(launcher).value();
  }

  Spec shell(const std::string& script) {
    Spec spec;
    spec.argv = {"/bin/sh", "-c", script};
    spec.env = {"PATH=/usr/bin:/bin"};
    spec.name = "zygote-test";
    return spec;
  }

  ExitReport run(const Spec& spec, std::vector<StepTiming>* timings = nullptr) {
    launcher_->prewarm();
    auto child = launcher_->spawn(spec);
    EXPECT_TRUE(child) << child.error().message();
    if (!child) return {};
    if (timings) *timings = launcher_->last_timings();
    return (*child)->wait();
  }

  std::unique_ptr<Launcher> launcher_;
};

TEST_F(ZygoteTest, ServesASpawnFromAShellWithOnlyThePerSpawnSteps) {
  std::vector<StepTiming> timings;
  auto report = run(shell("exit 5"), &timings);
  EXPECT_EQ(report.reason, ExitReason::exited) << report.to_json();
  EXPECT_EQ(report.exit_code, 5);
  // Phase B ran for this spawn; the namespaces and the root were made before.
  EXPECT_TRUE(has_step(timings, "pivot_root"));
  EXPECT_TRUE(has_step(timings, "seccomp"));
  EXPECT_FALSE(has_step(timings, "clone"));
  EXPECT_FALSE(has_step(timings, "mount_private"));
  EXPECT_NE(launcher_->describe().find("zygote (1 pre-forked shells"), std::string::npos)
      << launcher_->describe();
}

TEST_F(ZygoteTest, RefillsAfterEachSpawn) {
  for (int i = 0; i < 3; ++i) {
    std::vector<StepTiming> timings;
    auto report = run(shell("exit " + std::to_string(i)), &timings);
    EXPECT_EQ(report.exit_code, i) << report.to_json();
    EXPECT_FALSE(has_step(timings, "clone")) << "spawn " << i << " did not come from a shell";
  }
}

TEST_F(ZygoteTest, GrantsAndLimitsApplyToAShell) {
  char dir_template[] = "/tmp/zygote-test.XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  std::string dir = dir_template;
  ASSERT_EQ(chown(dir.c_str(), 65534, 65534), 0);
  auto spec = shell("echo granted > " + dir + "/out && touch /usr/evil 2>/dev/null; echo $? >> " +
                    dir + "/out");
  spec.permissions.binds = {{dir, Access::read_write}};
  spec.limits.memory = Bytes{64u << 20};
  spec.limits.pids = 16;
  auto report = run(spec);
  EXPECT_EQ(report.reason, ExitReason::exited) << report.to_json();
  std::ifstream in(dir + "/out");
  std::string first, second;
  std::getline(in, first);
  std::getline(in, second);
  EXPECT_EQ(first, "granted");
  EXPECT_NE(second, "0") << "the root must stay read-only";

  // The same shell kind enforces the memory limit it was given at spawn.
  auto hog = shell("x=$(head -c 400000000 /dev/zero | tr '\\0' a); echo ${#x}");
  hog.limits.memory = Bytes{64u << 20};
  auto oom = run(hog);
  EXPECT_EQ(oom.reason, ExitReason::oom) << oom.to_json();
  std::filesystem::remove_all(dir);
}

TEST_F(ZygoteTest, AnotherShapeFallsBackToADirectSpawn) {
  auto spec = shell("exit 0");
  spec.permissions.network = true;  // shells have a private network namespace
  std::vector<StepTiming> timings;
  auto report = run(spec, &timings);
  EXPECT_EQ(report.reason, ExitReason::exited) << report.to_json();
  EXPECT_TRUE(has_step(timings, "clone"));
}

TEST_F(ZygoteTest, ASetupFailureInAShellNamesTheStep) {
  auto spec = shell("exit 0");
  spec.cwd = "/does/not/exist";
  launcher_->prewarm();
  auto child = launcher_->spawn(spec);
  ASSERT_FALSE(child);
  EXPECT_EQ(failed_step(child.error()), "chdir") << child.error().message();
  // The pool carries on.
  auto report = run(shell("exit 3"));
  EXPECT_EQ(report.exit_code, 3) << report.to_json();
}

}  // namespace
}  // namespace symphony::sandbox
