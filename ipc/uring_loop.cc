// The io_uring backend (liburing). Each operation is one SQE whose user_data
// points at a heap-allocated Op holding the handler; SQEs queued by handlers
// are submitted together with the next wait (io_uring_submit_and_wait_timeout,
// one syscall per iteration). cancel(fd) uses IORING_ASYNC_CANCEL_FD, which
// the probe in make_uring_loop() requires (Linux 5.19).
//
// Receives use one multishot recv per socket (Linux 6.0) over a ring of
// provided buffers: the socket stays armed, each arrival is copied out of the
// kernel's buffer into the socket's stash at once (the buffer goes straight
// back to the ring), and recv() is served from the stash. This removes the
// per-message re-arm that dominated the round-trip cost. Where buffer rings
// are unavailable, recv() falls back to one IORING_OP_RECV per call.
#include <fcntl.h>
#include <cstring>
#include <liburing.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <unordered_map>

#include "base/mapping.h"

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

// Multishot receive: one armed recv per socket delivers every arrival into a
// ring of kernel-selected buffers, so the hot path re-arms nothing.
constexpr unsigned kRecvBuffers = 64;         // power of two
constexpr unsigned kRecvBufferSize = 16 * 1024;
constexpr int kRecvGroup = 0;
// user_data tag bit marking a multishot-recv CQE (Ops are 8-aligned).
constexpr std::uintptr_t kRecvTag = 1;

// Per-socket receive state: data that arrived before anyone asked for it,
// and the caller waiting for data.
struct RecvState {
  int fd = -1;
  std::vector<std::byte> stash;
  std::size_t stash_off = 0;
  std::span<std::byte> want;
  IoHandler waiting;
  bool armed = false;     // a multishot recv is in the kernel
  bool eof = false;
  int error = 0;
  bool detached = false;  // cancel() ran: free when the last CQE arrives
};

class UringLoop final : public BasicLoop {
 public:
  UringLoop() = default;
  ~UringLoop() override {
    if (initialized_) io_uring_queue_exit(&ring_);
    for (auto& [fd, st] : recv_states_) delete st;
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
    setup_recv_buffers();
    return ok();
  }

  LoopBackend backend() const override { return LoopBackend::io_uring; }

  void recv(int fd, std::span<std::byte> buf, IoHandler handler) override {
    if (!multishot_) {
      io_uring_sqe* sqe = next_sqe();
      io_uring_prep_recv(sqe, fd, buf.data(), buf.size(), 0);
      attach(sqe, new Op{Op::recv, std::move(handler), {}, {}});
      return;
    }
    auto& slot = recv_states_[fd];
    if (!slot) {
      slot = new RecvState;
      slot->fd = fd;
    }
    RecvState* st = slot;
    st->want = buf;
    st->waiting = std::move(handler);
    if (st->stash_off < st->stash.size() || st->eof || st->error) {
      defer([this, st] { deliver(st); });
      return;
    }
    if (!st->armed) arm(st);
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
    if (auto it = recv_states_.find(fd); it != recv_states_.end()) {
      RecvState* st = it->second;
      recv_states_.erase(it);
      st->detached = true;
      if (st->waiting) {
        auto h = std::move(st->waiting);
        defer([h = std::move(h)] { h(Error(ECANCELED, "operation canceled")); });
      }
      if (!st->armed) delete st;
    }
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
      auto data = static_cast<std::uintptr_t>(cqe->user_data);
      if (data & kRecvTag) {
        // Copy out of the kernel's buffer now and give it back at once.
        on_recv_cqe(reinterpret_cast<RecvState*>(data & ~kRecvTag), cqe->res, cqe->flags);
      } else if (auto* op = reinterpret_cast<Op*>(data)) {
        ready_.emplace_back(op, cqe->res);
      }
    }
    io_uring_cq_advance(&ring_, seen);
    for (auto [op, res] : ready_) complete(op, res);
    for (RecvState* st : to_deliver_) deliver(st);
    to_deliver_.clear();
    return ok();
  }

 private:
  void setup_recv_buffers() {
    auto mem = Mapping::anonymous(kRecvBuffers * sizeof(io_uring_buf) + kRecvBuffers * kRecvBufferSize);
    if (!mem) return;
    auto* br = reinterpret_cast<io_uring_buf_ring*>(mem->data());
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(br);
    reg.ring_entries = kRecvBuffers;
    reg.bgid = kRecvGroup;
    if (io_uring_register_buf_ring(&ring_, &reg, 0) != 0) return;  // old kernel: one-shot recv
    io_uring_buf_ring_init(br);
    recv_bufs_ = mem->data() + kRecvBuffers * sizeof(io_uring_buf);
    for (unsigned i = 0; i < kRecvBuffers; ++i) {
      io_uring_buf_ring_add(br, recv_bufs_ + i * kRecvBufferSize, kRecvBufferSize,
                            static_cast<unsigned short>(i), io_uring_buf_ring_mask(kRecvBuffers),
                            static_cast<int>(i));
    }
    io_uring_buf_ring_advance(br, kRecvBuffers);
    buf_ring_ = br;
    recv_memory_ = std::move(*mem);
    multishot_ = true;
  }

  void arm(RecvState* st) {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_recv_multishot(sqe, st->fd, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kRecvGroup;
    io_uring_sqe_set_data64(sqe, reinterpret_cast<std::uintptr_t>(st) | kRecvTag);
    st->armed = true;
  }

  void on_recv_cqe(RecvState* st, int res, unsigned flags) {
    if (!(flags & IORING_CQE_F_MORE)) st->armed = false;
    if (flags & IORING_CQE_F_BUFFER) {
      auto bid = static_cast<unsigned short>(flags >> IORING_CQE_BUFFER_SHIFT);
      std::byte* data = recv_bufs_ + bid * kRecvBufferSize;
      if (res > 0 && !st->detached) {
        if (st->stash_off == st->stash.size()) {
          st->stash.clear();
          st->stash_off = 0;
        }
        st->stash.insert(st->stash.end(), data, data + res);
      }
      io_uring_buf_ring_add(buf_ring_, data, kRecvBufferSize, bid,
                            io_uring_buf_ring_mask(kRecvBuffers), 0);
      io_uring_buf_ring_advance(buf_ring_, 1);
    }
    if (st->detached) {
      if (!st->armed) delete st;
      return;
    }
    if (res == 0) st->eof = true;
    // Out of buffers: re-arm once the caller has drained what it has.
    if (res < 0 && res != -ENOBUFS) st->error = -res;
    if (st->waiting) to_deliver_.push_back(st);
  }

  // Completes the waiting recv from the stash (or with EOF / the error).
  void deliver(RecvState* st) {
    if (!st->waiting) return;
    auto h = std::move(st->waiting);
    st->waiting = nullptr;
    std::size_t avail = st->stash.size() - st->stash_off;
    if (avail > 0) {
      std::size_t n = std::min(avail, st->want.size());
      std::memcpy(st->want.data(), st->stash.data() + st->stash_off, n);
      st->stash_off += n;
      return h(n);
    }
    if (st->error) return h(Error(st->error, "recv"));
    if (st->eof) return h(std::size_t{0});
    // Nothing after all (a multishot that ended without data): wait again.
    st->waiting = std::move(h);
    if (!st->armed) arm(st);
  }

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
  bool multishot_ = false;
  Mapping recv_memory_;
  io_uring_buf_ring* buf_ring_ = nullptr;
  std::byte* recv_bufs_ = nullptr;
  std::unordered_map<int, RecvState*> recv_states_;
  std::vector<RecvState*> to_deliver_;
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
