// Tests of the plain-data half of the sandbox interface: validate() rejects
// each kind of bad Spec with an error naming the field, capabilities parse
// only from the grantable few, and exit reports keep their JSON keys and the
// shell's exit-status conventions.
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sandbox/exit_report.h"
#include "sandbox/spec.h"

namespace symphony::sandbox {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr std::uint64_t kMiB = 1024 * 1024;

// A spec that passes validation, with something in every field.
Spec good_spec() {
  Spec spec;
  spec.argv = {"python3", "-m", "tool"};
  spec.env = {"PATH=/usr/bin:/bin", "EMPTY=", "A=b=c"};
  spec.cwd = "/srv/work";
  spec.hostname = "ext-1";
  spec.name = "ext_tool-1.2";
  spec.permissions.binds = {{"/srv/work", Access::read_write}, {"/srv/data", Access::read_only}};
  spec.permissions.devices = {"/dev/kvm"};
  spec.permissions.capabilities = {Capability::net_bind_service};
  spec.limits.cpu = 0.5;
  spec.limits.memory = Bytes{512 * kMiB};
  spec.limits.swap = Bytes{0};
  spec.limits.pids = 64;
  spec.limits.open_files = 1024;
  spec.limits.timeout = std::chrono::seconds(30);
  spec.fds = {{5, 3}, {6, 0}};
  return spec;
}

TEST(Validate, AcceptsARealisticSpec) {
  auto r = validate(good_spec());
  EXPECT_TRUE(r) << r.error().message();
}

TEST(Validate, AcceptsTheBoundaries) {
  Spec spec = good_spec();
  spec.limits.cpu = 0.01;
  spec.limits.memory = Bytes{kMiB};
  spec.limits.pids = 1;
  spec.limits.open_files = 4;
  spec.hostname = std::string(64, 'h');
  spec.cwd = "/";
  spec.name = "";
  spec.fds = {{0, 0}, {0, 1023}};  // one fd may be passed as two numbers
  auto r = validate(spec);
  EXPECT_TRUE(r) << r.error().message();
}

struct Rejection {
  const char* what;
  std::function<void(Spec&)> change;
  const char* field;  // the message starts with "<field>: "
  const char* says;   // and goes on to say this
};

class ValidateRejects : public ::testing::TestWithParam<Rejection> {};

TEST_P(ValidateRejects, NamingTheField) {
  Spec spec = good_spec();
  GetParam().change(spec);
  auto r = validate(spec);
  ASSERT_FALSE(r) << GetParam().what;
  EXPECT_EQ(r.error().code(), EINVAL);
  // Validation messages say everything: no strerror appended.
  EXPECT_EQ(r.error().message(), r.error().context());
  EXPECT_THAT(r.error().message(), StartsWith(std::string(GetParam().field) + ": "));
  EXPECT_THAT(r.error().message(), HasSubstr(GetParam().says));
}

const Rejection kRejections[] = {
    {"empty_argv", [](Spec& s) { s.argv.clear(); }, "argv", "needs a program"},
    {"empty_program", [](Spec& s) { s.argv = {""}; }, "argv", "needs a program"},
    {"nul_in_argument", [](Spec& s) { s.argv[2] = std::string("to\0ol", 5); }, "argv[2]", "NUL"},
    {"env_without_equals", [](Spec& s) { s.env.push_back("NOVALUE"); }, "env[3]", "'NOVALUE' is not KEY=value"},
    {"env_without_key", [](Spec& s) { s.env = {"=value"}; }, "env[0]", "not KEY=value"},
    {"relative_cwd", [](Spec& s) { s.cwd = "srv/work"; }, "cwd", "'srv/work' must be an absolute normalised path"},
    {"empty_cwd", [](Spec& s) { s.cwd = ""; }, "cwd", "absolute normalised"},
    {"cwd_with_dotdot", [](Spec& s) { s.cwd = "/srv/../etc"; }, "cwd", "absolute normalised"},
    {"empty_hostname", [](Spec& s) { s.hostname = ""; }, "hostname", "1 to 64"},
    {"long_hostname", [](Spec& s) { s.hostname = std::string(65, 'h'); }, "hostname", "1 to 64"},
    {"name_with_space", [](Spec& s) { s.name = "my tool"; }, "name", "'my tool' may only hold [A-Za-z0-9_.-]"},
    {"name_with_slash", [](Spec& s) { s.name = "../escape"; }, "name", "may only hold"},
    {"bind_with_dotdot", [](Spec& s) { s.permissions.binds.push_back({"/a/../b"}); }, "permissions.binds[2]",
     "'/a/../b' must be an absolute normalised path other than /"},
    {"bind_with_dot", [](Spec& s) { s.permissions.binds[0].path = "/srv/./work"; }, "permissions.binds[0]",
     "absolute normalised"},
    {"bind_with_trailing_slash", [](Spec& s) { s.permissions.binds[1].path = "/srv/data/"; },
     "permissions.binds[1]", "'/srv/data/'"},
    {"bind_with_double_slash", [](Spec& s) { s.permissions.binds[1].path = "/srv//data"; },
     "permissions.binds[1]", "absolute normalised"},
    {"relative_bind", [](Spec& s) { s.permissions.binds[0].path = "srv"; }, "permissions.binds[0]",
     "absolute normalised"},
    {"bind_of_root", [](Spec& s) { s.permissions.binds[0].path = "/"; }, "permissions.binds[0]", "other than /"},
    {"duplicate_grant", [](Spec& s) { s.permissions.binds.push_back({"/srv/work", Access::read_only}); },
     "permissions.binds[2]", "'/srv/work' is granted twice"},
    {"device_outside_dev", [](Spec& s) { s.permissions.devices = {"/tmp/kvm"}; }, "permissions.devices[0]",
     "under /dev"},
    {"device_escaping_dev", [](Spec& s) { s.permissions.devices = {"/dev/../etc/shadow"}; },
     "permissions.devices[0]", "under /dev"},
    {"cpu_zero", [](Spec& s) { s.limits.cpu = 0.0; }, "limits.cpu", "between 0.01 and 4096"},
    {"cpu_negative", [](Spec& s) { s.limits.cpu = -1.0; }, "limits.cpu", "got -1"},
    {"cpu_too_many", [](Spec& s) { s.limits.cpu = 5000.0; }, "limits.cpu", "between 0.01 and 4096"},
    {"cpu_nan", [](Spec& s) { s.limits.cpu = std::nan(""); }, "limits.cpu", "between 0.01 and 4096"},
    {"memory_under_1mib", [](Spec& s) { s.limits.memory = Bytes{kMiB - 1}; }, "limits.memory",
     "at least 1 MiB, got 1048575"},
    {"swap_without_memory",
     [](Spec& s) {
       s.limits.memory.reset();
       s.limits.swap = Bytes{kMiB};
     },
     "limits.swap", "needs limits.memory"},
    {"pids_zero", [](Spec& s) { s.limits.pids = 0; }, "limits.pids", "at least 1"},
    {"open_files_too_few", [](Spec& s) { s.limits.open_files = 3; }, "limits.open_files", "at least 4"},
    {"timeout_zero", [](Spec& s) { s.limits.timeout = std::chrono::milliseconds(0); }, "limits.timeout", "positive"},
    {"timeout_negative", [](Spec& s) { s.limits.timeout = std::chrono::milliseconds(-5); }, "limits.timeout",
     "positive"},
    {"negative_fd", [](Spec& s) { s.fds[0].fd = -1; }, "fds[0]", "fd must be >= 0"},
    {"negative_target", [](Spec& s) { s.fds[1].target = -1; }, "fds[1]", "target must be 0..1023"},
    {"target_too_high", [](Spec& s) { s.fds[1].target = 1024; }, "fds[1]", "target must be 0..1023"},
    {"duplicate_fd_target", [](Spec& s) { s.fds.push_back({7, 3}); }, "fds[2]", "target 3 is given twice"},
};

INSTANTIATE_TEST_SUITE_P(Fields, ValidateRejects, ::testing::ValuesIn(kRejections),
                         [](const auto& info) { return std::string(info.param.what); });

// ---------------------------------------------------------------------------
// Capabilities

TEST(ParseCapability, AcceptsKernelAndShortNamesInAnyCase) {
  auto a = parse_capability("CAP_NET_BIND_SERVICE");
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(*a, Capability::net_bind_service);
  auto b = parse_capability("cap_Net_Bind_Service");
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(*b, Capability::net_bind_service);
}

TEST(ParseCapability, RoundTripsEveryGrantableCapability) {
  for (auto cap : {Capability::net_bind_service}) {
    auto parsed = parse_capability(to_string(cap));
    ASSERT_TRUE(parsed) << to_string(cap);
    EXPECT_EQ(*parsed, cap);
  }
}

TEST(ParseCapability, RejectsOthersListingTheGrantableOnes) {
  // ipc_lock and sys_nice would do nothing in a user namespace: refused.
  for (const char* name : {"sys_admin", "CAP_SYS_ADMIN", "", "cap_", "net_bind_service2",
                           "CAP_CAP_IPC_LOCK", "ipc_lock", "sys_nice"}) {
    auto r = parse_capability(name);
    ASSERT_FALSE(r) << name;
    EXPECT_EQ(r.error().code(), EINVAL);
    EXPECT_THAT(r.error().message(), HasSubstr(std::string("capability '") + name + "' cannot be granted"));
    EXPECT_THAT(r.error().message(), HasSubstr("grantable: net_bind_service"));
  }
}

// ---------------------------------------------------------------------------
// Exit reports

std::vector<std::string> json_keys(const ExitReport& report) {
  auto j = nlohmann::ordered_json::parse(report.to_json());
  std::vector<std::string> keys;
  for (const auto& item : j.items()) keys.push_back(item.key());
  return keys;
}

TEST(ExitReport, ReasonNames) {
  EXPECT_EQ(to_string(ExitReason::exited), "exited");
  EXPECT_EQ(to_string(ExitReason::signaled), "signaled");
  EXPECT_EQ(to_string(ExitReason::seccomp), "seccomp");
  EXPECT_EQ(to_string(ExitReason::oom), "oom");
  EXPECT_EQ(to_string(ExitReason::timeout), "timeout");
  EXPECT_EQ(to_string(ExitReason::setup_failed), "setup_failed");
}

TEST(ExitReport, ExitedJsonAndStatus) {
  ExitReport r;
  r.reason = ExitReason::exited;
  r.exit_code = 7;
  r.message = "exited with code 7";
  r.wall = std::chrono::microseconds(1500);
  EXPECT_THAT(json_keys(r), ElementsAre("reason", "exit_code", "message", "wall_us"));
  auto j = nlohmann::json::parse(r.to_json());
  EXPECT_EQ(j["reason"], "exited");
  EXPECT_EQ(j["exit_code"], 7);
  EXPECT_EQ(j["message"], "exited with code 7");
  EXPECT_EQ(j["wall_us"], 1500);
  EXPECT_EQ(r.shell_status(), 7);
}

TEST(ExitReport, SignaledJsonAndStatus) {
  ExitReport r;
  r.reason = ExitReason::signaled;
  r.signal = SIGSEGV;
  r.message = "killed by SIGSEGV";
  EXPECT_THAT(json_keys(r), ElementsAre("reason", "signal", "message", "wall_us"));
  EXPECT_EQ(nlohmann::json::parse(r.to_json())["signal"], SIGSEGV);
  EXPECT_EQ(r.shell_status(), 139);
}

TEST(ExitReport, SeccompJsonAndStatus) {
  ExitReport r;
  r.reason = ExitReason::seccomp;
  r.signal = SIGSYS;
  r.syscall = "ptrace";
  r.message = "killed by the seccomp filter: ptrace";
  EXPECT_THAT(json_keys(r), ElementsAre("reason", "syscall", "signal", "message", "wall_us"));
  auto j = nlohmann::json::parse(r.to_json());
  EXPECT_EQ(j["syscall"], "ptrace");
  EXPECT_EQ(j["signal"], SIGSYS);
  EXPECT_EQ(r.shell_status(), 159);
}

TEST(ExitReport, OomAndTimeoutJsonAndStatus) {
  for (auto reason : {ExitReason::oom, ExitReason::timeout}) {
    ExitReport r;
    r.reason = reason;
    r.signal = SIGKILL;
    r.message = "ended";
    EXPECT_THAT(json_keys(r), ElementsAre("reason", "signal", "message", "wall_us"));
    EXPECT_EQ(nlohmann::json::parse(r.to_json())["reason"], to_string(reason));
    EXPECT_EQ(r.shell_status(), 137);
    r.signal = 0;  // no signal known: reported as killed
    EXPECT_EQ(r.shell_status(), 137);
  }
}

TEST(ExitReport, SetupFailedJsonAndStatus) {
  ExitReport r;
  r.reason = ExitReason::setup_failed;
  r.step = "pivot_root";
  r.error_code = EBUSY;
  r.message = "setup step 'pivot_root': Device or resource busy";
  EXPECT_THAT(json_keys(r), ElementsAre("reason", "step", "errno", "message", "wall_us"));
  auto j = nlohmann::json::parse(r.to_json());
  EXPECT_EQ(j["reason"], "setup_failed");
  EXPECT_EQ(j["step"], "pivot_root");
  EXPECT_EQ(j["errno"], EBUSY);
  EXPECT_EQ(r.shell_status(), 125);  // the launcher failed, not the program
}

TEST(ExitReport, SetupFailedExecStatusIsTheShells) {
  ExitReport r;
  r.reason = ExitReason::setup_failed;
  r.step = "exec";
  r.error_code = ENOENT;
  EXPECT_EQ(r.shell_status(), 127);
  r.error_code = ENOTDIR;
  EXPECT_EQ(r.shell_status(), 127);
  r.error_code = EACCES;
  EXPECT_EQ(r.shell_status(), 126);
  r.error_code = ENOEXEC;
  EXPECT_EQ(r.shell_status(), 126);
  r.step = "seccomp";
  r.error_code = ENOENT;  // not found, but not by exec
  EXPECT_EQ(r.shell_status(), 125);
}

TEST(ExitReport, SeccompLogOnlyWhenNotEmpty) {
  ExitReport r;
  r.message = "exited with code 0";
  EXPECT_FALSE(nlohmann::json::parse(r.to_json()).contains("seccomp_log"));
  r.seccomp_log = {"ptrace", "mount"};
  EXPECT_THAT(json_keys(r), ElementsAre("reason", "exit_code", "message", "seccomp_log", "wall_us"));
  EXPECT_EQ(nlohmann::json::parse(r.to_json())["seccomp_log"], nlohmann::json({"ptrace", "mount"}));
}

TEST(ExitReport, MessageIsEscapedJson) {
  ExitReport r;
  r.message = "quote \" backslash \\ newline \n";
  EXPECT_EQ(nlohmann::json::parse(r.to_json())["message"], r.message);
}

}  // namespace
}  // namespace symphony::sandbox
