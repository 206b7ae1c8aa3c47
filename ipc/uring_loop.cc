// The io_uring backend (liburing). Each operation is one SQE whose user_data
// points at a heap-allocated Op holding the handler; SQEs queued by handlers
// are submitted together with the next wait (io_uring_submit_and_wait_timeout,
// one syscall per iteration). cancel(fd) uses IORING_ASYNC_CANCEL_FD, which
// the probe in make_uring_loop() requires (Linux 5.19).
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "ipc/basic_loop.h"
#include "ipc/uring_probe.h"

namespace symphony::ipc {
namespace {

struct Op {
  enum Kind { recv, send, accept, poll } kind;
  IoHandler io;
  AcceptHandler on_accept;
  PollHandler on_poll;
  // Intrusive list of operations in flight, so the destructor can free them
  // without a per-operation allocation in a side table.
  Op* prev = nullptr;
  Op* next = nullptr;
};

constexpr unsigned kEntries = 256;

class UringLoop final : public BasicLoop {
 public:
  UringLoop() = default;
  ~UringLoop() override {
    if (initialized_) io_uring_queue_exit(&ring_);
    // Handlers of operations still in flight are dropped with their Ops.
    while (live_ != nullptr) {
      Op* op = live_;
      live_ = op->next;
      delete op;
    }
  }

  Result<void> init() {
    // COOP_TASKRUN avoids an inter-processor interrupt per completion; the
    // loop enters the kernel every iteration anyway. Older kernels reject
    // the flag, so retry without it.
    io_uring_params p{};
    p.flags = IORING_SETUP_COOP_TASKRUN;
    int r = uring_setup_hook()(kEntries, &ring_, &p);
    if (r == -EINVAL) {
      p = io_uring_params{};
      r = uring_setup_hook()(kEntries, &ring_, &p);
    }
    if (r < 0) return Error(-r, "io_uring_setup");
    initialized_ = true;
    if (!(p.features & IORING_FEAT_EXT_ARG)) {
      return Error(ENOTSUP, "io_uring lacks IORING_FEAT_EXT_ARG (Linux 5.11)");
    }
    // Probe IORING_ASYNC_CANCEL_FD: cancelling on an fd with nothing pending
    // answers ENOENT where supported, EINVAL where not.
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    io_uring_prep_cancel_fd(sqe, 0, 0);
    io_uring_sqe_set_data64(sqe, 0);
    io_uring_cqe* cqe = nullptr;
    r = io_uring_submit_and_wait(&ring_, 1);
    if (r >= 0) r = io_uring_peek_cqe(&ring_, &cqe);
    int res = (r == 0 && cqe) ? cqe->res : r;
    if (cqe) io_uring_cqe_seen(&ring_, cqe);
    if (res != -ENOENT && res != 0) {
      return Error(res == -EINVAL ? ENOTSUP : -res,
                   "io_uring lacks IORING_ASYNC_CANCEL_FD (Linux 5.19)");
    }
    return ok();
  }

  LoopBackend backend() const override { return LoopBackend::io_uring; }

  void recv(int fd, std::span<std::byte> buf, IoHandler handler) override {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_recv(sqe, fd, buf.data(), buf.size(), 0);
    attach(sqe, new Op{Op::recv, std::move(handler), {}, {}});
  }

  void send(int fd, std::span<const std::byte> buf, IoHandler handler) override {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_send(sqe, fd, buf.data(), buf.size(), MSG_NOSIGNAL);
    attach(sqe, new Op{Op::send, std::move(handler), {}, {}});
  }

  void accept(int fd, AcceptHandler handler) override {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_accept(sqe, fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    attach(sqe, new Op{Op::accept, {}, std::move(handler), {}});
  }

  void poll(int fd, std::uint32_t events, PollHandler handler) override {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_poll_add(sqe, fd, events);
    attach(sqe, new Op{Op::poll, {}, {}, std::move(handler)});
  }

  void cancel(int fd) override {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, 0);
    // Submit now so the cancellation reaches the kernel before the caller
    // closes the fd.
    io_uring_submit(&ring_);
  }

 protected:
  Result<void> wait_and_dispatch(std::optional<std::chrono::nanoseconds> timeout) override {
    __kernel_timespec ts{};
    if (timeout) {
      ts.tv_sec = timeout->count() / 1'000'000'000;
      ts.tv_nsec = timeout->count() % 1'000'000'000;
    }
    io_uring_cqe* cqe = nullptr;
    int r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, timeout ? &ts : nullptr, nullptr);
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
      return Error(-r, "io_uring_submit_and_wait_timeout");
    }
    // Collect first, then run handlers: a handler may queue new SQEs and
    // even wait, so the CQ ring must be released before it runs.
    ready_.clear();
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++seen;
      if (auto* op = reinterpret_cast<Op*>(io_uring_cqe_get_data(cqe))) {
        ready_.emplace_back(op, cqe->res);
      }
    }
    io_uring_cq_advance(&ring_, seen);
    for (auto [op, res] : ready_) complete(op, res);
    return ok();
  }

 private:
  io_uring_sqe* next_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (sqe == nullptr) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void attach(io_uring_sqe* sqe, Op* op) {
    io_uring_sqe_set_data(sqe, op);
    op->next = live_;
    if (live_) live_->prev = op;
    live_ = op;
  }

  void complete(Op* op, int res) {
    if (op->prev) op->prev->next = op->next;
    if (op->next) op->next->prev = op->prev;
    if (live_ == op) live_ = op->next;
    std::unique_ptr<Op> owned(op);
    auto error = [&](const char* what) { return Error(-res, what); };
    switch (op->kind) {
      case Op::recv:
        if (res < 0) return op->io(error(res == -ECANCELED ? "operation canceled" : "recv"));
        return op->io(static_cast<std::size_t>(res));
      case Op::send:
        if (res < 0) return op->io(error(res == -ECANCELED ? "operation canceled" : "send"));
        return op->io(static_cast<std::size_t>(res));
      case Op::accept:
        if (res < 0) return op->on_accept(error(res == -ECANCELED ? "operation canceled" : "accept"));
        return op->on_accept(UniqueFd(res));
      case Op::poll:
        if (res < 0) return op->on_poll(error(res == -ECANCELED ? "operation canceled" : "poll"));
        return op->on_poll(static_cast<std::uint32_t>(res));
    }
  }

  io_uring ring_{};
  std::vector<std::pair<Op*, int>> ready_;
  Op* live_ = nullptr;
  bool initialized_ = false;
};

}  // namespace

Result<std::unique_ptr<EventLoop>> make_uring_loop() {
  auto loop = std::make_unique<UringLoop>();
  if (auto r = loop->init(); !r) return std::move(r).error();
  return std::unique_ptr<EventLoop>(std::move(loop));
}

}  // namespace symphony::ipc
