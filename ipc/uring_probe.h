// The system-call seam in front of io_uring ring setup. Tests replace the
// hook to make setup fail with EPERM or ENOSYS (as a container's seccomp
// profile or kernel.io_uring_disabled would) and check that the loop
// selector falls back to epoll and says why.
#pragma once

struct io_uring;
struct io_uring_params;

namespace symphony::ipc {

using UringSetupFn = int (*)(unsigned entries, io_uring* ring, io_uring_params* params);

// The function make_uring_loop() calls to create a ring; defaults to
// io_uring_queue_init_params. Returns a negative errno on failure.
UringSetupFn& uring_setup_hook();

}  // namespace symphony::ipc
