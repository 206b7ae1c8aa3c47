// close() for UniqueFd. EINTR from close() is not retried: on Linux the fd is
// released regardless, and retrying could close an fd another thread reused.
#include "base/unique_fd.h"

#include <unistd.h>

namespace symphony {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

}  // namespace symphony
