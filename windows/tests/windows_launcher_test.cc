// Tests of the Windows launcher backend, run under wine by `meson test` (or
// on Windows). GoogleTest has no mingw build here, so this is one TAP program:
// named cases, "ok N - name", and "# SKIP reason" where wine lacks the
// mechanism a case proves. A skip is decided only under wine, never on Windows.
#include <windows.h>

#include <fcntl.h>
#include <io.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sandbox/windows_launcher.h"

namespace symphony::sandbox {
namespace {

// ---- the harness --------------------------------------------------------

struct Outcome {
  enum Kind { pass, fail, skip } kind = pass;
  std::string detail;
};

Outcome passed() { return {}; }
Outcome failed(std::string why) { return {Outcome::fail, std::move(why)}; }
Outcome skipped(std::string why) { return {Outcome::skip, std::move(why)}; }

// Collects the failed expectations of one case, so a case reports every
// mismatch at once instead of the first.
class Expect {
 public:
  void that(bool condition, const std::string& what) {
    if (!condition) failures_ += (failures_.empty() ? "" : "; ") + what;
  }
  Outcome outcome() const { return failures_.empty() ? passed() : failed(failures_); }

 private:
  std::string failures_;
};

struct Case {
  const char* name;
  std::function<Outcome()> run;
};

// ---- what the cases share -----------------------------------------------

bool under_wine() {
  return GetProcAddress(GetModuleHandleW(L"ntdll.dll"), "wine_get_version") != nullptr;
}

std::string utf8(const std::wstring& text) {
  int n = WideCharToMultiByte(CP_UTF8, 0, text.c_str(), -1, nullptr, 0, nullptr, nullptr);
  std::string out(n > 0 ? n - 1 : 0, '\0');
  if (n > 1) WideCharToMultiByte(CP_UTF8, 0, text.c_str(), -1, out.data(), n, nullptr, nullptr);
  return out;
}

std::wstring own_path() {
  wchar_t path[MAX_PATH];
  DWORD n = GetModuleFileNameW(nullptr, path, MAX_PATH);
  return std::wstring(path, n);
}

std::string own_dir() {
  std::wstring path = own_path();
  return utf8(path.substr(0, path.find_last_of(L'\\')));
}

std::string helper_path() { return own_dir() + "\\sandbox_helper.exe"; }

Launcher& launcher() {
  static std::unique_ptr<Launcher> instance = make_windows_launcher();
  return *instance;
}

Spec helper_spec(std::vector<std::string> args) {
  Spec spec;
  spec.argv.push_back(helper_path());
  for (auto& a : args) spec.argv.push_back(std::move(a));
  return spec;
}

std::string describe(const ExitReport& report) { return report.to_json(); }

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(line);
    start = end + 1;
  }
  return out;
}

// A CRT pipe, not inheritable: the launcher must hand the write end over.
class Pipe {
 public:
  Pipe() {
    int fds[2];
    if (_pipe(fds, 65536, _O_BINARY | _O_NOINHERIT) == 0) {
      read_ = fds[0];
      write_ = fds[1];
    }
  }
  ~Pipe() {
    close_write();
    if (read_ >= 0) _close(read_);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;

  int write_fd() const { return write_; }
  void close_write() {
    if (write_ >= 0) _close(write_);
    write_ = -1;
  }
  std::string read_all() {
    std::string out;
    char buffer[4096];
    int n;
    while ((n = _read(read_, buffer, sizeof buffer)) > 0) out.append(buffer, n);
    return out;
  }
  std::optional<std::string> read_line() {
    std::string out;
    char c;
    while (_read(read_, &c, 1) == 1) {
      if (c == '\n') return out;
      if (c != '\r') out += c;
    }
    return std::nullopt;
  }

 private:
  int read_ = -1;
  int write_ = -1;
};

struct Run {
  ExitReport report;
  std::string out;
};

// Spawns `spec` with stdout to a pipe, waits, and returns the report and
// all it printed. The reader runs beside wait() so a chatty child never
// blocks on a full pipe.
Result<Run> run(Spec spec) {
  Pipe pipe;
  spec.fds.push_back({pipe.write_fd(), 1});
  auto child = launcher().spawn(spec);
  pipe.close_write();
  if (!child) return std::move(child).error();
  Run result;
  std::thread reader([&] { result.out = pipe.read_all(); });
  result.report = (*child)->wait();
  reader.join();
  return result;
}

// A handle to a process by pid, to watch it end; null when it is gone.
HANDLE open_process(unsigned long pid) {
  return OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
}

bool running(HANDLE process) { return WaitForSingleObject(process, 0) == WAIT_TIMEOUT; }
bool ends_within(HANDLE process, DWORD ms) {
  return WaitForSingleObject(process, ms) == WAIT_OBJECT_0;
}

std::string hex(const std::string& bytes) {
  std::string out;
  char digits[3];
  for (unsigned char c : bytes) {
    std::snprintf(digits, sizeof digits, "%02x", c);
    out += digits;
  }
  return out;
}

// ---- the cases ----------------------------------------------------------

Outcome exit_code_is_propagated() {
  auto r = run(helper_spec({"exit", "7"}));
  if (!r) return failed(r.error().message());
  Expect expect;
  expect.that(r->report.reason == ExitReason::exited, "reason: " + describe(r->report));
  expect.that(r->report.exit_code == 7 && r->report.shell_status() == 7,
              "code: " + describe(r->report));
  expect.that(r->report.message == "exited with code 7", "message: " + r->report.message);
  expect.that(r->report.wall.count() > 0, "wall time not measured");
  return expect.outcome();
}

Outcome exit_code_3_stays_an_exit_code() {
  auto r = run(helper_spec({"exit", "3"}));
  if (!r) return failed(r.error().message());
  Expect expect;
  expect.that(r->report.reason == ExitReason::exited && r->report.exit_code == 3,
              describe(r->report));
  return expect.outcome();
}

Outcome argv_round_trips_windows_quoting() {
  const std::vector<std::string> args = {
      "plain",
      "two words",
      "",
      "quote\"inside",
      "trailing\\",
      "trailing space ",
      "back\\\\slash\\\"quote",
      "\\\\server\\share\\",
      "tab\there",
      "a\\\\\"b c",
      "\"",
      "\\",
      "\\\\\"\\\\",
      "-flag=\"x y\"",
      "\xc3\xa9t\xc3\xa9 \xe2\x82\xac",
  };
  std::vector<std::string> spec_args = {"argv"};
  spec_args.insert(spec_args.end(), args.begin(), args.end());
  auto r = run(helper_spec(spec_args));
  if (!r) return failed(r.error().message());
  auto got = lines(r->out);
  Expect expect;
  expect.that(r->report.reason == ExitReason::exited && r->report.exit_code == 0,
              describe(r->report));
  expect.that(got.size() == args.size() + 2, "got " + std::to_string(got.size()) + " arguments");
  if (got.size() == args.size() + 2) {
    expect.that(got[0] == "arg " + hex(helper_path()), "argv[0]: " + got[0]);
    for (std::size_t i = 0; i < args.size(); ++i) {
      expect.that(got[i + 2] == "arg " + hex(args[i]),
                  "argument '" + args[i] + "' came back as " + got[i + 2]);
    }
  }
  return expect.outcome();
}

// Variables wine's loader adds to every process it starts, whatever the
// environment block said; on Windows nothing may be added.
bool added_by_wine(const std::string& name) {
  return name.rfind("WINE", 0) == 0 || name == "SystemDrive" || name == "SystemRoot";
}

Outcome environment_holds_only_the_spec() {
  SetEnvironmentVariableW(L"SYMPHONY_CALLER_ONLY", L"must not leak");
  auto spec = helper_spec({"env"});
  spec.env = {"SYMPHONY_A=1", "spaced=two words", "EMPTY=", "UNICODE=\xc3\xa9t\xc3\xa9",
              "Z_LAST=z=z"};
  auto r = run(spec);
  if (!r) return failed(r.error().message());
  std::set<std::string> want(spec.env.begin(), spec.env.end());
  std::set<std::string> got, ignored;
  for (const auto& line : lines(r->out)) {
    std::string name = line.substr(0, line.find('='));
    if (!want.count(line) && under_wine() && added_by_wine(name)) {
      ignored.insert(name);
      continue;
    }
    got.insert(line);
  }
  Expect expect;
  expect.that(r->report.exit_code == 0, describe(r->report));
  for (const auto& w : want) expect.that(got.count(w) == 1, "missing " + w);
  for (const auto& g : got) expect.that(want.count(g) == 1, "unexpected " + g);
  auto outcome = expect.outcome();
  if (outcome.kind == Outcome::pass && !ignored.empty()) {
    std::string names;
    for (const auto& n : ignored) names += (names.empty() ? "" : " ") + n;
    outcome.detail = "wine's loader added " + names;
  }
  return outcome;
}

Outcome duplicate_environment_names_are_refused() {
  auto spec = helper_spec({"exit", "0"});
  spec.env = {"Path=a", "PATH=b"};
  auto child = launcher().spawn(spec);
  if (child) return failed("spawned with Path and PATH both set");
  Expect expect;
  expect.that(child.error().message().find("given twice") != std::string::npos,
              child.error().message());
  return expect.outcome();
}

Outcome program_is_found_in_the_spec_path() {
  Spec spec;
  spec.argv = {"sandbox_helper", "exit", "5"};
  spec.env = {"PATH=C:\\no-such-dir;" + own_dir()};
  auto r = run(spec);
  if (!r) return failed(r.error().message());
  Expect expect;
  expect.that(r->report.reason == ExitReason::exited && r->report.exit_code == 5,
              describe(r->report));
  return expect.outcome();
}

Outcome missing_program_is_a_setup_error() {
  Spec spec;
  spec.argv = {"symphony-no-such-program"};
  spec.env = {"PATH=" + own_dir()};
  auto child = launcher().spawn(spec);
  if (child) return failed("spawned a program that does not exist");
  ExitReport report = setup_failed_report(child.error());
  Expect expect;
  expect.that(failed_step(child.error()) == "resolve_program", child.error().message());
  expect.that(report.reason == ExitReason::setup_failed && report.error_code == ENOENT,
              describe(report));
  return expect.outcome();
}

Outcome invalid_specs_are_refused_by_field() {
  Expect expect;
  Spec empty;
  auto child = launcher().spawn(empty);
  expect.that(!child && child.error().message().rfind("argv", 0) == 0,
              child ? "empty argv spawned" : child.error().message());
  auto as_user = helper_spec({"exit", "0"});
  as_user.uid = 1000;
  child = launcher().spawn(as_user);
  expect.that(!child && child.error().message().rfind("uid", 0) == 0,
              child ? "uid accepted" : child.error().message());
  auto quoted = helper_spec({"exit", "0"});
  quoted.argv[0] = "C:\\a\"b.exe";
  child = launcher().spawn(quoted);
  expect.that(!child && child.error().message().rfind("argv[0]", 0) == 0,
              child ? "quote in program name accepted" : child.error().message());
  auto bad_utf8 = helper_spec({"exit", "0", "\xff"});
  child = launcher().spawn(bad_utf8);
  expect.that(!child && child.error().message().rfind("argv[3]", 0) == 0,
              child ? "invalid UTF-8 accepted" : child.error().message());
  return expect.outcome();
}

Outcome closed_fd_is_a_setup_error() {
  auto spec = helper_spec({"exit", "0"});
  spec.fds.push_back({4000, 1});
  auto child = launcher().spawn(spec);
  if (child) return failed("spawned with a closed fd");
  Expect expect;
  expect.that(failed_step(child.error()) == "inherit_handles", child.error().message());
  return expect.outcome();
}

Outcome relative_program_is_taken_from_cwd() {
  auto spec = helper_spec({"exit", "4"});
  std::string dir = own_dir();
  // The test's directory as "/"-rooted on its drive, which validate() takes.
  spec.cwd = dir.substr(2);
  for (char& c : spec.cwd) c = c == '\\' ? '/' : c;
  spec.argv[0] = ".\\sandbox_helper.exe";
  auto r = run(spec);
  if (!r) return failed(r.error().message() + " (cwd " + spec.cwd + ")");
  Expect expect;
  expect.that(r->report.reason == ExitReason::exited && r->report.exit_code == 4,
              describe(r->report));
  return expect.outcome();
}

Outcome fd_3_reaches_the_child_runtime() {
  Pipe three;
  auto spec = helper_spec({"writefd", "3", "through fd 3"});
  spec.fds.push_back({three.write_fd(), 3});
  auto child = launcher().spawn(spec);
  three.close_write();
  if (!child) return failed(child.error().message());
  auto report = (*child)->wait();
  Expect expect;
  expect.that(report.reason == ExitReason::exited && report.exit_code == 0, describe(report));
  std::string got = three.read_all();
  expect.that(got == "through fd 3", "read '" + got + "' from fd 3");
  return expect.outcome();
}

Outcome only_listed_handles_are_inherited() {
  SECURITY_ATTRIBUTES inheritable{sizeof inheritable, nullptr, TRUE};
  HANDLE read_end, write_end;
  if (!CreatePipe(&read_end, &write_end, &inheritable, 0)) return failed("CreatePipe");
  char value[32];
  std::snprintf(value, sizeof value, "0x%llx",
                static_cast<unsigned long long>(reinterpret_cast<std::uintptr_t>(write_end)));
  auto r = run(helper_spec({"leak", value}));
  CloseHandle(write_end);
  std::string leaked;
  char buffer[16];
  DWORD n;
  while (ReadFile(read_end, buffer, sizeof buffer, &n, nullptr) && n > 0) leaked.append(buffer, n);
  CloseHandle(read_end);
  if (!r) return failed(r.error().message());
  Expect expect;
  expect.that(r->report.exit_code == 0, describe(r->report));
  expect.that(leaked.empty(), "an inheritable handle not in spec.fds reached the child");
  return expect.outcome();
}

Outcome memory_limit_reports_oom() {
  auto spec = helper_spec({"alloc", "256"});
  spec.limits.memory = Bytes{64u << 20};
  auto r = run(spec);
  if (!r) return failed(r.error().message());
  if (under_wine() && r->report.reason == ExitReason::exited && r->report.exit_code == 0) {
    return skipped("wine does not enforce JOB memory limits");
  }
  Expect expect;
  expect.that(r->report.reason == ExitReason::oom, describe(r->report));
  expect.that(r->report.message.find("memory limit of 64 MiB") != std::string::npos,
              r->report.message);
  return expect.outcome();
}

Outcome process_limit_refuses_extra_processes() {
  auto spec = helper_spec({"spawn", "4"});
  spec.limits.pids = 3;
  auto r = run(spec);
  if (!r) return failed(r.error().message());
  if (under_wine() && r->report.exit_code == 4) {
    return skipped("wine does not enforce JOB active process limits");
  }
  Expect expect;
  // The helper and two children make three, so at most two start (fewer
  // where Windows counts a console host in the job too).
  expect.that(r->report.reason == ExitReason::exited && r->report.exit_code <= 2,
              describe(r->report) + " output: " + r->out);
  expect.that(r->report.message.find("process limit of 3") != std::string::npos,
              "no process-limit notification: " + r->report.message);
  return expect.outcome();
}

Outcome timeout_ends_the_sandbox() {
  auto spec = helper_spec({"sleep", "60000"});
  spec.limits.timeout = std::chrono::milliseconds(300);
  auto child = launcher().spawn(spec);
  if (!child) return failed(child.error().message());
  HANDLE process = open_process((*child)->pid());
  auto report = (*child)->wait();
  Expect expect;
  expect.that(report.reason == ExitReason::timeout && report.signal == 9, describe(report));
  expect.that(
      report.wall >= std::chrono::milliseconds(300) && report.wall < std::chrono::seconds(10),
      "wall " + std::to_string(report.wall.count()) + " us");
  expect.that(process && ends_within(process, 5000), "the process is still running");
  if (process) CloseHandle(process);
  return expect.outcome();
}

Outcome poll_exit_does_not_block() {
  Expect expect;
  auto child = launcher().spawn(helper_spec({"sleep", "300"}));
  if (!child) return failed(child.error().message());
  expect.that((*child)->wait_fd() == -1, "wait_fd is not -1");
  auto before = GetTickCount64();
  expect.that(!(*child)->poll_exit(), "reported an end while it sleeps");
  expect.that(GetTickCount64() - before < 200, "poll_exit blocked");
  std::optional<ExitReport> report;
  for (int i = 0; i < 1000 && !report; ++i, Sleep(10)) report = (*child)->poll_exit();
  expect.that(report && report->reason == ExitReason::exited && report->exit_code == 0,
              report ? describe(*report) : "no report within 10 s");

  // poll_exit also enforces the timeout.
  auto spec = helper_spec({"sleep", "60000"});
  spec.limits.timeout = std::chrono::milliseconds(200);
  auto slow = launcher().spawn(spec);
  if (!slow) return failed(slow.error().message());
  report.reset();
  for (int i = 0; i < 1000 && !report; ++i, Sleep(10)) report = (*slow)->poll_exit();
  expect.that(report && report->reason == ExitReason::timeout,
              report ? describe(*report) : "no timeout within 10 s");
  return expect.outcome();
}

Outcome kill_ends_the_sandbox() {
  auto child = launcher().spawn(helper_spec({"sleep", "60000"}));
  if (!child) return failed(child.error().message());
  HANDLE process = open_process((*child)->pid());
  Expect expect;
  auto killed = (*child)->kill();
  expect.that(killed.has_value(), killed ? "" : killed.error().message());
  auto report = (*child)->wait();
  expect.that(
      report.reason == ExitReason::signaled && report.signal == 9 && report.shell_status() == 137,
      describe(report));
  expect.that((*child)->wait().to_json() == report.to_json(), "wait() is not idempotent");
  expect.that((*child)->kill().has_value(), "kill() after the end failed");
  expect.that(process && ends_within(process, 5000), "the process is still running");
  if (process) CloseHandle(process);
  return expect.outcome();
}

Outcome crash_is_reported_as_a_signal() {
  auto r = run(helper_spec({"crash"}));
  if (!r) return failed(r.error().message());
  Expect expect;
  expect.that(r->report.reason == ExitReason::signaled && r->report.signal == 11,
              describe(r->report));
  expect.that(r->report.message.find("access violation") != std::string::npos, r->report.message);
  return expect.outcome();
}

Outcome exception_statuses_map_to_signals() {
  Expect expect;
  auto fpe = run(helper_spec({"exit", "0xC0000094"}));
  if (!fpe) return failed(fpe.error().message());
  expect.that(fpe->report.reason == ExitReason::signaled && fpe->report.signal == 8,
              describe(fpe->report));
  auto abrt = run(helper_spec({"exit", "0xC0000409"}));
  if (!abrt) return failed(abrt.error().message());
  expect.that(abrt->report.reason == ExitReason::signaled && abrt->report.signal == 6,
              describe(abrt->report));
  auto other = run(helper_spec({"exit", "0xC0000135"}));
  if (!other) return failed(other.error().message());
  expect.that(other->report.reason == ExitReason::exited &&
                  other->report.message.find("0xC0000135") != std::string::npos,
              describe(other->report));
  return expect.outcome();
}

// Spawns the grandchild helper and returns its pid, read from its stdout.
struct Family {
  std::unique_ptr<Child> child;
  HANDLE grandchild = nullptr;
  std::string error;
};

Family spawn_family(bool stay) {
  Family family;
  Pipe pipe;
  auto spec = helper_spec({"grandchild", stay ? "stay" : "exit"});
  spec.fds.push_back({pipe.write_fd(), 1});
  auto child = launcher().spawn(spec);
  pipe.close_write();
  if (!child) {
    family.error = child.error().message();
    return family;
  }
  family.child = std::move(*child);
  auto line = pipe.read_line();
  if (!line) {
    family.error = "the helper printed no pid";
    return family;
  }
  family.grandchild = open_process(std::strtoul(line->c_str(), nullptr, 10));
  if (!family.grandchild) family.error = "cannot open the grandchild " + *line;
  return family;
}

Outcome first_process_exit_ends_the_job() {
  auto family = spawn_family(false);
  if (!family.error.empty()) return failed(family.error);
  Expect expect;
  expect.that(running(family.grandchild), "the grandchild is not running");
  auto report = family.child->wait();
  expect.that(report.reason == ExitReason::exited && report.exit_code == 0, describe(report));
  expect.that(ends_within(family.grandchild, 5000), "the grandchild outlived the sandbox");
  CloseHandle(family.grandchild);
  return expect.outcome();
}

Outcome destroying_the_child_kills_grandchildren() {
  auto family = spawn_family(true);
  if (!family.error.empty()) return failed(family.error);
  Expect expect;
  HANDLE helper = open_process(family.child->pid());
  expect.that(running(family.grandchild), "the grandchild is not running");
  family.child.reset();
  expect.that(ends_within(family.grandchild, 5000), "the grandchild outlived its Child");
  expect.that(helper && ends_within(helper, 5000), "the helper outlived its Child");
  CloseHandle(family.grandchild);
  if (helper) CloseHandle(helper);
  return expect.outcome();
}

// The launcher process dies without running a destructor: only the job's
// kill-on-close can end the sandbox. The test runs itself as that launcher.
int orphan_launcher_main() {
  auto child = launcher().spawn(helper_spec({"sleep", "60000"}));
  if (!child) {
    std::printf("error %s\n", child.error().message().c_str());
    return 1;
  }
  std::printf("%d\n", (*child)->pid());
  std::fflush(stdout);
  char line[16];
  if (!std::fgets(line, sizeof line, stdin)) return 1;
  TerminateProcess(GetCurrentProcess(), 0);
  return 0;
}

Outcome job_dies_with_the_launcher() {
  SECURITY_ATTRIBUTES inheritable{sizeof inheritable, nullptr, TRUE};
  HANDLE in_read, in_write, out_read, out_write;
  if (!CreatePipe(&in_read, &in_write, &inheritable, 0)) return failed("CreatePipe");
  if (!CreatePipe(&out_read, &out_write, &inheritable, 0)) return failed("CreatePipe");
  SetHandleInformation(in_write, HANDLE_FLAG_INHERIT, 0);
  SetHandleInformation(out_read, HANDLE_FLAG_INHERIT, 0);
  STARTUPINFOW startup{};
  startup.cb = sizeof startup;
  startup.dwFlags = STARTF_USESTDHANDLES;
  startup.hStdInput = in_read;
  startup.hStdOutput = out_write;
  startup.hStdError = GetStdHandle(STD_ERROR_HANDLE);
  std::wstring line = L"\"" + own_path() + L"\" --orphan-launcher";
  PROCESS_INFORMATION info{};
  BOOL started = CreateProcessW(own_path().c_str(), line.data(), nullptr, nullptr, TRUE, 0, nullptr,
                                nullptr, &startup, &info);
  CloseHandle(in_read);
  CloseHandle(out_write);
  if (!started) return failed("cannot start the orphan launcher");
  CloseHandle(info.hThread);
  std::string pid;
  char c;
  DWORD n;
  while (ReadFile(out_read, &c, 1, &n, nullptr) && n == 1 && c != '\n') pid += c;
  HANDLE sleeper = open_process(std::strtoul(pid.c_str(), nullptr, 10));
  Expect expect;
  expect.that(sleeper && running(sleeper), "no sandboxed process (launcher said '" + pid + "')");
  WriteFile(in_write, "go\n", 3, &n, nullptr);
  expect.that(ends_within(info.hProcess, 10000), "the launcher did not exit");
  expect.that(sleeper && ends_within(sleeper, 10000), "the sandbox outlived its launcher");
  for (HANDLE h : {in_write, out_read, info.hProcess}) CloseHandle(h);
  if (sleeper) CloseHandle(sleeper);
  return expect.outcome();
}

std::optional<DWORD> own_privilege_count() {
  HANDLE token;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token)) return std::nullopt;
  alignas(TOKEN_PRIVILEGES) unsigned char buffer[8192];
  DWORD size = 0;
  BOOL got = GetTokenInformation(token, TokenPrivileges, buffer, sizeof buffer, &size);
  CloseHandle(token);
  if (!got) return std::nullopt;
  return reinterpret_cast<TOKEN_PRIVILEGES*>(buffer)->PrivilegeCount;
}

Outcome restricted_token_drops_privileges() {
  auto r = run(helper_spec({"privileges"}));
  if (!r) return failed(r.error().message());
  auto got = lines(r->out);
  if (got.empty()) return failed("the helper printed nothing: " + describe(r->report));
  unsigned long child_count = std::strtoul(got[0].c_str(), nullptr, 10);
  auto own = own_privilege_count();
  if (under_wine() && own && child_count == *own && child_count > 1) {
    return skipped("wine accepts the restricted token but starts the process with the caller's");
  }
  Expect expect;
  // DISABLE_MAX_PRIVILEGE keeps only SeChangeNotifyPrivilege.
  expect.that(child_count <= 1, "the sandbox holds " + got[0] + " privileges");
  return expect.outcome();
}

Outcome cpu_limit_caps_usage() {
  auto spec = helper_spec({"spin", "1000"});
  spec.limits.cpu = 0.25;
  auto r = run(spec);
  if (!r && under_wine() && failed_step(r.error()) == "job_cpu_rate") {
    return skipped("wine does not implement JOB CPU rate control (ERROR_INVALID_PARAMETER)");
  }
  if (!r) return failed(r.error().message());
  auto got = lines(r->out);
  unsigned long cpu_ms = got.empty() ? 0 : std::strtoul(got[0].c_str(), nullptr, 10);
  Expect expect;
  expect.that(!got.empty(), "the helper printed nothing: " + describe(r->report));
  // A quarter of a CPU over 1 s of spinning is about 250 ms; leave room.
  expect.that(cpu_ms < 600, "a 0.25 CPU sandbox used " + std::to_string(cpu_ms) + " ms in 1 s");
  return expect.outcome();
}

Outcome cwd_is_applied() {
  auto spec = helper_spec({"cwd"});
  spec.cwd = "/";
  auto r = run(spec);
  if (!r) return failed(r.error().message());
  auto got = lines(r->out);
  Expect expect;
  // "/" is the root of the launcher's current drive.
  expect.that(!got.empty() && got[0].size() == 3 && got[0][1] == ':' && got[0][2] == '\\',
              "cwd: " + (got.empty() ? std::string("nothing") : got[0]));
  return expect.outcome();
}

Outcome describe_names_the_backend() {
  Expect expect;
  expect.that(launcher().describe() == "windows: job objects, restricted token",
              launcher().describe());
  return expect.outcome();
}

int run_all() {
  const std::vector<Case> cases = {
      {"exit code is propagated", exit_code_is_propagated},
      {"exit code 3 stays an exit code", exit_code_3_stays_an_exit_code},
      {"argv round-trips windows quoting", argv_round_trips_windows_quoting},
      {"environment holds only the spec", environment_holds_only_the_spec},
      {"duplicate environment names are refused", duplicate_environment_names_are_refused},
      {"program is found in the spec PATH", program_is_found_in_the_spec_path},
      {"missing program is a setup error", missing_program_is_a_setup_error},
      {"invalid specs are refused by field", invalid_specs_are_refused_by_field},
      {"relative program is taken from cwd", relative_program_is_taken_from_cwd},
      {"closed fd is a setup error", closed_fd_is_a_setup_error},
      {"fd 3 reaches the child runtime", fd_3_reaches_the_child_runtime},
      {"only listed handles are inherited", only_listed_handles_are_inherited},
      {"memory limit reports oom", memory_limit_reports_oom},
      {"process limit refuses extra processes", process_limit_refuses_extra_processes},
      {"timeout ends the sandbox", timeout_ends_the_sandbox},
      {"poll_exit does not block", poll_exit_does_not_block},
      {"kill ends the sandbox", kill_ends_the_sandbox},
      {"crash is reported as a signal", crash_is_reported_as_a_signal},
      {"exception statuses map to signals", exception_statuses_map_to_signals},
      {"first process exit ends the job", first_process_exit_ends_the_job},
      {"destroying the child kills grandchildren", destroying_the_child_kills_grandchildren},
      {"job dies with the launcher (kill on close)", job_dies_with_the_launcher},
      {"restricted token drops privileges", restricted_token_drops_privileges},
      {"cpu limit caps usage", cpu_limit_caps_usage},
      {"cwd is applied", cwd_is_applied},
      {"describe names the backend", describe_names_the_backend},
  };
  std::printf("1..%zu\n", cases.size());
  std::fflush(stdout);
  bool all_passed = true;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    Outcome outcome;
    try {
      outcome = cases[i].run();
    } catch (const std::exception& e) {
      outcome = failed(std::string("threw: ") + e.what());
    }
    auto number = std::to_string(i + 1);
    switch (outcome.kind) {
      case Outcome::pass:
        std::printf("ok %s - %s\n", number.c_str(), cases[i].name);
        if (!outcome.detail.empty()) std::printf("# %s\n", outcome.detail.c_str());
        break;
      case Outcome::skip:
        std::printf("ok %s - %s # SKIP %s\n", number.c_str(), cases[i].name,
                    outcome.detail.c_str());
        break;
      case Outcome::fail:
        all_passed = false;
        std::printf("not ok %s - %s\n# %s\n", number.c_str(), cases[i].name,
                    outcome.detail.c_str());
        break;
    }
    std::fflush(stdout);
  }
  return all_passed ? 0 : 1;
}

}  // namespace
}  // namespace symphony::sandbox

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--orphan-launcher") {
    return symphony::sandbox::orphan_launcher_main();
  }
  return symphony::sandbox::run_all();
}
