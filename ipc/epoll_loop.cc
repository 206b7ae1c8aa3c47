// The epoll backend: completion semantics emulated on edge-triggered
// readiness. An operation is tried at once; if it would block it waits for
// the fd's next edge. Each fd is registered once (EPOLLIN|EPOLLOUT|EPOLLET)
// on its first operation and removed on cancel(). Completions always run from
// the loop (never inside the call that started the operation), so a handler
// can start the next operation without recursion.
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <unordered_map>

#include "ipc/basic_loop.h"

namespace symphony::ipc {
namespace {

struct ReadOp {
  enum Kind { none, recv, accept, poll } kind = none;
  std::span<std::byte> buf;
  IoHandler io;
  AcceptHandler on_accept;
  PollHandler on_poll;
};

struct WriteOp {
  enum Kind { none, send, poll } kind = none;
  std::span<const std::byte> buf;
  IoHandler io;
  PollHandler on_poll;
};

struct FdState {
  ReadOp read;
  WriteOp write;
  // False after a recv/accept said EAGAIN, until the next EPOLLIN edge: a
  // new operation then waits for the edge instead of failing a syscall.
  bool readable = true;
};

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

class EpollLoop final : public BasicLoop {
 public:
  explicit EpollLoop(UniqueFd epfd) : epfd_(std::move(epfd)) {}

  LoopBackend backend() const override { return LoopBackend::epoll; }

  void recv(int fd, std::span<std::byte> buf, IoHandler handler) override {
    auto* st = state(fd);
    if (!st) return fail_later(std::move(handler), "epoll_ctl add");
    st->read = ReadOp{ReadOp::recv, buf, std::move(handler), {}, {}};
    if (st->readable) try_read(fd, *st);
  }

  void send(int fd, std::span<const std::byte> buf, IoHandler handler) override {
    auto* st = state(fd);
    if (!st) return fail_later(std::move(handler), "epoll_ctl add");
    st->write = WriteOp{WriteOp::send, buf, std::move(handler), {}};
    try_write(fd, *st);
  }

  void accept(int fd, AcceptHandler handler) override {
    auto* st = state(fd);
    if (!st) {
      Error e = Error::from_errno("epoll_ctl add");
      defer([h = std::move(handler), e]() mutable { h(std::move(e)); });
      return;
    }
    st->read = ReadOp{ReadOp::accept, {}, {}, std::move(handler), {}};
    try_read(fd, *st);
  }

  void poll(int fd, std::uint32_t events, PollHandler handler) override {
    auto* st = state(fd);
    if (!st) {
      Error e = Error::from_errno("epoll_ctl add");
      defer([h = std::move(handler), e]() mutable { h(std::move(e)); });
      return;
    }
    if (events & POLLOUT) {
      st->write = WriteOp{WriteOp::poll, {}, {}, std::move(handler)};
    } else {
      st->read = ReadOp{ReadOp::poll, {}, {}, {}, std::move(handler)};
    }
    // Edge-triggered: the edge may already have passed, so look now.
    struct pollfd p{fd, static_cast<short>(events), 0};
    if (::poll(&p, 1, 0) > 0) complete_poll(fd, static_cast<std::uint32_t>(p.revents));
  }

  void cancel(int fd) override {
    auto it = fds_.find(fd);
    if (it == fds_.end()) return;
    FdState st = std::move(it->second);
    fds_.erase(it);
    ::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr);
    Error canceled(ECANCELED, "operation canceled");
    switch (st.read.kind) {
      case ReadOp::recv: defer([h = std::move(st.read.io), canceled] { h(canceled); }); break;
      case ReadOp::accept: defer([h = std::move(st.read.on_accept), canceled] { h(canceled); }); break;
      case ReadOp::poll: defer([h = std::move(st.read.on_poll), canceled] { h(canceled); }); break;
      case ReadOp::none: break;
    }
    switch (st.write.kind) {
      case WriteOp::send: defer([h = std::move(st.write.io), canceled] { h(canceled); }); break;
      case WriteOp::poll: defer([h = std::move(st.write.on_poll), canceled] { h(canceled); }); break;
      case WriteOp::none: break;
    }
  }

 protected:
  Result<void> wait_and_dispatch(std::optional<std::chrono::nanoseconds> timeout) override {
    int ms = -1;
    if (timeout) {
      // Round up so a timer due in 0.3 ms does not spin.
      ms = static_cast<int>((timeout->count() + 999'999) / 1'000'000);
    }
    std::array<epoll_event, 64> events;
    int n = ::epoll_wait(epfd_.get(), events.data(), static_cast<int>(events.size()), ms);
    if (n < 0) {
      if (errno == EINTR) return ok();
      return Error::from_errno("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      std::uint32_t ev = events[i].events;
      auto it = fds_.find(fd);
      if (it == fds_.end()) continue;
      if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
        it->second.readable = true;
        if (it->second.read.kind == ReadOp::poll) {
          complete_poll(fd, to_revents(ev) & ~static_cast<std::uint32_t>(POLLOUT));
        } else {
          try_read(fd, it->second);
        }
      }
      it = fds_.find(fd);  // a handler may not run here, but stay safe
      if (it == fds_.end()) continue;
      if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
        if (it->second.write.kind == WriteOp::poll) {
          complete_poll(fd, to_revents(ev) & ~static_cast<std::uint32_t>(POLLIN));
        } else {
          try_write(fd, it->second);
        }
      }
    }
    return ok();
  }

 private:
  static std::uint32_t to_revents(std::uint32_t ev) {
    std::uint32_t r = 0;
    if (ev & EPOLLIN) r |= POLLIN;
    if (ev & EPOLLOUT) r |= POLLOUT;
    if (ev & EPOLLERR) r |= POLLERR;
    if (ev & (EPOLLHUP | EPOLLRDHUP)) r |= POLLHUP;
    return r;
  }

  FdState* state(int fd) {
    auto it = fds_.find(fd);
    if (it != fds_.end()) return &it->second;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP;
    ev.data.fd = fd;
    if (::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return nullptr;
    return &fds_[fd];
  }

  void fail_later(IoHandler handler, const char* what) {
    Error e = Error::from_errno(what);
    defer([h = std::move(handler), e]() mutable { h(std::move(e)); });
  }

  void complete_poll(int fd, std::uint32_t revents) {
    auto& st = fds_[fd];
    if ((revents & (POLLIN | POLLHUP | POLLERR)) && st.read.kind == ReadOp::poll) {
      auto h = std::move(st.read.on_poll);
      st.read = ReadOp{};
      defer([h = std::move(h), revents] { h(revents); });
    }
    if ((revents & (POLLOUT | POLLHUP | POLLERR)) && st.write.kind == WriteOp::poll) {
      auto h = std::move(st.write.on_poll);
      st.write = WriteOp{};
      defer([h = std::move(h), revents] { h(revents); });
    }
  }

  void try_read(int fd, FdState& st) {
    if (st.read.kind == ReadOp::recv) {
      ssize_t n = ::recv(fd, st.read.buf.data(), st.read.buf.size(), MSG_DONTWAIT);
      if (n < 0 && would_block(errno)) {
        st.readable = false;
        return;
      }
      auto h = std::move(st.read.io);
      st.read = ReadOp{};
      if (n < 0) {
        Error e = Error::from_errno("recv");
        defer([h = std::move(h), e]() mutable { h(std::move(e)); });
      } else {
        defer([h = std::move(h), n] { h(static_cast<std::size_t>(n)); });
      }
    } else if (st.read.kind == ReadOp::accept) {
      int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (c < 0 && would_block(errno)) return;
      auto h = std::move(st.read.on_accept);
      st.read = ReadOp{};
      if (c < 0) {
        Error e = Error::from_errno("accept");
        defer([h = std::move(h), e]() mutable { h(std::move(e)); });
      } else {
        // shared_ptr because std::function needs a copyable capture.
        auto owned = std::make_shared<UniqueFd>(c);
        defer([h = std::move(h), owned] { h(std::move(*owned)); });
      }
    }
  }

  void try_write(int fd, FdState& st) {
    if (st.write.kind != WriteOp::send) return;
    ssize_t n = ::send(fd, st.write.buf.data(), st.write.buf.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && would_block(errno)) return;
    auto h = std::move(st.write.io);
    st.write = WriteOp{};
    if (n < 0) {
      Error e = Error::from_errno("send");
      defer([h = std::move(h), e]() mutable { h(std::move(e)); });
    } else {
      defer([h = std::move(h), n] { h(static_cast<std::size_t>(n)); });
    }
  }

  UniqueFd epfd_;
  std::unordered_map<int, FdState> fds_;
};

}  // namespace

Result<std::unique_ptr<EventLoop>> make_epoll_loop() {
  UniqueFd epfd(::epoll_create1(EPOLL_CLOEXEC));
  if (!epfd) return Error::from_errno("epoll_create1");
  return std::unique_ptr<EventLoop>(std::make_unique<EpollLoop>(std::move(epfd)));
}

}  // namespace symphony::ipc
