// What windows_launcher_test runs inside its sandboxes: one program whose
// first argument picks a behaviour (exit with a code, print its argv or
// environment, allocate, spawn, sleep, crash...), each small enough to read
// at a glance, so a failing case points at the launcher and not here.
#include <windows.h>

#include <fcntl.h>
#include <io.h>
#include <shellapi.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

std::string utf8(const wchar_t* text) {
  int n = WideCharToMultiByte(CP_UTF8, 0, text, -1, nullptr, 0, nullptr, nullptr);
  std::string out(n > 0 ? n - 1 : 0, '\0');
  if (n > 1) WideCharToMultiByte(CP_UTF8, 0, text, -1, out.data(), n, nullptr, nullptr);
  return out;
}

std::string own_path() {
  wchar_t path[MAX_PATH];
  GetModuleFileNameW(nullptr, path, MAX_PATH);
  return utf8(path);
}

// Starts this program again in `mode` outside of any handle inheritance;
// returns the process handle or null.
HANDLE start_self(const std::string& mode, DWORD* pid) {
  std::string line = "\"" + own_path() + "\" " + mode;
  STARTUPINFOA startup{};
  startup.cb = sizeof startup;
  PROCESS_INFORMATION info{};
  if (!CreateProcessA(nullptr, line.data(), nullptr, nullptr, FALSE, 0, nullptr, nullptr, &startup,
                      &info)) {
    return nullptr;
  }
  CloseHandle(info.hThread);
  if (pid) *pid = info.dwProcessId;
  return info.hProcess;
}

// Every argument, as UTF-16 from CommandLineToArgvW and then UTF-8 hex, so
// the test compares bytes and nothing is lost to console code pages.
int print_argv() {
  int argc = 0;
  wchar_t** argv = CommandLineToArgvW(GetCommandLineW(), &argc);
  for (int i = 0; i < argc; ++i) {
    std::printf("arg ");
    for (unsigned char c : utf8(argv[i])) std::printf("%02x", c);
    std::printf("\n");
  }
  LocalFree(argv);
  return 0;
}

int print_environment() {
  wchar_t* block = GetEnvironmentStringsW();
  for (const wchar_t* p = block; *p; p += wcslen(p) + 1) std::printf("%s\n", utf8(p).c_str());
  FreeEnvironmentStringsW(block);
  return 0;
}

// Commits and touches `mib` MiB one at a time; 12 (ENOMEM) when refused.
int allocate(long mib) {
  for (long i = 0; i < mib; ++i) {
    void* chunk = VirtualAlloc(nullptr, 1 << 20, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
    if (!chunk) {
      std::printf("refused after %ld MiB (error %lu)\n", i, GetLastError());
      return 12;
    }
    std::memset(chunk, 1, 1 << 20);
  }
  std::printf("allocated %ld MiB\n", mib);
  return 0;
}

// Tries to start `count` sleeping copies; exits with how many started.
int spawn(long count) {
  int started = 0;
  for (long i = 0; i < count; ++i) {
    if (HANDLE h = start_self("sleep 30000", nullptr)) {
      ++started;
      CloseHandle(h);
    } else {
      std::printf("spawn %ld refused (error %lu)\n", i, GetLastError());
    }
  }
  std::printf("started %d\n", started);
  return started;
}

// Starts a sleeping grandchild, prints its pid, then exits or stays.
int grandchild(bool stay) {
  DWORD pid = 0;
  HANDLE h = start_self("sleep 60000", &pid);
  if (!h) return 1;
  std::printf("%lu\n", pid);
  std::fflush(stdout);
  if (stay) Sleep(60000);
  return 0;
}

// Spins for `ms` of wall time, then prints the CPU time it got, in ms.
int spin(long ms) {
  ULONGLONG end = GetTickCount64() + ms;
  volatile unsigned long long n = 0;
  while (GetTickCount64() < end) n = n + 1;
  FILETIME created, exited, kernel, user;
  GetProcessTimes(GetCurrentProcess(), &created, &exited, &kernel, &user);
  auto ticks = [](FILETIME t) { return (ULONGLONG(t.dwHighDateTime) << 32) | t.dwLowDateTime; };
  std::printf("%llu\n", (ticks(kernel) + ticks(user)) / 10000);
  return 0;
}

int print_privileges() {
  HANDLE token;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token)) return 1;
  alignas(TOKEN_PRIVILEGES) unsigned char buffer[8192];
  DWORD size = 0;
  if (!GetTokenInformation(token, TokenPrivileges, buffer, sizeof buffer, &size)) return 1;
  std::printf("%lu\n", reinterpret_cast<TOKEN_PRIVILEGES*>(buffer)->PrivilegeCount);
  return 0;
}

// Writes to a handle value the test did not pass: it must not exist here.
int write_handle(const char* value) {
  auto handle =
      reinterpret_cast<HANDLE>(static_cast<std::uintptr_t>(std::strtoull(value, nullptr, 0)));
  DWORD written = 0;
  BOOL wrote = WriteFile(handle, "LEAK", 4, &written, nullptr);
  std::printf("%s\n", wrote ? "wrote" : "refused");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 100;
  std::string mode = argv[1];
  auto number = [&](long fallback) {
    return argc > 2 ? std::strtol(argv[2], nullptr, 0) : fallback;
  };
  // Exit statuses such as 0xC0000094 overflow a 32-bit long.
  if (mode == "exit") return argc > 2 ? static_cast<int>(std::strtoul(argv[2], nullptr, 0)) : 0;
  if (mode == "argv") return print_argv();
  if (mode == "env") return print_environment();
  if (mode == "alloc") return allocate(number(256));
  if (mode == "spawn") return spawn(number(4));
  if (mode == "sleep") {
    Sleep(static_cast<DWORD>(number(60000)));
    return 0;
  }
  if (mode == "spin") return spin(number(1000));
  if (mode == "grandchild") return grandchild(argc > 2 && std::string(argv[2]) == "stay");
  if (mode == "crash") {
    *static_cast<volatile int*>(nullptr) = 1;
    return 0;
  }
  if (mode == "privileges") return print_privileges();
  if (mode == "writefd" && argc > 3) {
    int fd = std::atoi(argv[2]);
    return _write(fd, argv[3], static_cast<unsigned>(std::strlen(argv[3]))) < 0 ? 9 : 0;
  }
  if (mode == "leak" && argc > 2) return write_handle(argv[2]);
  if (mode == "cwd") {
    wchar_t cwd[MAX_PATH];
    GetCurrentDirectoryW(MAX_PATH, cwd);
    std::printf("%s\n", utf8(cwd).c_str());
    return 0;
  }
  return 100;
}
