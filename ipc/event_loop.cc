// Backend selection, in one place: probe io_uring, fall back to epoll with a
// reason, or honour a forced choice.
#include "ipc/event_loop.h"

#include <fstream>

namespace symphony::ipc {
namespace {

// Explains an io_uring setup failure in terms an operator can act on.
std::string explain_uring_failure(const Error& error) {
  std::string reason = error.message();
  if (error.code() == EPERM || error.code() == ENOSYS) {
    std::ifstream sysctl("/proc/sys/kernel/io_uring_disabled");
    int disabled = 0;
    if (sysctl >> disabled && disabled != 0) {
      reason += " (kernel.io_uring_disabled=" + std::to_string(disabled) + ")";
    } else if (error.code() == EPERM) {
      reason += " (blocked by a seccomp profile or security module?)";
    } else {
      reason += " (kernel built without io_uring?)";
    }
  }
  return reason;
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
    return Error(uring.error().code(), explain_uring_failure(uring.error()))
        .wrap("io_uring backend forced but unavailable");
  }
  std::string reason = explain_uring_failure(uring.error());
  auto loop = make_epoll_loop();
  if (!loop) return std::move(loop).error();
  return LoopSelection{std::move(*loop), std::move(reason)};
}

}  // namespace symphony::ipc
