// Built instead of uring_loop.cc when liburing is not available: the selector
// then always uses epoll and says why.
#include "ipc/event_loop.h"

namespace symphony::ipc {

Result<std::unique_ptr<EventLoop>> make_uring_loop() {
  return Error(ENOSYS, "built without io_uring support (liburing)");
}

}  // namespace symphony::ipc
