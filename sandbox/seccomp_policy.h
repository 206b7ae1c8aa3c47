// The seccomp policy: a default-deny allow-list of what ordinary programs
// call, widened per granted permission, compiled once with libseccomp into a
// BPF program and cached (compiling costs far more than a spawn should).
// Calls outside the list go to the supervisor (SECCOMP_RET_USER_NOTIF), which
// names them: in enforce mode it kills the sandbox and reports the call, in
// log mode it lets the call proceed and logs it.
#pragma once

#include <linux/filter.h>

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace symphony::sandbox {

struct SeccompOptions {
  bool network = false;   // host network granted: netlink sockets for routing queries
  friend bool operator==(const SeccompOptions&, const SeccompOptions&) = default;
};

struct SeccompProgram {
  std::vector<sock_filter> filter;
  sock_fprog program() const {
    return sock_fprog{static_cast<unsigned short>(filter.size()),
                      const_cast<sock_filter*>(filter.data())};
  }
};

// The compiled program for `options`, built on first use and cached for the
// life of the process (thread-safe). The pointer stays valid forever.
Result<const SeccompProgram*> seccomp_program(const SeccompOptions& options);

// Builds without the cache (for tests and the benchmark's breakdown).
Result<SeccompProgram> compile_seccomp_program(const SeccompOptions& options);

// The name of system call `nr` on the native architecture ("ptrace"), or
// "syscall N" when libseccomp does not know it.
std::string syscall_name(int nr);

// The allow-list, for docs and tests.
const std::vector<const char*>& seccomp_allowed_syscalls();

}  // namespace symphony::sandbox
