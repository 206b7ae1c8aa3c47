// Messages with file descriptors attached (SCM_RIGHTS) on the sandbox's
// status socket: the seccomp listener going to the parent, a spawn's fds
// going to a zygote shell. Header-only and async-signal-safe (fixed buffers,
// system calls only), because the child side runs between clone and exec.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace symphony::sandbox {

constexpr std::size_t kMaxPassedFds = 64;

// Sends `len` bytes with `nfds` fds (at most kMaxPassedFds). Returns what
// sendmsg returns; errno is set on failure.
inline ssize_t send_with_fds(int sock, const void* data, std::size_t len, const int* fds,
                             std::size_t nfds) {
  if (nfds > kMaxPassedFds) {
    errno = E2BIG;
    return -1;
  }
  iovec iov{const_cast<void*>(data), len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPassedFds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  return ::sendmsg(sock, &msg, MSG_NOSIGNAL);
}

// Receives up to `len` bytes and up to `max_fds` fds (close-on-exec) into
// `fds`; *nfds says how many came. Returns what recvmsg returns.
inline ssize_t recv_with_fds(int sock, void* data, std::size_t len, int* fds,
                             std::size_t max_fds, std::size_t* nfds) {
  iovec iov{data, len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPassedFds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  *nfds = 0;
  ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int* received = reinterpret_cast<int*>(CMSG_DATA(c));
    for (std::size_t i = 0; i < count; ++i) {
      // Keep what fits; close the rest rather than leak them.
      if (*nfds < max_fds) {
        std::memcpy(&fds[(*nfds)++], &received[i], sizeof(int));
      } else {
        int extra;
        std::memcpy(&extra, &received[i], sizeof(int));
        ::close(extra);
      }
    }
  }
  return n;
}

}  // namespace symphony::sandbox
