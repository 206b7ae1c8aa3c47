// Unit tests of the event loop (ipc/event_loop.h). Every behaviour is checked
// against both backends, epoll and io_uring, through the same parametrized
// suite; io_uring is skipped (with the reason) only where this machine cannot
// create a ring. The selector's fallback is tested through the ring-setup
// seam in ipc/uring_probe.h.
#include "ipc/event_loop.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "symphony_build_config.h"
#if SYMPHONY_HAVE_IO_URING
#include <liburing.h>

#include "ipc/uring_probe.h"
#endif

#include "tests/support/loop_backends.h"

namespace symphony::ipc {
namespace {

using namespace std::chrono_literals;

using Backend = symphony::testing::LoopBackend;

constexpr const auto& kBackends = symphony::testing::kLoopBackends;

std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string as_string(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

class EventLoopTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    auto loop = GetParam().make();
    if (!loop) {
      GTEST_SKIP() << GetParam().name << " backend unavailable here: " << loop.error().message();
    }
    loop_ = std::move(*loop);
  }

  // Runs the loop until a test callback calls stop(). A watchdog turns a
  // missing completion into a test failure instead of a hang.
  void run() {
    bool timed_out = false;
    TimerId watchdog = loop_->add_timer(10s, [&] {
      timed_out = true;
      loop_->stop();
    });
    auto r = loop_->run();
    loop_->cancel_timer(watchdog);
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_FALSE(timed_out) << "the loop ran for 10 s without the expected completions";
  }

  // A connected pair of non-blocking stream sockets.
  struct SocketPair {
    UniqueFd a;
    UniqueFd b;
  };
  static SocketPair socket_pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
      ADD_FAILURE() << "socketpair: " << std::strerror(errno);
      return {};
    }
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
  }

  // Runs `action` on the loop once the operations started so far are in
  // flight. Its trigger is a poll on an always-writable pipe started after
  // them: on io_uring they are submitted together, in order, so when the
  // poll completes the earlier operations are already waiting in the kernel;
  // on epoll they are registered when started.
  void when_in_flight(Task action) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    trigger_read_.reset(fds[0]);
    trigger_write_.reset(fds[1]);
    loop_->poll(trigger_write_.get(), POLLOUT,
                [action = std::move(action)](Result<std::uint32_t>) { action(); });
  }

  UniqueFd trigger_read_;
  UniqueFd trigger_write_;
  std::unique_ptr<EventLoop> loop_;  // destroyed first: it may still watch the fds above
};

TEST_P(EventLoopTest, ReportsItsBackend) {
  EXPECT_EQ(to_string(loop_->backend()), GetParam().name);
}

TEST_P(EventLoopTest, SendAndRecvOverASocketPair) {
  SocketPair p = socket_pair();
  std::string_view ping = "ping";
  std::vector<std::byte> buf(64);
  std::optional<Result<std::size_t>> sent, received;
  auto maybe_stop = [&] {
    if (sent && received) loop_->stop();
  };
  // The receive is started first, so it has to wait for the data.
  loop_->recv(p.b.get(), buf, [&](Result<std::size_t> r) {
    received = std::move(r);
    maybe_stop();
  });
  loop_->send(p.a.get(), as_bytes(ping), [&](Result<std::size_t> r) {
    sent = std::move(r);
    maybe_stop();
  });
  run();
  ASSERT_TRUE(*sent) << sent->error().message();
  EXPECT_EQ(**sent, 4u);
  ASSERT_TRUE(*received) << received->error().message();
  ASSERT_EQ(**received, 4u);
  EXPECT_EQ(as_string(std::span(buf).first(4)), "ping");
}

TEST_P(EventLoopTest, RecvReturnsZeroWhenThePeerCloses) {
  SocketPair p = socket_pair();
  std::vector<std::byte> buf(16);
  std::optional<Result<std::size_t>> received;
  loop_->recv(p.b.get(), buf, [&](Result<std::size_t> r) {
    received = std::move(r);
    loop_->stop();
  });
  when_in_flight([&] { p.a.reset(); });
  run();
  ASSERT_TRUE(received.has_value());
  ASSERT_TRUE(*received) << received->error().message();
  EXPECT_EQ(**received, 0u);
}

TEST_P(EventLoopTest, AcceptsOnAListeningUnixSocket) {
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(listener);
  // Autobind to an abstract address: nothing on the filesystem to clean up.
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(sa_family_t)), 0);
  socklen_t addr_len = sizeof(addr);
  ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &addr_len), 0);
  ASSERT_EQ(::listen(listener.get(), 8), 0);

  UniqueFd client;
  std::optional<Result<UniqueFd>> accepted;
  loop_->accept(listener.get(), [&](Result<UniqueFd> r) {
    accepted = std::move(r);
    loop_->stop();
  });
  // Connect only once the accept is pending.
  when_in_flight([&] {
    client.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), addr_len), 0)
        << std::strerror(errno);
  });
  run();
  loop_->cancel(listener.get());

  ASSERT_TRUE(accepted.has_value());
  ASSERT_TRUE(*accepted) << accepted->error().message();
  int fd = (*accepted)->get();
  EXPECT_TRUE(::fcntl(fd, F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
  // It is the other end of our client.
  ASSERT_EQ(::send(client.get(), "x", 1, MSG_NOSIGNAL), 1);
  char c = 0;
  struct pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  ASSERT_EQ(::recv(fd, &c, 1, 0), 1);
  EXPECT_EQ(c, 'x');
}

TEST_P(EventLoopTest, PollReportsAnEventfdBecomingReadable) {
  UniqueFd efd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  ASSERT_TRUE(efd);
  std::optional<Result<std::uint32_t>> fired;
  bool written = false;
  loop_->poll(efd.get(), POLLIN, [&](Result<std::uint32_t> r) {
    fired = std::move(r);
    loop_->stop();
  });
  when_in_flight([&] {
    std::uint64_t one = 1;
    written = ::write(efd.get(), &one, sizeof(one)) == sizeof(one);
  });
  run();
  EXPECT_TRUE(written);
  ASSERT_TRUE(fired.has_value());
  ASSERT_TRUE(*fired) << fired->error().message();
  EXPECT_TRUE(**fired & POLLIN);
}

TEST_P(EventLoopTest, PollReportsAWritablePipeAtOnce) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  UniqueFd r(fds[0]), w(fds[1]);
  std::optional<Result<std::uint32_t>> fired;
  loop_->poll(w.get(), POLLOUT, [&](Result<std::uint32_t> res) {
    fired = std::move(res);
    loop_->stop();
  });
  run();
  ASSERT_TRUE(fired.has_value());
  ASSERT_TRUE(*fired) << fired->error().message();
  EXPECT_TRUE(**fired & POLLOUT);
}

TEST_P(EventLoopTest, PollReportsHangupOfAPipesWriter) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  UniqueFd r(fds[0]), w(fds[1]);
  std::optional<Result<std::uint32_t>> fired;
  loop_->poll(r.get(), POLLIN, [&](Result<std::uint32_t> res) {
    fired = std::move(res);
    loop_->stop();
  });
  when_in_flight([&] { w.reset(); });
  run();
  ASSERT_TRUE(fired.has_value());
  ASSERT_TRUE(*fired) << fired->error().message();
  EXPECT_TRUE(**fired & POLLHUP);
}

TEST_P(EventLoopTest, TimersFireInDeadlineOrderAndCancelledOnesNever) {
  std::vector<std::string> fired;
  loop_->add_timer(30ms, [&] {
    fired.push_back("30ms");
    loop_->stop();
  });
  loop_->add_timer(10ms, [&] { fired.push_back("10ms"); });
  TimerId cancelled = loop_->add_timer(5ms, [&] { fired.push_back("cancelled"); });
  loop_->add_timer(20ms, [&] { fired.push_back("20ms"); });
  loop_->add_timer(0ms, [&] { fired.push_back("0ms"); });
  loop_->cancel_timer(cancelled);
  run();
  EXPECT_EQ(fired, (std::vector<std::string>{"0ms", "10ms", "20ms", "30ms"}));
}

TEST_P(EventLoopTest, ATimerCanCancelALaterOne) {
  std::vector<std::string> fired;
  TimerId later = loop_->add_timer(20ms, [&] { fired.push_back("later"); });
  loop_->add_timer(1ms, [&] {
    fired.push_back("first");
    loop_->cancel_timer(later);
  });
  loop_->add_timer(40ms, [&] {
    fired.push_back("last");
    loop_->stop();
  });
  run();
  EXPECT_EQ(fired, (std::vector<std::string>{"first", "last"}));
}

TEST_P(EventLoopTest, CancellingAnUnknownOrFiredTimerIsHarmless) {
  int count = 0;
  TimerId id = loop_->add_timer(0ms, [&] {
    ++count;
    loop_->stop();
  });
  run();
  loop_->cancel_timer(id);
  loop_->cancel_timer(TimerId{987654});
  EXPECT_EQ(count, 1);
}

TEST_P(EventLoopTest, DeferRunsAfterTheCurrentCallbackReturns) {
  std::vector<std::string> order;
  loop_->add_timer(0ms, [&] {
    loop_->defer([&] {
      order.push_back("deferred");
      // Deferred from a deferred task: runs on a later iteration.
      loop_->defer([&] {
        order.push_back("deferred again");
        loop_->stop();
      });
      order.push_back("deferred returns");
    });
    order.push_back("timer returns");
  });
  run();
  EXPECT_EQ(order, (std::vector<std::string>{"timer returns", "deferred", "deferred returns",
                                             "deferred again"}));
}

TEST_P(EventLoopTest, CompletionsNeverRunInsideTheCallThatStartedThem) {
  SocketPair p = socket_pair();
  // Data is already there, so a backend could complete at once; it must not.
  ASSERT_EQ(::send(p.a.get(), "abc", 3, MSG_NOSIGNAL), 3);
  std::vector<std::byte> buf(8);
  bool inside_call = true;
  std::optional<bool> ran_inside;
  loop_->defer([&] {
    loop_->recv(p.b.get(), buf, [&](Result<std::size_t>) {
      ran_inside = inside_call;
      loop_->stop();
    });
    inside_call = false;
  });
  run();
  ASSERT_TRUE(ran_inside.has_value());
  EXPECT_FALSE(*ran_inside);
}

TEST_P(EventLoopTest, CancelDeliversEcanceledToAPendingRecv) {
  SocketPair p = socket_pair();
  std::vector<std::byte> buf(16);
  std::optional<Result<std::size_t>> received;
  loop_->recv(p.b.get(), buf, [&](Result<std::size_t> r) {
    received = std::move(r);
    loop_->stop();
  });
  when_in_flight([&] { loop_->cancel(p.b.get()); });
  run();
  ASSERT_TRUE(received.has_value());
  ASSERT_FALSE(*received);
  EXPECT_EQ(received->error().code(), ECANCELED);
}

TEST_P(EventLoopTest, CancelRightAfterARecvThatCanCompleteAtOnceRunsItsHandlerOnce) {
  SocketPair p = socket_pair();
  ASSERT_EQ(::send(p.a.get(), "x", 1, MSG_NOSIGNAL), 1);
  p.a.reset();  // one byte, then the end of the stream
  std::vector<std::byte> buf(16);
  std::vector<std::string> got;
  int last_calls = 0;
  auto describe = [](const Result<std::size_t>& r) {
    return r ? std::to_string(*r) + " bytes" : std::string(std::strerror(r.error().code()));
  };
  loop_->recv(p.b.get(), buf, [&](Result<std::size_t> first) {
    got.push_back(describe(first));
    loop_->recv(p.b.get(), buf, [&](Result<std::size_t> second) {
      got.push_back(describe(second));
      // The end of the stream is known now, so this receive can complete
      // at once; the socket is cancelled before it does.
      loop_->recv(p.b.get(), buf, [&](Result<std::size_t> last) {
        ++last_calls;
        got.push_back(describe(last));
        // Give a second, wrong completion two iterations to show up.
        loop_->defer([&] { loop_->defer([&] { loop_->stop(); }); });
      });
      loop_->cancel(p.b.get());
    });
  });
  run();
  EXPECT_EQ(last_calls, 1);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], "1 bytes");
  EXPECT_EQ(got[1], "0 bytes");
  // Either outcome is correct: it completed first, or the cancel won.
  EXPECT_TRUE(got[2] == "0 bytes" || got[2] == std::strerror(ECANCELED)) << got[2];
}

TEST_P(EventLoopTest, CancelDeliversEcanceledToAPendingAcceptAndPoll) {
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(listener);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;  // autobind to an abstract address
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(sa_family_t)), 0);
  ASSERT_EQ(::listen(listener.get(), 8), 0);
  UniqueFd efd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  ASSERT_TRUE(efd);

  std::optional<int> accept_error, poll_error;
  auto maybe_stop = [&] {
    if (accept_error && poll_error) loop_->stop();
  };
  loop_->accept(listener.get(), [&](Result<UniqueFd> r) {
    accept_error = r ? 0 : r.error().code();
    maybe_stop();
  });
  loop_->poll(efd.get(), POLLIN, [&](Result<std::uint32_t> r) {
    poll_error = r ? 0 : r.error().code();
    maybe_stop();
  });
  when_in_flight([&] {
    loop_->cancel(listener.get());
    loop_->cancel(efd.get());
  });
  run();
  EXPECT_EQ(accept_error, ECANCELED);
  EXPECT_EQ(poll_error, ECANCELED);
}

TEST_P(EventLoopTest, LargeSendCompletesThroughRepeatedPartialSends) {
  SocketPair p = socket_pair();
  // Far more than a socket buffer holds: the sender must loop on partial
  // completions while the receiver drains.
  std::vector<std::byte> data(8 * 1024 * 1024);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>((i * 7 + i / 4096) & 0xff);

  std::size_t sent = 0;
  std::size_t sends = 0;
  std::vector<std::byte> received;
  received.reserve(data.size());
  std::vector<std::byte> chunk(64 * 1024);
  std::optional<Error> failure;

  std::function<void()> send_more = [&] {
    loop_->send(p.a.get(), std::span(data).subspan(sent), [&](Result<std::size_t> r) {
      if (!r) {
        failure = r.error();
        return loop_->stop();
      }
      ++sends;
      sent += *r;
      if (sent < data.size()) send_more();
    });
  };
  std::function<void()> recv_more = [&] {
    loop_->recv(p.b.get(), chunk, [&](Result<std::size_t> r) {
      if (!r) {
        failure = r.error();
        return loop_->stop();
      }
      if (*r == 0) {
        failure = Error(0, "unexpected end of stream");
        return loop_->stop();
      }
      received.insert(received.end(), chunk.begin(), chunk.begin() + static_cast<long>(*r));
      if (received.size() == data.size()) return loop_->stop();
      recv_more();
    });
  };
  send_more();
  recv_more();
  run();
  ASSERT_FALSE(failure) << failure->message();
  EXPECT_EQ(sent, data.size());
  EXPECT_GE(sends, 1u);
  ASSERT_EQ(received.size(), data.size());
  EXPECT_TRUE(received == data) << "received bytes differ from the bytes sent";
}

TEST_P(EventLoopTest, SendToAClosedPeerFailsWithEpipeInsteadOfSignalling) {
  SocketPair p = socket_pair();
  p.b.reset();
  std::optional<Result<std::size_t>> sent;
  loop_->send(p.a.get(), as_bytes("lost"), [&](Result<std::size_t> r) {
    sent = std::move(r);
    loop_->stop();
  });
  run();
  ASSERT_TRUE(sent.has_value());
  ASSERT_FALSE(*sent);
  EXPECT_EQ(sent->error().code(), EPIPE);
}

TEST_P(EventLoopTest, StopEndsRunEvenWithTimersPending) {
  bool late_timer_ran = false;
  loop_->add_timer(1h, [&] { late_timer_ran = true; });
  loop_->defer([&] { loop_->stop(); });
  auto started = std::chrono::steady_clock::now();
  auto r = loop_->run();
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(late_timer_ran);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
}

TEST_P(EventLoopTest, RunCanBeCalledAgainAfterStop) {
  int runs = 0;
  for (int i = 0; i < 3; ++i) {
    loop_->add_timer(0ms, [&] {
      ++runs;
      loop_->stop();
    });
    run();
  }
  EXPECT_EQ(runs, 3);
}

INSTANTIATE_TEST_SUITE_P(Backends, EventLoopTest, ::testing::ValuesIn(kBackends),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return std::string(info.param.name);
                         });

// --- backend selection ----------------------------------------------------------

TEST(LoopSelection, ParsesTheConfiguredChoice) {
  EXPECT_EQ(*parse_loop_choice("auto"), LoopChoice::automatic);
  EXPECT_EQ(*parse_loop_choice("io_uring"), LoopChoice::io_uring);
  EXPECT_EQ(*parse_loop_choice("epoll"), LoopChoice::epoll);
  auto bad = parse_loop_choice("kqueue");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(),
            "unknown event loop backend 'kqueue' (expected auto, io_uring or epoll)");
}

TEST(LoopSelection, ForcedEpollIsEpollWithoutAFallbackReason) {
  auto s = make_event_loop(LoopChoice::epoll);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->loop->backend(), LoopBackend::epoll);
  EXPECT_TRUE(s->fallback_reason.empty());
}

TEST(LoopSelection, AutomaticPrefersIoUringWhenItWorks) {
  auto uring = make_uring_loop();
  if (!uring) GTEST_SKIP() << "io_uring unavailable here: " << uring.error().message();
  auto s = make_event_loop(LoopChoice::automatic);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->loop->backend(), LoopBackend::io_uring);
  EXPECT_TRUE(s->fallback_reason.empty());
}

#if SYMPHONY_HAVE_IO_URING

// Replaces the ring-setup function for one test and restores it after.
class UringSetupOverride {
 public:
  explicit UringSetupOverride(UringSetupFn fn) : saved_(uring_setup_hook()) { uring_setup_hook() = fn; }
  ~UringSetupOverride() { uring_setup_hook() = saved_; }
  UringSetupOverride(const UringSetupOverride&) = delete;
  UringSetupOverride& operator=(const UringSetupOverride&) = delete;

 private:
  UringSetupFn saved_;
};

int setup_eperm(unsigned, io_uring*, io_uring_params*) { return -EPERM; }
int setup_enosys(unsigned, io_uring*, io_uring_params*) { return -ENOSYS; }

// The hint the selector appends for EPERM / ENOSYS depends on the sysctl.
std::string expected_hint(int code) {
  std::ifstream sysctl("/proc/sys/kernel/io_uring_disabled");
  int disabled = 0;
  if (sysctl >> disabled && disabled != 0) {
    return "(kernel.io_uring_disabled=" + std::to_string(disabled) + ")";
  }
  return code == EPERM ? "(blocked by a seccomp profile or security module?)"
                       : "(kernel built without io_uring?)";
}

TEST(LoopSelection, AutomaticFallsBackToEpollWhenRingSetupIsRefused) {
  UringSetupOverride refuse(&setup_eperm);
  auto s = make_event_loop(LoopChoice::automatic);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->loop->backend(), LoopBackend::epoll);
  EXPECT_EQ(s->fallback_reason,
            "io_uring_setup: " + std::string(std::strerror(EPERM)) + " " + expected_hint(EPERM));
}

TEST(LoopSelection, AutomaticExplainsAKernelWithoutIoUring) {
  UringSetupOverride refuse(&setup_enosys);
  auto s = make_event_loop(LoopChoice::automatic);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->loop->backend(), LoopBackend::epoll);
  EXPECT_EQ(s->fallback_reason,
            "io_uring_setup: " + std::string(std::strerror(ENOSYS)) + " " + expected_hint(ENOSYS));
}

TEST(LoopSelection, ForcedIoUringThatCannotBeSetUpIsAnErrorNamingTheCause) {
  UringSetupOverride refuse(&setup_eperm);
  auto s = make_event_loop(LoopChoice::io_uring);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), EPERM);
  // The cause, the hint and the errno text, each once.
  EXPECT_EQ(s.error().message(), "io_uring backend forced but unavailable " +
                                     expected_hint(EPERM) + ": io_uring_setup: " +
                                     std::strerror(EPERM));
}

TEST(LoopSelection, TheHookIsRestoredAfterAnOverride) {
  {
    UringSetupOverride refuse(&setup_eperm);
    EXPECT_FALSE(make_uring_loop());
  }
  EXPECT_NE(uring_setup_hook(), &setup_eperm);
}

// Kernels before 5.19 reject IORING_SETUP_COOP_TASKRUN with EINVAL; the loop
// retries without the flag.
int coop_taskrun_calls = 0;
int setup_without_coop_taskrun(unsigned entries, io_uring* ring, io_uring_params* params) {
  ++coop_taskrun_calls;
  if (params->flags & IORING_SETUP_COOP_TASKRUN) return -EINVAL;
  return io_uring_queue_init_params(entries, ring, params);
}

TEST(LoopSelection, RingSetupRetriesWithoutCoopTaskrunOnEinval) {
  if (auto probe = make_uring_loop(); !probe) {
    GTEST_SKIP() << "io_uring unavailable here: " << probe.error().message();
  }
  UringSetupOverride old_kernel(&setup_without_coop_taskrun);
  coop_taskrun_calls = 0;
  auto loop = make_uring_loop();
  ASSERT_TRUE(loop) << loop.error().message();
  EXPECT_EQ(coop_taskrun_calls, 2);
  EXPECT_EQ((*loop)->backend(), LoopBackend::io_uring);
}

#endif  // SYMPHONY_HAVE_IO_URING

}  // namespace
}  // namespace symphony::ipc
