// How a sandboxed program ended, in the terms a user needs: it exited with a
// code, a signal killed it, the seccomp filter killed it (naming the system
// call), the OOM killer killed it, it ran out of time, or it never started
// (naming the setup step). The daemon turns these into step failures;
// `symphony-sandbox --json-status` prints them.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace symphony::sandbox {

enum class ExitReason { exited, signaled, seccomp, oom, timeout, setup_failed };
std::string_view to_string(ExitReason reason);

struct ExitReport {
  ExitReason reason = ExitReason::exited;
  int exit_code = 0;        // exited: the code
  int signal = 0;           // signaled/oom/timeout/seccomp: the signal that ended it (0 if none)
  std::string syscall;      // seccomp: the denied call by name ("ptrace")
  std::string step;         // setup_failed: the setup step ("pivot_root")
  int error_code = 0;       // setup_failed: errno of the failing call
  std::string message;      // one line for a human, always set
  std::vector<std::string> seccomp_log;  // log mode: calls outside the allow-list, by name, once each
  std::chrono::microseconds wall{0};  // spawn to end

  // What a shell would report: the code, or 128 + signal; a program that
  // cannot be found 127, cannot be executed 126; other setup failures 125.
  int shell_status() const;
  // {"reason":"exited","exit_code":0,...}: stable keys, documented in docs/sandbox.md.
  std::string to_json() const;
};

}  // namespace symphony::sandbox
