// Shared helpers of every launcher backend: the "setup step 'NAME'" error
// convention, so a failure deep in a child's setup reaches the user naming
// the step, whatever backend ran it.
#include "sandbox/launcher.h"

#include <cstring>
#include <string>

namespace symphony::sandbox {

namespace {
constexpr std::string_view kPrefix = "setup step '";
}

Error step_error(std::string_view step, int code, std::string_view detail) {
  std::string context(kPrefix);
  context += step;
  context += "'";
  if (!detail.empty()) {
    context += ": ";
    context += detail;
  }
  return Error(code, std::move(context));
}

Error step_error(std::string_view step, const Error& cause) {
  std::string message(kPrefix);
  message += step;
  message += "': ";
  message += cause.message();
  return Error::described(cause.code(), std::move(message));
}

std::string failed_step(const Error& error) {
  const std::string& c = error.context();
  auto at = c.find(kPrefix);
  if (at == std::string::npos) return "";
  auto start = at + kPrefix.size();
  auto end = c.find('\'', start);
  if (end == std::string::npos) return "";
  return c.substr(start, end - start);
}

ExitReport setup_failed_report(const Error& error) {
  ExitReport report;
  report.reason = ExitReason::setup_failed;
  report.step = failed_step(error);
  if (report.step.empty()) report.step = "spawn";
  report.error_code = error.code();
  report.message = error.message();
  return report;
}

}  // namespace symphony::sandbox
