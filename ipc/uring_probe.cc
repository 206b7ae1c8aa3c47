// Default ring-setup function behind the seam in uring_probe.h.
#include "ipc/uring_probe.h"

#include <liburing.h>

namespace symphony::ipc {

UringSetupFn& uring_setup_hook() {
  static UringSetupFn fn = [](unsigned entries, io_uring* ring, io_uring_params* params) {
    return io_uring_queue_init_params(entries, ring, params);
  };
  return fn;
}

}  // namespace symphony::ipc
