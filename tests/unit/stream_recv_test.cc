// Receive-path tests: data that arrives before anyone asks, more data than
// any kernel buffer holds, end of stream, cancellation and fd reuse, run
// against both backends so their semantics stay identical.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "ipc/event_loop.h"

#include "tests/support/loop_backends.h"

namespace symphony::ipc {
namespace {

using namespace std::chrono_literals;

using Backend = symphony::testing::LoopBackend;

class StreamRecvTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    auto loop = GetParam().make();
    if (!loop) GTEST_SKIP() << GetParam().name << " unavailable: " << loop.error().message();
    loop_ = std::move(*loop);
  }
  std::pair<UniqueFd, UniqueFd> pair() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    return {UniqueFd(sv[0]), UniqueFd(sv[1])};
  }
  // Receives until `want` bytes arrived or EOF, with small buffers so one
  // arrival is handed out over several recv() calls. Stops the loop.
  void receive_all(int fd, std::size_t want, std::string& got, bool& eof, std::size_t chunk) {
    auto buf = std::make_shared<std::vector<std::byte>>(chunk);
    auto step = std::make_shared<std::function<void()>>();
    *step = [this, fd, want, &got, &eof, buf, step] {
      loop_->recv(fd, *buf, [this, want, &got, &eof, buf, step](Result<std::size_t> r) {
        ASSERT_TRUE(r) << r.error().message();
        if (*r == 0) {
          eof = true;
          loop_->stop();
          return;
        }
        got.append(reinterpret_cast<const char*>(buf->data()), *r);
        if (got.size() >= want) {
          loop_->stop();
          return;
        }
        (*step)();
      });
    };
    (*step)();
    TimerId guard = loop_->add_timer(10s, [this] { loop_->stop(); });
    ASSERT_TRUE(loop_->run());
    loop_->cancel_timer(guard);
    *step = nullptr;  // break the self-reference
  }
  std::unique_ptr<EventLoop> loop_;
};

TEST_P(StreamRecvTest, DataSentBeforeTheRecvArrivesInOrderThroughSmallBuffers) {
  auto [a, b] = pair();
  // Receive once, then let several writes land while nobody is waiting.
  std::string first = "hello";
  ASSERT_EQ(::write(a.get(), first.data(), first.size()), 5);
  std::string got;
  bool eof = false;
  receive_all(b.get(), 5, got, eof, 64);
  ASSERT_EQ(got, "hello");
  std::string expected;
  for (int i = 0; i < 100; ++i) {
    std::string piece = "piece-" + std::to_string(i) + ";";
    ASSERT_EQ(::write(a.get(), piece.data(), piece.size()), static_cast<ssize_t>(piece.size()));
    expected += piece;
  }
  got.clear();
  receive_all(b.get(), expected.size(), got, eof, 7);
  EXPECT_EQ(got, expected);
  EXPECT_FALSE(eof);
}

TEST_P(StreamRecvTest, MoreThanTheBufferRingHoldsArrivesIntactAndInOrder) {
  // Not a structured binding: clang before 16 cannot capture those.
  auto fds = pair();
  UniqueFd& a = fds.first;
  UniqueFd& b = fds.second;
  int big = 4 << 20;
  ::setsockopt(a.get(), SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  // 3 MiB: far more than a socket buffer holds at once.
  std::vector<unsigned char> data(3 << 20);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<unsigned char>(i * 7 + i / 4096);
  std::thread writer([&] {
    std::size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(a.get(), data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n > 0) {
        off += static_cast<std::size_t>(n);
      } else if (errno == EAGAIN) {
        std::this_thread::sleep_for(1ms);  // the reader drains at its own pace
      } else {
        break;
      }
    }
    ::shutdown(a.get(), SHUT_WR);
  });
  std::string got;
  bool eof = false;
  receive_all(b.get(), data.size() + 1, got, eof, 100'000);
  writer.join();
  ASSERT_EQ(got.size(), data.size());
  EXPECT_TRUE(std::equal(data.begin(), data.end(), got.begin(),
                         [](unsigned char x, char y) { return x == static_cast<unsigned char>(y); }));
  EXPECT_TRUE(eof);
}

TEST_P(StreamRecvTest, DataThenEndOfStream) {
  auto [a, b] = pair();
  ASSERT_EQ(::write(a.get(), "bye", 3), 3);
  a.reset();
  std::string got;
  bool eof = false;
  receive_all(b.get(), 1000, got, eof, 64);
  EXPECT_EQ(got, "bye");
  EXPECT_TRUE(eof);
}

TEST_P(StreamRecvTest, CancelFailsAPendingRecvWithECANCELED) {
  auto fds = pair();  // .first, the peer, stays open
  UniqueFd& b = fds.second;
  std::vector<std::byte> buf(64);
  bool canceled = false;
  loop_->recv(b.get(), buf, [&](Result<std::size_t> r) {
    canceled = !r && r.error().code() == ECANCELED;
    loop_->stop();
  });
  loop_->defer([&] { loop_->cancel(b.get()); });
  TimerId guard = loop_->add_timer(10s, [this] { loop_->stop(); });
  ASSERT_TRUE(loop_->run());
  loop_->cancel_timer(guard);
  EXPECT_TRUE(canceled);
}

TEST_P(StreamRecvTest, AReusedFdNumberStartsClean) {
  int number = -1;
  {
    auto [a, b] = pair();
    number = b.get();
    ASSERT_EQ(::write(a.get(), "old data", 8), 8);
    std::string got;
    bool eof = false;
    receive_all(b.get(), 3, got, eof, 3);  // leaves "d data" unread
    loop_->cancel(b.get());
  }
  auto [c, d] = pair();
  if (d.get() != number && c.get() != number) GTEST_SKIP() << "fd number not reused";
  int target = d.get() == number ? d.get() : c.get();
  int peer = target == d.get() ? c.get() : d.get();
  ASSERT_EQ(::write(peer, "new", 3), 3);
  std::string got;
  bool eof = false;
  receive_all(target, 3, got, eof, 64);
  EXPECT_EQ(got, "new");
}

INSTANTIATE_TEST_SUITE_P(Backends, StreamRecvTest,
                         ::testing::ValuesIn(symphony::testing::kLoopBackends),
                         [](const auto& info) { return std::string(info.param.name) == "io_uring" ? "io_uring" : "epoll"; });

}  // namespace
}  // namespace symphony::ipc
