// Exit reports as text and JSON. The JSON keys are a stable interface
// (symphony-sandbox --json-status, the daemon's step failures): documented
// in docs/sandbox.md; add keys, never rename them.
#include "sandbox/exit_report.h"

#include <cerrno>

#include <nlohmann/json.hpp>

namespace symphony::sandbox {

std::string_view to_string(ExitReason reason) {
  switch (reason) {
    case ExitReason::exited: return "exited";
    case ExitReason::signaled: return "signaled";
    case ExitReason::seccomp: return "seccomp";
    case ExitReason::oom: return "oom";
    case ExitReason::timeout: return "timeout";
    case ExitReason::setup_failed: return "setup_failed";
  }
  return "?";
}

int ExitReport::shell_status() const {
  switch (reason) {
    case ExitReason::exited: return exit_code;
    case ExitReason::setup_failed:
      // As shells and env(1) do: 127 not found, 126 not executable, 125
      // the launcher itself failed.
      if (step == "exec" || step == "resolve_program") return error_code == ENOENT || error_code == ENOTDIR ? 127 : 126;
      return 125;
    default: return 128 + (signal > 0 ? signal : 9);
  }
}

std::string ExitReport::to_json() const {
  nlohmann::ordered_json j;
  j["reason"] = std::string(to_string(reason));
  switch (reason) {
    case ExitReason::exited: j["exit_code"] = exit_code; break;
    case ExitReason::seccomp: j["syscall"] = syscall; j["signal"] = signal; break;
    case ExitReason::setup_failed:
      j["step"] = step;
      j["errno"] = error_code;
      break;
    default: j["signal"] = signal; break;
  }
  j["message"] = message;
  if (!seccomp_log.empty()) j["seccomp_log"] = seccomp_log;
  j["wall_us"] = wall.count();
  return j.dump();
}

}  // namespace symphony::sandbox
