// Backend selection, in one place: probe io_uring, fall back to epoll with a
// reason, or honour a forced choice.
#include "ipc/event_loop.h"

#include <fstream>

namespace symphony::ipc {
namespace {

// What an operator can do about an io_uring setup failure: a parenthesised
// hint, or empty when there is nothing to add to the error itself.
std::string uring_failure_hint(const Error& error) {
  if (error.code() != EPERM && error.code() != ENOSYS) return {};
  std::ifstream sysctl("/proc/sys/kernel/io_uring_disabled");
  int disabled = 0;
  if (sysctl >> disabled && disabled != 0) {
    return "(kernel.io_uring_disabled=" + std::to_string(disabled) + ")";
  }
  return error.code() == EPERM ? "(blocked by a seccomp profile or security module?)"
                               : "(kernel built without io_uring?)";
}

// Explains an io_uring setup failure in terms an operator can act on.
std::string explain_uring_failure(const Error& error) {
  std::string hint = uring_failure_hint(error);
  return hint.empty() ? error.message() : error.message() + " " + hint;
}

}  // namespace

std::string_view to_string(LoopBackend backend) {
  return backend == LoopBackend::io_uring ? "io_uring" : "epoll";
}

Result<LoopChoice> parse_loop_choice(std::string_view name) {
  if (name == "auto") return LoopChoice::automatic;
  if (name == "io_uring") return LoopChoice::io_uring;
  if (name == "epoll") return LoopChoice::epoll;
  return Error::invalid("unknown event loop backend '" + std::string(name) +
                        "' (expected auto, io_uring or epoll)");
}

Result<LoopSelection> make_event_loop(LoopChoice choice) {
  if (choice == LoopChoice::epoll) {
    auto loop = make_epoll_loop();
    if (!loop) return std::move(loop).error();
    return LoopSelection{std::move(*loop), {}};
  }
  auto uring = make_uring_loop();
  if (uring) return LoopSelection{std::move(*uring), {}};
  if (choice == LoopChoice::io_uring) {
    // The hint goes into the outer context: message() appends the errno text
    // once, after the innermost context.
    std::string hint = uring_failure_hint(uring.error());
    return std::move(uring).error().wrap("io_uring backend forced but unavailable" +
                                         (hint.empty() ? "" : " " + hint));
  }
  std::string reason = explain_uring_failure(uring.error());
  auto loop = make_epoll_loop();
  if (!loop) return std::move(loop).error();
  return LoopSelection{std::move(*loop), std::move(reason)};
}

}  // namespace symphony::ipc
