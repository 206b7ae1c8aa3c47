// The event-loop backends every loop-level test runs against, so that both
// implementations pass the same suite.
#pragma once

#include <memory>

#include "ipc/event_loop.h"

namespace symphony::testing {

struct LoopBackend {
  const char* name;
  Result<std::unique_ptr<ipc::EventLoop>> (*make)();
};

inline const LoopBackend kLoopBackends[] = {
    {"epoll", &ipc::make_epoll_loop},
    {"io_uring", &ipc::make_uring_loop},
};

}  // namespace symphony::testing
