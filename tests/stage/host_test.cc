// The extension host against real sandboxes and a real extension (the chaos
// test extension, built on the C++ SDK): steps run on pooled instances, and
// every way an instance can misbehave becomes its specific step failure
// while the host carries on.
#include "stage/host.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "sandbox/linux_launcher.h"
#include "tests/support/temp_dir.h"

namespace symphony::stage {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

class HostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for the sandbox";
    auto launcher = sandbox::make_launcher({});
    ASSERT_TRUE(launcher.has_value()) << launcher.error().message();
    launcher_ = std::move(*launcher);
    auto m = load_manifest(fs::path(env("SYMPHONY_CHAOS_EXT_DIR")) / "extension.toml");
    ASSERT_TRUE(m.has_value()) << m.error().message();
    chaos_ = *m;
    ::chmod(workspace_.path().c_str(), 0777);  // instances run as nobody
    as_.workspace = workspace_.path();
  }

  std::unique_ptr<ExtensionHost> host(HostOptions options = {}) {
    options.instance.symphony_version = "0.1.0";
    options.instance.heartbeat = 100ms;
    options.instance.heartbeat_timeout = 1500ms;
    options.instance.handshake_timeout = 10s;
    options.instance.cancel_grace = 500ms;
    options.instance.python_sdk_dir = env("SYMPHONY_PYTHON_SDK");
    auto h = ExtensionHost::create(launcher_.get(), options);
    EXPECT_TRUE(h.has_value()) << h.error().message();
    return h ? std::move(*h) : nullptr;
  }

  StepCall chaos(std::string mode, nlohmann::json extra = nlohmann::json::object()) {
    StepCall c;
    c.step = "test/" + mode + "#1";
    c.capability = "chaos.run";
    c.params = extra;
    c.params["mode"] = mode;
    c.workspace = workspace_.path().string();
    return c;
  }

  StepCall noop() {
    StepCall c;
    c.step = "test/noop#1";
    c.capability = "noop.run";
    c.workspace = workspace_.path().string();
    return c;
  }

  static StepFailure failure(const StepOutcome& o) {
    if (auto* f = std::get_if<StepFailure>(&o)) return *f;
    ADD_FAILURE() << "the step succeeded";
    return {};
  }

  static void expect_ok(const StepOutcome& o) {
    if (auto* f = std::get_if<StepFailure>(&o)) ADD_FAILURE() << to_string(f->kind) << ": " << f->message;
  }

  testing::TempDir workspace_{"symphony-host-test"};
  std::unique_ptr<sandbox::Launcher> launcher_;
  Manifest chaos_;
  RunAs as_;
};

TEST_F(HostTest, StepsRunOnOneWarmInstance) {
  auto h = host();
  ASSERT_NE(h, nullptr);
  for (int i = 0; i < 5; ++i) expect_ok(h->run(chaos_, as_, noop(), {}));
  auto ok = h->run(chaos_, as_, chaos("ok"), {});
  expect_ok(ok);
  EXPECT_EQ(h->stats().started, 1u) << "the instance is reused, not restarted";
  EXPECT_EQ(h->stats().live, 1u);
}

TEST_F(HostTest, ProgressAndLogsReachTheCaller) {
  auto h = host();
  ASSERT_NE(h, nullptr);
  std::vector<double> progress;
  std::vector<std::string> logs;
  StepEvents ev;
  ev.progress = [&](double f, std::string_view) { progress.push_back(f); };
  ev.log = [&](std::string_view level, std::string_view msg) { logs.push_back(std::string(level) + ":" + std::string(msg)); };
  expect_ok(h->run(chaos_, as_, chaos("ok"), ev));
  EXPECT_FALSE(progress.empty());
  EXPECT_FALSE(logs.empty());
}

struct Case {
  const char* mode;
  FailureKind kind;
  const char* says;
};

class HostChaos : public HostTest, public ::testing::WithParamInterface<Case> {};

TEST_P(HostChaos, MisbehaviourIsContainedAndNamed) {
  auto h = host();
  ASSERT_NE(h, nullptr);
  expect_ok(h->run(chaos_, as_, noop(), {}));  // a warm instance first
  const Case& c = GetParam();
  auto f = failure(h->run(chaos_, as_, chaos(c.mode), {}));
  EXPECT_EQ(f.kind, c.kind) << f.message;
  EXPECT_THAT(f.message, HasSubstr(c.says));
  // The host carries on: the next step gets a working instance.
  expect_ok(h->run(chaos_, as_, noop(), {}));
}

INSTANTIATE_TEST_SUITE_P(
    Modes, HostChaos,
    ::testing::Values(Case{"segv", FailureKind::crash, "SIGSEGV"}, Case{"sigkill", FailureKind::crash, "SIGKILL"},
                      Case{"hang", FailureKind::hang, "no message for 1500 ms"},
                      Case{"oom", FailureKind::oom, "out of memory"},
                      Case{"syscall", FailureKind::syscall, "forbidden system call"},
                      Case{"garbage", FailureKind::protocol, "protocol violation"},
                      Case{"fail", FailureKind::failed, "asked to fail"},
                      Case{"fail_permanent", FailureKind::failed, "asked to fail"}),
    [](const auto& info) { return std::string(info.param.mode); });

TEST_F(HostTest, ExtensionErrorsSayWhetherToRetry) {
  auto h = host();
  ASSERT_NE(h, nullptr);
  EXPECT_TRUE(failure(h->run(chaos_, as_, chaos("fail"), {})).retryable);
  EXPECT_FALSE(failure(h->run(chaos_, as_, chaos("fail_permanent"), {})).retryable);
  EXPECT_EQ(h->stats().started, 1u) << "an extension's own error does not cost the instance";
}

TEST_F(HostTest, TheStepTimeoutKillsTheInstance) {
  auto h = host();
  ASSERT_NE(h, nullptr);
  auto call = chaos("sleep", {{"ms", 10'000}});
  call.timeout = 300ms;
  auto f = failure(h->run(chaos_, as_, call, {}));
  EXPECT_EQ(f.kind, FailureKind::timeout) << f.message;
  EXPECT_THAT(f.message, HasSubstr("300 ms"));
}

TEST_F(HostTest, CancellationIsHonouredAndKeepsTheInstance) {
  auto h = host();
  ASSERT_NE(h, nullptr);
  CancelToken token;
  std::thread canceller([&] {
    std::this_thread::sleep_for(200ms);
    token.cancel();
  });
  auto f = failure(h->run(chaos_, as_, chaos("sleep", {{"ms", 10'000}}), {}, &token));
  canceller.join();
  EXPECT_EQ(f.kind, FailureKind::cancelled) << f.message;
  expect_ok(h->run(chaos_, as_, noop(), {}));
  EXPECT_EQ(h->stats().started, 1u) << "a cooperative cancel does not kill the instance";
}

TEST_F(HostTest, AHandshakeMismatchIsRefusedWithTheReason) {
  auto h = host();
  ASSERT_NE(h, nullptr);
  auto m = load_manifest(fs::path(env("SYMPHONY_BAD_HELLO_DIR")) / "extension.toml");
  ASSERT_TRUE(m.has_value()) << m.error().message();
  StepCall c;
  c.step = "test/bad#1";
  c.capability = m->capabilities.front().name;
  auto f = failure(h->run(*m, as_, c, {}));
  EXPECT_EQ(f.kind, FailureKind::start) << f.message;
  EXPECT_THAT(f.message, HasSubstr("capabilities"));
  EXPECT_FALSE(f.retryable);
}

TEST_F(HostTest, IdleInstancesAreShutDown) {
  HostOptions o;
  o.idle_timeout = 1s;
  auto h = host(o);
  ASSERT_NE(h, nullptr);
  expect_ok(h->run(chaos_, as_, noop(), {}));
  EXPECT_EQ(h->stats().live, 1u);
  std::this_thread::sleep_for(1200ms);
  h->maintain();
  EXPECT_EQ(h->stats().live, 0u);
  expect_ok(h->run(chaos_, as_, noop(), {}));  // and a new one starts on demand
  EXPECT_EQ(h->stats().started, 2u);
}

TEST_F(HostTest, RetiredVersionsStopOnceIdle) {
  auto h = host();
  ASSERT_NE(h, nullptr);
  expect_ok(h->run(chaos_, as_, noop(), {}));
  EXPECT_EQ(h->versions_in_use(chaos_.id).size(), 1u);
  auto newer = parse_version("99.0.0");
  ASSERT_TRUE(newer.has_value());
  h->retire_other_versions(chaos_.id, *newer);
  EXPECT_EQ(h->stats().live, 0u);
  EXPECT_TRUE(h->versions_in_use(chaos_.id).empty());
}

TEST_F(HostTest, ConcurrentStepsUseSeveralInstances) {
  HostOptions o;
  o.max_instances = 3;
  auto h = host(o);
  ASSERT_NE(h, nullptr);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      auto r = h->run(chaos_, as_, chaos("sleep", {{"ms", 400}}), {});
      if (std::holds_alternative<StepResult>(r)) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 3);
  EXPECT_EQ(h->stats().started, 3u);
}

TEST(CheckParams, FillsDefaultsAndNamesWhatIsWrong) {
  auto m = parse_manifest(R"(
id = "org.example.p"
version = "1.0.0"
kind = "operator"
symphony = ">=0.1"
[entry]
command = ["./x"]
[[capabilities]]
name = "p.run"
[capabilities.params]
path = {type = "string", required = true}
limit = {type = "integer", default = 20}
)",
                          "p.toml");
  ASSERT_TRUE(m.has_value()) << m.error().message();
  const Capability& cap = m->capabilities.front();
  auto ok = check_params(cap, {{"path", "src"}});
  ASSERT_TRUE(ok.has_value()) << ok.error().message();
  EXPECT_EQ((*ok)["limit"], 20);
  auto missing = check_params(cap, nlohmann::json::object());
  ASSERT_FALSE(missing.has_value());
  EXPECT_THAT(missing.error().message(), HasSubstr("params.path: required"));
  auto wrong = check_params(cap, {{"path", "src"}, {"limit", "ten"}});
  ASSERT_FALSE(wrong.has_value());
  EXPECT_THAT(wrong.error().message(), HasSubstr("params.limit: expected integer, got string"));
  auto unknown = check_params(cap, {{"path", "src"}, {"depth", 2}});
  ASSERT_FALSE(unknown.has_value());
  EXPECT_THAT(unknown.error().message(), HasSubstr("params.depth"));
  EXPECT_THAT(unknown.error().message(), HasSubstr("limit, path"));
}

}  // namespace
}  // namespace symphony::stage
