// The Windows backend of the sandbox launcher. Each sandbox is a job object
// (limits, kill-on-close) holding one process started suspended, with a
// restricted token, an environment built from the spec alone and only the
// handles the spec names. Windows has no namespaces or seccomp, so this
// backend enforces less than the Linux one; the list below is the contract.
//
// What a Spec means here:
//   argv            command line quoted by the CommandLineToArgvW / MS CRT
//                   rules. argv[0] with no path separator is looked up in
//                   the PATH of spec.env (else the caller's PATH) and nowhere
//                   else: CreateProcess's own search would try the caller's
//                   directory and cwd first, which a sandbox must not.
//   env             the child's whole environment; nothing is inherited.
//                   Names are case-insensitive on Windows, so two entries
//                   differing only in case are an error.
//   cwd             passed as is ('/' becomes '\'); validate() accepts only
//                   "/"-rooted paths, which Windows resolves on the
//                   launcher's current drive.
//   fds             CRT fds of the caller (_get_osfhandle). Targets 0/1/2
//                   become the STARTUPINFO std handles; targets >= 3 reach
//                   the child's C runtime through the lpReserved2 block that
//                   msvcrt and the UCRT read at start-up (the convention
//                   _spawn uses), so the child sees them as fd `target`.
//                   Only these handles are inherited
//                   (PROC_THREAD_ATTRIBUTE_HANDLE_LIST). Unset std targets
//                   get the caller's GetStdHandle() handles.
//   limits.memory   the job's commit limit (JobMemoryLimit, and
//                   ProcessMemoryLimit). Windows refuses the allocation
//                   instead of killing: a program that then fails (nonzero
//                   exit or crash) is reported as oom; one that copes and
//                   exits 0 is reported as exited.
//   limits.address_space  approximated by the per-process commit limit
//                   (reservations are not counted, unlike RLIMIT_AS).
//   limits.swap     nothing extra: the commit limit already counts page-file
//                   backed memory, so memory + swap cannot exceed it.
//   limits.pids     ActiveProcessLimit (processes, not threads): a
//                   CreateProcess beyond it fails inside the sandbox with
//                   ERROR_NOT_ENOUGH_QUOTA.
//   limits.cpu      CPU rate control, hard cap, rate = cpu * 10000 / CPUs.
//                   If Windows refuses it, spawn fails: a limit asked for is
//                   never dropped silently.
//   limits.timeout  wall clock from spawn; wait() and poll_exit() terminate
//                   the job when it passes (reason timeout).
//   UI              the job gets every JOB_OBJECT_UILIMIT_* restriction.
//   breakaway       not allowed: every descendant stays in the job.
//   token           CreateRestrictedToken(DISABLE_MAX_PRIVILEGE | LUA_TOKEN)
//                   of the caller's token, used with CreateProcessAsUserW:
//                   every privilege but SeChangeNotify is gone and the
//                   Administrators group is deny-only. There is no fallback
//                   to a plain CreateProcessW, which would run the sandbox
//                   with the caller's full token.
//   uid, gid        an error: switching to another account needs its
//                   credentials, and ignoring the request would run the
//                   program as the caller.
//   Not enforced (accepted, documented in docs/sandbox.md):
//     permissions.binds and devices: the program sees what the caller's
//       restricted token can open (an AppContainer would be needed);
//     permissions.network = false: no firewall or AppContainer isolation;
//     permissions.gpu / gpu_devices, limits.gpu_memory: GPUs are not
//       restricted;
//     permissions.capabilities: never granted (they are Linux privileges;
//       the restricted token holds none);
//     seccomp: no equivalent; the restricted token stands in;
//     limits.open_files, processes, file_size: no job equivalent;
//     hostname and name: no meaning here (the job is unnamed so that no other
//       process can open it by name).
// Like a pid namespace whose init exits, the sandbox ends when its first
// process ends: what it left running is terminated with the job.
#include "sandbox/windows_launcher.h"

#include <windows.h>

#include <io.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace symphony::sandbox {

namespace {

// Signal numbers as on Linux, not the CRT's (whose SIGABRT is 22), so that a
// report and its shell_status() read the same whichever backend ran.
constexpr int kSigInt = 2;
constexpr int kSigIll = 4;
constexpr int kSigTrap = 5;
constexpr int kSigAbrt = 6;
constexpr int kSigBus = 7;
constexpr int kSigFpe = 8;
constexpr int kSigKill = 9;
constexpr int kSigSegv = 11;

// The exit status TerminateJobObject gives every process of the job when we
// end it (kill, timeout, destruction): 128 + SIGKILL, what a shell shows.
// Reports do not rely on it; the Child remembers why it terminated the job.
constexpr UINT kTerminatedStatus = 128 + kSigKill;

// How long to wait for a terminated job's first process to be gone before
// reporting anyway; termination is asynchronous but takes milliseconds.
constexpr DWORD kTerminateGraceMs = 10'000;

// Owns one kernel handle. Both "no handle" values Win32 uses (null and
// INVALID_HANDLE_VALUE) count as empty.
class UniqueHandle {
 public:
  UniqueHandle() = default;
  explicit UniqueHandle(HANDLE handle) : handle_(handle) {}
  ~UniqueHandle() { reset(); }
  UniqueHandle(UniqueHandle&& other) noexcept : handle_(other.release()) {}
  UniqueHandle& operator=(UniqueHandle&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;

  HANDLE get() const { return handle_; }
  explicit operator bool() const { return handle_ != nullptr && handle_ != INVALID_HANDLE_VALUE; }
  HANDLE release() { return std::exchange(handle_, nullptr); }
  void reset(HANDLE handle = nullptr) {
    if (*this) CloseHandle(handle_);
    handle_ = handle;
  }

 private:
  HANDLE handle_ = nullptr;
};

// The nearest errno for a Win32 error, for Error::code() and the report's
// error_code, which callers compare against errno values on every platform.
int errno_from_win32(DWORD error) {
  switch (error) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_DRIVE:
    case ERROR_MOD_NOT_FOUND:
      return ENOENT;
    case ERROR_DIRECTORY:
      return ENOTDIR;
    case ERROR_ACCESS_DENIED:
      return EACCES;
    case ERROR_PRIVILEGE_NOT_HELD:
      return EPERM;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_COMMITMENT_LIMIT:
      return ENOMEM;
    case ERROR_NOT_ENOUGH_QUOTA:
      return EAGAIN;
    case ERROR_INVALID_PARAMETER:
      return EINVAL;
    case ERROR_BAD_EXE_FORMAT:
    case ERROR_EXE_MACHINE_TYPE_MISMATCH:
      return ENOEXEC;
    case ERROR_INVALID_HANDLE:
      return EBADF;
    case ERROR_CALL_NOT_IMPLEMENTED:
    case ERROR_NOT_SUPPORTED:
      return ENOSYS;
    case ERROR_FILENAME_EXCED_RANGE:
      return ENAMETOOLONG;
    default:
      return EIO;
  }
}

std::string narrow(std::wstring_view wide) {
  if (wide.empty()) return {};
  int n = WideCharToMultiByte(CP_UTF8, 0, wide.data(), static_cast<int>(wide.size()), nullptr, 0,
                              nullptr, nullptr);
  std::string out(n > 0 ? n : 0, '\0');
  if (n > 0) {
    WideCharToMultiByte(CP_UTF8, 0, wide.data(), static_cast<int>(wide.size()), out.data(), n,
                        nullptr, nullptr);
  }
  return out;
}

Result<std::wstring> widen(std::string_view text, std::string_view field) {
  if (text.empty()) return std::wstring();
  if (text.size() > 0x7fffffff) return Error::invalid(std::string(field) + ": too long");
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, text.data(),
                              static_cast<int>(text.size()), nullptr, 0);
  if (n <= 0) return Error::invalid(std::string(field) + ": is not valid UTF-8");
  std::wstring out(n, L'\0');
  MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, text.data(), static_cast<int>(text.size()),
                      out.data(), n);
  return out;
}

// The system's text for a Win32 error or (from ntdll) an NTSTATUS, one line.
std::string system_message(DWORD code, bool ntstatus) {
  wchar_t* buffer = nullptr;
  DWORD flags = FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_IGNORE_INSERTS |
                (ntstatus ? FORMAT_MESSAGE_FROM_HMODULE : FORMAT_MESSAGE_FROM_SYSTEM);
  HMODULE ntdll = ntstatus ? GetModuleHandleW(L"ntdll.dll") : nullptr;
  DWORD n = FormatMessageW(flags, ntdll, code, 0, reinterpret_cast<wchar_t*>(&buffer), 0, nullptr);
  std::string text;
  if (n > 0 && buffer) text = narrow(std::wstring_view(buffer, n));
  LocalFree(buffer);
  while (!text.empty() &&
         (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' || text.back() == '.')) {
    text.pop_back();
  }
  for (char& c : text) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  return text;
}

// A setup-step error for a failed Win32 call: the step, the call, the Win32
// error number and its text, and the nearest errno as the code.
Error win32_step_error(std::string_view step, std::string_view call, DWORD error) {
  std::string detail(call);
  detail += " failed with Win32 error " + std::to_string(error);
  std::string text = system_message(error, false);
  if (!text.empty()) detail += " (" + text + ")";
  return step_error(step, errno_from_win32(error), detail);
}

// Appends one argument so that CommandLineToArgvW and the MS C runtime give
// it back unchanged: quotes only when needed, and backslashes doubled only
// where they precede a quote (the rules are in "Parsing C++ command-line
// arguments" on learn.microsoft.com).
void append_argument(std::wstring& line, std::wstring_view arg) {
  if (!arg.empty() && arg.find_first_of(L" \t\n\v\"") == std::wstring_view::npos) {
    line += arg;
    return;
  }
  line += L'"';
  std::size_t backslashes = 0;
  for (wchar_t c : arg) {
    if (c == L'\\') {
      ++backslashes;
      continue;
    }
    line.append(c == L'"' ? backslashes * 2 + 1 : backslashes, L'\\');
    backslashes = 0;
    line += c;
  }
  line.append(backslashes * 2, L'\\');
  line += L'"';
}

Result<std::wstring> command_line(const std::vector<std::string>& argv) {
  auto program = widen(argv[0], "argv[0]");
  if (!program) return std::move(program).error();
  // The program name is parsed by different rules (no escapes at all: a
  // quote only opens or closes), and no Windows file name holds a quote.
  if (program->find(L'"') != std::wstring::npos) {
    return Error::invalid("argv[0]: a program name cannot contain '\"' on windows");
  }
  std::wstring line = L"\"" + *program + L"\"";
  for (std::size_t i = 1; i < argv.size(); ++i) {
    auto arg = widen(argv[i], "argv[" + std::to_string(i) + "]");
    if (!arg) return std::move(arg).error();
    line += L' ';
    append_argument(line, *arg);
  }
  // CreateProcess's limit, terminator included.
  if (line.size() >= 32767) {
    return Error::invalid("argv: the command line is " + std::to_string(line.size()) +
                          " characters; windows allows 32766");
  }
  return line;
}

std::wstring_view env_name(std::wstring_view entry) { return entry.substr(0, entry.find(L'=')); }

bool name_less(std::wstring_view a, std::wstring_view b) {
  return CompareStringOrdinal(a.data(), static_cast<int>(a.size()), b.data(),
                              static_cast<int>(b.size()), TRUE) == CSTR_LESS_THAN;
}

// The environment block: "K=V\0...\0\0", sorted by name without regard to
// case, as CreateProcess documents it wants.
Result<std::wstring> environment_block(const std::vector<std::string>& env) {
  std::vector<std::wstring> entries;
  entries.reserve(env.size());
  for (std::size_t i = 0; i < env.size(); ++i) {
    auto entry = widen(env[i], "env[" + std::to_string(i) + "]");
    if (!entry) return std::move(entry).error();
    entries.push_back(std::move(*entry));
  }
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return name_less(env_name(a), env_name(b));
  });
  for (std::size_t i = 1; i < entries.size(); ++i) {
    if (!name_less(env_name(entries[i - 1]), env_name(entries[i]))) {
      return Error::invalid("env: '" + narrow(env_name(entries[i])) +
                            "' is given twice (names are case-insensitive on windows)");
    }
  }
  std::wstring block;
  for (const auto& e : entries) {
    block += e;
    block += L'\0';
  }
  block += L'\0';
  if (entries.empty()) block += L'\0';
  return block;
}

// The value of PATH in spec.env, or the caller's when spec.env has none.
std::wstring search_path(const std::vector<std::string>& env) {
  for (const auto& e : env) {
    auto eq = e.find('=');
    if (eq != 4) continue;
    bool is_path = true;
    for (std::size_t i = 0; i < 4; ++i) is_path = is_path && (e[i] & ~0x20) == "PATH"[i];
    if (is_path) return widen(std::string_view(e).substr(5), "env").value_or(std::wstring());
  }
  DWORD n = GetEnvironmentVariableW(L"PATH", nullptr, 0);
  if (n == 0) return {};
  std::wstring path(n, L'\0');
  n = GetEnvironmentVariableW(L"PATH", path.data(), n);
  path.resize(n);
  return path;
}

bool is_separator(wchar_t c) { return c == L'\\' || c == L'/'; }

// The program to start: argv[0] itself when it names a path (a relative one
// taken from spec.cwd, as execve in the sandbox would), otherwise the first
// match in PATH (".exe" appended when the name has no extension).
Result<std::wstring> resolve_program(const Spec& spec, const std::wstring& cwd) {
  auto program = widen(spec.argv[0], "argv[0]");
  if (!program) return std::move(program).error();
  if (program->find_first_of(L"\\/:") != std::wstring::npos) {
    bool absolute =
        is_separator(program->front()) || (program->size() > 1 && (*program)[1] == L':');
    if (absolute) return *program;
    std::wstring joined = cwd;
    while (!joined.empty() && is_separator(joined.back())) joined.pop_back();
    return joined + L"\\" + *program;
  }
  std::wstring path = search_path(spec.env);
  if (!path.empty()) {
    std::wstring found(MAX_PATH, L'\0');
    for (;;) {
      DWORD n = SearchPathW(path.c_str(), program->c_str(), L".exe",
                            static_cast<DWORD>(found.size()), found.data(), nullptr);
      if (n == 0) break;
      if (n < found.size()) {
        found.resize(n);
        return found;
      }
      found.resize(n);
    }
  }
  return step_error("resolve_program", ENOENT,
                    "'" + spec.argv[0] + "' was not found in PATH (" + narrow(path) + ")");
}

// The handles the child inherits: inheritable duplicates of the caller's,
// owned here and closed once CreateProcess has copied them into the child.
// Duplicates rather than SetHandleInformation on the caller's handles, which
// would leave them inheritable for every later CreateProcess of the caller.
// Another thread's CreateProcess with bInheritHandles and no handle list can
// still see the duplicates while they exist; that window is this spawn.
struct InheritedHandles {
  std::vector<UniqueHandle> owned;
  HANDLE std_handles[3] = {nullptr, nullptr, nullptr};
  std::vector<BYTE> crt_block;  // STARTUPINFO lpReserved2, empty when unused

  std::vector<HANDLE> list() const {
    std::vector<HANDLE> out;
    for (const auto& h : owned) out.push_back(h.get());
    return out;
  }
};

Result<HANDLE> duplicate_inheritable(InheritedHandles& handles, HANDLE source,
                                     std::string_view what) {
  HANDLE copy = nullptr;
  if (!DuplicateHandle(GetCurrentProcess(), source, GetCurrentProcess(), &copy, 0, TRUE,
                       DUPLICATE_SAME_ACCESS)) {
    return win32_step_error("inherit_handles", "DuplicateHandle " + std::string(what),
                            GetLastError());
  }
  handles.owned.emplace_back(copy);
  return copy;
}

// The C runtime's flags for an fd in the lpReserved2 block (FOPEN, FPIPE,
// FDEV); no FTEXT, so bytes pass unchanged as they do on POSIX.
BYTE crt_flags(HANDLE handle) {
  constexpr BYTE kOpen = 0x01, kPipe = 0x08, kDevice = 0x40;
  switch (GetFileType(handle)) {
    case FILE_TYPE_PIPE:
      return kOpen | kPipe;
    case FILE_TYPE_CHAR:
      return kOpen | kDevice;
    default:
      return kOpen;
  }
}

Result<InheritedHandles> inherited_handles(const std::vector<PassFd>& fds) {
  InheritedHandles handles;
  std::vector<std::pair<int, HANDLE>> high;  // targets >= 3, child-side handles
  bool given[3] = {false, false, false};
  for (std::size_t i = 0; i < fds.size(); ++i) {
    std::string what = "fds[" + std::to_string(i) + "] (fd " + std::to_string(fds[i].fd) + ")";
    auto source = reinterpret_cast<HANDLE>(_get_osfhandle(fds[i].fd));
    if (source == INVALID_HANDLE_VALUE || source == reinterpret_cast<HANDLE>(-2)) {
      return step_error("inherit_handles", EBADF, what + " is not an open CRT fd");
    }
    auto copy = duplicate_inheritable(handles, source, what);
    if (!copy) return std::move(copy).error();
    if (fds[i].target < 3) {
      handles.std_handles[fds[i].target] = *copy;
      given[fds[i].target] = true;
    } else {
      high.emplace_back(fds[i].target, *copy);
    }
  }
  const DWORD std_ids[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
  for (int target = 0; target < 3; ++target) {
    if (given[target]) continue;
    HANDLE source = GetStdHandle(std_ids[target]);
    // A caller without that std handle (a service) gives the child none.
    if (source == nullptr || source == INVALID_HANDLE_VALUE) continue;
    auto copy = duplicate_inheritable(handles, source, "std handle " + std::to_string(target));
    if (!copy) return std::move(copy).error();
    handles.std_handles[target] = *copy;
  }
  if (!high.empty()) {
    // Layout the CRT reads: a 32-bit count, count flag bytes, then count
    // handle-sized values, unaligned. Entries 0..2 stay closed so the CRT
    // takes the STARTUPINFO std handles for them in its usual text mode.
    int count = 0;
    for (const auto& [target, h] : high) count = std::max(count, target + 1);
    std::size_t size = sizeof(std::uint32_t) + count * (1 + sizeof(HANDLE));
    if (size > 0xffff) {
      return step_error(
          "inherit_handles", EINVAL,
          "fd target " + std::to_string(count - 1) + " is beyond what windows can pass");
    }
    handles.crt_block.assign(size, 0);
    BYTE* flags = handles.crt_block.data() + sizeof(std::uint32_t);
    BYTE* values = flags + count;
    auto count32 = static_cast<std::uint32_t>(count);
    std::memcpy(handles.crt_block.data(), &count32, sizeof count32);
    for (int i = 0; i < count; ++i) {
      HANDLE none = INVALID_HANDLE_VALUE;
      std::memcpy(values + i * sizeof(HANDLE), &none, sizeof none);
    }
    for (const auto& [target, h] : high) {
      flags[target] = crt_flags(h);
      std::memcpy(values + target * sizeof(HANDLE), &h, sizeof h);
    }
  }
  return handles;
}

// A PROC_THREAD_ATTRIBUTE_LIST holding the handle list. Not movable: the
// list keeps a pointer to handles_, and may point into itself.
class HandleListAttribute {
 public:
  HandleListAttribute() = default;
  HandleListAttribute(const HandleListAttribute&) = delete;
  HandleListAttribute& operator=(const HandleListAttribute&) = delete;
  ~HandleListAttribute() {
    if (initialised_) DeleteProcThreadAttributeList(get());
  }

  Result<void> init(std::vector<HANDLE> handles) {
    handles_ = std::move(handles);
    SIZE_T size = 0;
    InitializeProcThreadAttributeList(nullptr, 1, 0, &size);
    storage_.resize(size);
    if (!InitializeProcThreadAttributeList(get(), 1, 0, &size)) {
      return win32_step_error("inherit_handles", "InitializeProcThreadAttributeList",
                              GetLastError());
    }
    initialised_ = true;
    if (!UpdateProcThreadAttribute(get(), 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, handles_.data(),
                                   handles_.size() * sizeof(HANDLE), nullptr, nullptr)) {
      return win32_step_error("inherit_handles", "UpdateProcThreadAttribute(HANDLE_LIST)",
                              GetLastError());
    }
    return ok();
  }
  LPPROC_THREAD_ATTRIBUTE_LIST get() {
    return reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(storage_.data());
  }

 private:
  std::vector<HANDLE> handles_;
  std::vector<BYTE> storage_;
  bool initialised_ = false;
};

// The caller's token minus every privilege (but SeChangeNotify) and with
// Administrators deny-only: what the sandboxed program runs as.
Result<UniqueHandle> restricted_token() {
  HANDLE own = nullptr;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_DUPLICATE | TOKEN_QUERY | TOKEN_ASSIGN_PRIMARY,
                        &own)) {
    return win32_step_error("restricted_token", "OpenProcessToken", GetLastError());
  }
  UniqueHandle own_token(own);
  HANDLE restricted = nullptr;
  if (!CreateRestrictedToken(own_token.get(), DISABLE_MAX_PRIVILEGE | LUA_TOKEN, 0, nullptr, 0,
                             nullptr, 0, nullptr, &restricted)) {
    return win32_step_error("restricted_token", "CreateRestrictedToken", GetLastError());
  }
  return UniqueHandle(restricted);
}

Result<void> set_job_information(HANDLE job, JOBOBJECTINFOCLASS what, void* info, DWORD size,
                                 std::string_view step, std::string_view call) {
  if (!SetInformationJobObject(job, what, info, size)) {
    return win32_step_error(step, call, GetLastError());
  }
  return ok();
}

// A new job with the spec's limits, reporting to `port`. The limits are in
// place before any process joins, so none runs unlimited even briefly.
Result<UniqueHandle> create_job(const Limits& limits, HANDLE port) {
  UniqueHandle job(CreateJobObjectW(nullptr, nullptr));
  if (!job) return win32_step_error("job_create", "CreateJobObjectW", GetLastError());

  JOBOBJECT_EXTENDED_LIMIT_INFORMATION info{};
  auto& basic = info.BasicLimitInformation;
  // Kill-on-close makes the job die with the launcher: if it crashes, the
  // system closes the handle and no sandboxed process is left behind.
  basic.LimitFlags =
      JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION;
  std::optional<std::uint64_t> per_process;
  if (limits.memory) {
    basic.LimitFlags |= JOB_OBJECT_LIMIT_JOB_MEMORY;
    info.JobMemoryLimit = static_cast<SIZE_T>(limits.memory->value);
    per_process = limits.memory->value;
  }
  if (limits.address_space) {
    per_process = std::min(per_process.value_or(UINT64_MAX), limits.address_space->value);
  }
  if (per_process) {
    basic.LimitFlags |= JOB_OBJECT_LIMIT_PROCESS_MEMORY;
    info.ProcessMemoryLimit = static_cast<SIZE_T>(*per_process);
  }
  if (limits.pids) {
    basic.LimitFlags |= JOB_OBJECT_LIMIT_ACTIVE_PROCESS;
    basic.ActiveProcessLimit = static_cast<DWORD>(std::min<std::uint64_t>(*limits.pids, MAXDWORD));
  }
  auto set = set_job_information(job.get(), JobObjectExtendedLimitInformation, &info, sizeof info,
                                 "job_limits", "SetInformationJobObject(ExtendedLimitInformation)");
  if (!set) return std::move(set).error();

  if (limits.cpu) {
    // CpuRate is in 1/10000 of the whole machine, so one CPU of n is 10000/n.
    double rate = *limits.cpu * 10000.0 / GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
    if (rate < 10000.0) {
      JOBOBJECT_CPU_RATE_CONTROL_INFORMATION cpu{};
      cpu.ControlFlags = JOB_OBJECT_CPU_RATE_CONTROL_ENABLE | JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP;
      cpu.CpuRate = std::max<DWORD>(1, static_cast<DWORD>(rate + 0.5));
      set =
          set_job_information(job.get(), JobObjectCpuRateControlInformation, &cpu, sizeof cpu,
                              "job_cpu_rate", "SetInformationJobObject(CpuRateControlInformation)");
      if (!set) return std::move(set).error();
    }
  }

  JOBOBJECT_BASIC_UI_RESTRICTIONS ui{};
  ui.UIRestrictionsClass = JOB_OBJECT_UILIMIT_DESKTOP | JOB_OBJECT_UILIMIT_DISPLAYSETTINGS |
                           JOB_OBJECT_UILIMIT_EXITWINDOWS | JOB_OBJECT_UILIMIT_GLOBALATOMS |
                           JOB_OBJECT_UILIMIT_HANDLES | JOB_OBJECT_UILIMIT_READCLIPBOARD |
                           JOB_OBJECT_UILIMIT_SYSTEMPARAMETERS | JOB_OBJECT_UILIMIT_WRITECLIPBOARD;
  set = set_job_information(job.get(), JobObjectBasicUIRestrictions, &ui, sizeof ui,
                            "job_ui_restrictions", "SetInformationJobObject(BasicUIRestrictions)");
  if (!set) return std::move(set).error();

  JOBOBJECT_ASSOCIATE_COMPLETION_PORT association{};
  association.CompletionKey = job.get();
  association.CompletionPort = port;
  set = set_job_information(job.get(), JobObjectAssociateCompletionPortInformation, &association,
                            sizeof association, "job_completion_port",
                            "SetInformationJobObject(AssociateCompletionPortInformation)");
  if (!set) return std::move(set).error();
  return job;
}

std::chrono::microseconds since(FILETIME start, FILETIME end) {
  auto ticks = [](FILETIME t) {
    return (static_cast<std::uint64_t>(t.dwHighDateTime) << 32) | t.dwLowDateTime;
  };
  std::uint64_t a = ticks(start), b = ticks(end);
  return std::chrono::microseconds(b > a ? (b - a) / 10 : 0);  // FILETIME counts 100 ns
}

std::string hex_status(DWORD status) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08lX", static_cast<unsigned long>(status));
  return text;
}

std::string mebibytes(std::uint64_t bytes) {
  if (bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

// An exception status the process died of, as the POSIX signal that means
// the same: what a Linux report of the same crash would say.
struct ExceptionSignal {
  DWORD status;
  int signal;
  const char* what;
};

constexpr ExceptionSignal kExceptionSignals[] = {
    {0xC0000005, kSigSegv, "access violation"},
    {0xC00000FD, kSigSegv, "stack overflow"},
    {0xC0000006, kSigBus, "in-page error"},
    {0xC000001D, kSigIll, "illegal instruction"},
    {0xC0000096, kSigIll, "privileged instruction"},
    {0xC0000094, kSigFpe, "integer division by zero"},
    {0xC0000095, kSigFpe, "integer overflow"},
    {0xC000008E, kSigFpe, "floating-point division by zero"},
    {0xC000008F, kSigFpe, "floating-point inexact result"},
    {0xC0000090, kSigFpe, "floating-point invalid operation"},
    {0xC0000091, kSigFpe, "floating-point overflow"},
    {0xC0000092, kSigFpe, "floating-point stack check"},
    {0xC0000093, kSigFpe, "floating-point underflow"},
    {0xC00002B4, kSigFpe, "multiple floating-point faults"},
    {0xC00002B5, kSigFpe, "multiple floating-point traps"},
    // The UCRT's abort() and /GS failures end the process by __fastfail.
    {0xC0000409, kSigAbrt, "fail-fast (abort or stack buffer overrun)"},
    {0xC0000602, kSigAbrt, "fail-fast exception"},
    {0xC0000374, kSigAbrt, "heap corruption"},
    {0x80000003, kSigTrap, "breakpoint"},
    {0xC000013A, kSigInt, "Ctrl+C"},
};

// The report for a process that ended on its own with `status`. msvcrt's
// abort() exits with code 3, but so may any program on purpose: 3 stays an
// exit code.
ExitReport report_for_status(DWORD status) {
  ExitReport report;
  for (const auto& e : kExceptionSignals) {
    if (e.status != status) continue;
    report.reason = ExitReason::signaled;
    report.signal = e.signal;
    report.message = "killed by signal " + std::to_string(e.signal) + " (" + e.what +
                     ", exception " + hex_status(status) + ")";
    return report;
  }
  report.reason = ExitReason::exited;
  report.exit_code = static_cast<int>(status);
  if ((status & 0xC0000000) == 0xC0000000) {
    // Another error NTSTATUS, such as a missing DLL at load time.
    std::string text = system_message(status, true);
    report.message =
        "exited with status " + hex_status(status) + (text.empty() ? "" : " (" + text + ")");
  } else {
    report.message = "exited with code " + std::to_string(status);
  }
  return report;
}

class WindowsChild final : public Child {
 public:
  WindowsChild(UniqueHandle job, UniqueHandle port, UniqueHandle process, DWORD pid, Limits limits,
               FILETIME started, std::chrono::steady_clock::time_point started_steady)
      : job_(std::move(job)),
        port_(std::move(port)),
        process_(std::move(process)),
        pid_(pid),
        limits_(std::move(limits)),
        started_(started),
        started_steady_(started_steady) {}

  ~WindowsChild() override {
    // Kill-on-close would do it when job_ closes, but only if no other
    // handle to the job exists; terminating first does not depend on that.
    if (!report_) TerminateJobObject(job_.get(), kTerminatedStatus);
  }

  int pid() const override { return static_cast<int>(pid_); }
  int wait_fd() const override { return -1; }

  std::optional<ExitReport> poll_exit() override {
    if (report_) return report_;
    drain_port();
    if (WaitForSingleObject(process_.get(), 0) == WAIT_OBJECT_0) return finish();
    if (deadline_passed()) return time_out();
    return std::nullopt;
  }

  ExitReport wait() override {
    if (report_) return *report_;
    for (;;) {
      DWORD wait_ms = INFINITE;
      if (limits_.timeout) {
        // Rounded up, so the wait never ends just short of the deadline.
        auto left = std::chrono::ceil<std::chrono::milliseconds>(
            started_steady_ + *limits_.timeout - std::chrono::steady_clock::now());
        wait_ms = static_cast<DWORD>(std::clamp<long long>(left.count(), 0, INFINITE - 1));
      }
      DWORD waited = WaitForSingleObject(process_.get(), wait_ms);
      if (waited == WAIT_OBJECT_0) return finish();
      if (waited == WAIT_TIMEOUT && deadline_passed()) return time_out();
      if (waited == WAIT_FAILED) {
        // Cannot happen with a handle we own; end the sandbox rather than spin.
        kill_job();
        return finish();
      }
    }
  }

  Result<void> kill() override {
    if (report_ || WaitForSingleObject(process_.get(), 0) == WAIT_OBJECT_0) return ok();
    if (!TerminateJobObject(job_.get(), kTerminatedStatus)) {
      DWORD error = GetLastError();
      return Error(errno_from_win32(error), "TerminateJobObject: Win32 error " +
                                                std::to_string(error) + " (" +
                                                system_message(error, false) + ")");
    }
    killed_ = true;
    return ok();
  }

 private:
  bool deadline_passed() const {
    return limits_.timeout &&
           std::chrono::steady_clock::now() >= started_steady_ + *limits_.timeout;
  }

  void kill_job() {
    TerminateJobObject(job_.get(), kTerminatedStatus);
    WaitForSingleObject(process_.get(), kTerminateGraceMs);
  }

  ExitReport time_out() {
    timed_out_ = true;
    kill_job();
    return finish();
  }

  // Reads the job's notifications; only the limit ones matter to a report.
  void drain_port() {
    DWORD message = 0;
    ULONG_PTR key = 0;
    OVERLAPPED* detail = nullptr;
    while (GetQueuedCompletionStatus(port_.get(), &message, &key, &detail, 0)) {
      switch (message) {
        case JOB_OBJECT_MSG_JOB_MEMORY_LIMIT:
        case JOB_OBJECT_MSG_PROCESS_MEMORY_LIMIT:
          memory_limit_hit_ = true;
          break;
        case JOB_OBJECT_MSG_ACTIVE_PROCESS_LIMIT:
          process_limit_hit_ = true;
          break;
        default:
          break;
      }
    }
  }

  // The first process has ended: end the rest of the job (as a pid
  // namespace ends with its init), then say why it ended.
  ExitReport finish() {
    TerminateJobObject(job_.get(), kTerminatedStatus);
    // The job posts its limit messages before the process is signalled.
    drain_port();
    DWORD status = 0;
    GetExitCodeProcess(process_.get(), &status);

    ExitReport report;
    if (timed_out_) {
      report.reason = ExitReason::timeout;
      report.signal = kSigKill;
      report.message = "timed out after " + std::to_string(limits_.timeout->count()) +
                       " ms; the job was terminated";
    } else if (killed_) {
      report.reason = ExitReason::signaled;
      report.signal = kSigKill;
      report.message = "killed by signal 9 (kill() terminated the job)";
    } else {
      report = report_for_status(status);
      if (memory_limit_hit_ && status != 0) {
        std::string how = report.message;
        report = ExitReport{};
        report.reason = ExitReason::oom;
        report.exit_code = static_cast<int>(status);
        std::uint64_t limit =
            limits_.memory ? limits_.memory->value : limits_.address_space.value_or(Bytes{}).value;
        report.message = "memory limit of " + mebibytes(limit) +
                         " reached (an allocation was refused), then " + how;
      } else if (memory_limit_hit_) {
        report.message += " (the memory limit was reached; allocations beyond it were refused)";
      }
    }
    if (process_limit_hit_) {
      report.message += " (the process limit of " + std::to_string(limits_.pids.value_or(0)) +
                        " refused a CreateProcess)";
    }

    FILETIME created, exited, kernel, user;
    if (GetProcessTimes(process_.get(), &created, &exited, &kernel, &user) &&
        (exited.dwLowDateTime || exited.dwHighDateTime)) {
      report.wall = since(started_, exited);
    } else {
      report.wall = std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::steady_clock::now() - started_steady_);
    }
    report_ = report;
    return report;
  }

  UniqueHandle job_;
  UniqueHandle port_;
  UniqueHandle process_;
  DWORD pid_;
  Limits limits_;
  FILETIME started_;
  std::chrono::steady_clock::time_point started_steady_;
  bool killed_ = false;
  bool timed_out_ = false;
  bool memory_limit_hit_ = false;
  bool process_limit_hit_ = false;
  std::optional<ExitReport> report_;
};

// Refuses what this backend cannot honour without weakening the sandbox
// silently (see the top of the file for what is accepted unenforced).
Result<void> check_supported(const Spec& spec) {
  if (spec.uid || spec.gid) {
    return Error::invalid(std::string(spec.uid ? "uid" : "gid") +
                          ": cannot be honoured on windows (running as another account needs "
                          "its credentials)");
  }
  return ok();
}

class WindowsLauncher final : public Launcher {
 public:
  Result<std::unique_ptr<Child>> spawn(const Spec& spec) override {
    FILETIME started;
    GetSystemTimePreciseAsFileTime(&started);
    auto started_steady = std::chrono::steady_clock::now();

    if (auto valid = validate(spec); !valid) return std::move(valid).error();
    if (auto supported = check_supported(spec); !supported) return std::move(supported).error();

    auto line = command_line(spec.argv);
    if (!line) return std::move(line).error();
    auto environment = environment_block(spec.env);
    if (!environment) return std::move(environment).error();
    auto cwd = widen(spec.cwd, "cwd");
    if (!cwd) return std::move(cwd).error();
    std::replace(cwd->begin(), cwd->end(), L'/', L'\\');
    auto program = resolve_program(spec, *cwd);
    if (!program) return std::move(program).error();

    auto handles = inherited_handles(spec.fds);
    if (!handles) return std::move(handles).error();
    HandleListAttribute attributes;
    std::vector<HANDLE> list = handles->list();
    if (!list.empty()) {
      if (auto set = attributes.init(list); !set) return std::move(set).error();
    }

    auto token = restricted_token();
    if (!token) return std::move(token).error();

    // One port per job: its queue holds only this sandbox's messages.
    UniqueHandle port(CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1));
    if (!port)
      return win32_step_error("job_completion_port", "CreateIoCompletionPort", GetLastError());
    auto job = create_job(spec.limits, port.get());
    if (!job) return std::move(job).error();

    STARTUPINFOEXW startup{};
    startup.StartupInfo.cb = sizeof startup;
    startup.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    startup.StartupInfo.hStdInput = handles->std_handles[0];
    startup.StartupInfo.hStdOutput = handles->std_handles[1];
    startup.StartupInfo.hStdError = handles->std_handles[2];
    if (!handles->crt_block.empty()) {
      startup.StartupInfo.cbReserved2 = static_cast<WORD>(handles->crt_block.size());
      startup.StartupInfo.lpReserved2 = handles->crt_block.data();
    }
    // Suspended until it is in the job, so it never runs unconfined. A new
    // process group keeps the caller's Ctrl+C from reaching it.
    DWORD flags = CREATE_SUSPENDED | CREATE_UNICODE_ENVIRONMENT | CREATE_NEW_PROCESS_GROUP;
    if (!list.empty()) {
      flags |= EXTENDED_STARTUPINFO_PRESENT;
      startup.lpAttributeList = attributes.get();
    }
    PROCESS_INFORMATION info{};
    if (!CreateProcessAsUserW(token->get(), program->c_str(), line->data(), nullptr, nullptr,
                              !list.empty(), flags, environment->data(), cwd->c_str(),
                              &startup.StartupInfo, &info)) {
      DWORD error = GetLastError();
      return win32_step_error("create_process", "CreateProcessAsUserW " + narrow(*program), error);
    }
    UniqueHandle process(info.hProcess);
    UniqueHandle thread(info.hThread);
    handles->owned.clear();  // the child has its copies

    if (!AssignProcessToJobObject(job->get(), process.get())) {
      DWORD error = GetLastError();
      TerminateProcess(process.get(), kTerminatedStatus);
      return win32_step_error("job_assign", "AssignProcessToJobObject", error);
    }
    if (ResumeThread(thread.get()) == static_cast<DWORD>(-1)) {
      // In the job now: closing it on return kills the process.
      return win32_step_error("resume", "ResumeThread", GetLastError());
    }
    return std::unique_ptr<Child>(
        std::make_unique<WindowsChild>(std::move(*job), std::move(port), std::move(process),
                                       info.dwProcessId, spec.limits, started, started_steady));
  }

  std::string describe() const override { return "windows: job objects, restricted token"; }
};

}  // namespace

std::unique_ptr<Launcher> make_windows_launcher() { return std::make_unique<WindowsLauncher>(); }

}  // namespace symphony::sandbox
