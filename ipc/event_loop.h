// The event loop every Symphony daemon component runs on: a completion-style
// interface (start an operation, get a callback with its result) that maps
// one-to-one onto io_uring and is emulated on epoll with edge-triggered
// readiness. make_event_loop() picks the backend in one place: io_uring when
// the kernel allows it, epoll otherwise, or whichever is forced by
// configuration. Single-threaded: every method is called on the loop's thread,
// and every callback runs there.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace symphony::ipc {

enum class LoopBackend { io_uring, epoll };
std::string_view to_string(LoopBackend backend);

// Bytes transferred (0 on recv means end of stream), or the error.
using IoHandler = std::function<void(Result<std::size_t>)>;
using AcceptHandler = std::function<void(Result<UniqueFd>)>;
// The poll(2) revents that fired (POLLIN, POLLOUT, POLLHUP, POLLERR…).
using PollHandler = std::function<void(Result<std::uint32_t>)>;
using Task = std::function<void()>;

struct TimerId {
  std::uint64_t value = 0;
};

class EventLoop {
 public:
  virtual ~EventLoop() = default;

  virtual LoopBackend backend() const = 0;

  // Receives up to buf.size() bytes from the stream socket `fd`. `buf` must
  // stay valid until the handler has run. At most one receive, accept or
  // read-side poll may be pending per fd.
  virtual void recv(int fd, std::span<std::byte> buf, IoHandler handler) = 0;
  // Sends from `buf` (possibly partially: the handler gets the count). No
  // SIGPIPE. At most one send or write-side poll may be pending per fd.
  virtual void send(int fd, std::span<const std::byte> buf, IoHandler handler) = 0;
  // Accepts one connection on a listening socket; the fd is CLOEXEC|NONBLOCK.
  virtual void accept(int fd, AcceptHandler handler) = 0;
  // One-shot readiness wait for any pollable fd (pidfd, signalfd, timerfd).
  // `events` is POLLIN or POLLOUT.
  virtual void poll(int fd, std::uint32_t events, PollHandler handler) = 0;
  // Cancels every pending operation on `fd`; their handlers run later with
  // ECANCELED. Call before closing an fd that has operations pending.
  virtual void cancel(int fd) = 0;

  // Runs `task` once after `delay` (on the loop thread).
  virtual TimerId add_timer(std::chrono::nanoseconds delay, Task task) = 0;
  virtual void cancel_timer(TimerId id) = 0;
  // Runs `task` on the next iteration, after the current callback returns.
  virtual void defer(Task task) = 0;

  // Runs until stop(). Returns an error only if the backend itself fails.
  virtual Result<void> run() = 0;
  virtual void stop() = 0;
};

// What the configuration asks for.
enum class LoopChoice { automatic, io_uring, epoll };
Result<LoopChoice> parse_loop_choice(std::string_view name);  // "auto", "io_uring", "epoll"

struct LoopSelection {
  std::unique_ptr<EventLoop> loop;
  // Why `automatic` fell back to epoll (empty when it did not).
  std::string fallback_reason;
};

// Creates the loop. With `automatic`, io_uring is probed and epoll is used
// when it is unavailable (fallback_reason says why); a forced backend that
// cannot be created is an error.
Result<LoopSelection> make_event_loop(LoopChoice choice);

// The individual backends, for tests that must run both.
Result<std::unique_ptr<EventLoop>> make_epoll_loop();
Result<std::unique_ptr<EventLoop>> make_uring_loop();

}  // namespace symphony::ipc
