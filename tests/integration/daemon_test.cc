// Integration tests against the real symphonyd: started as a child process in
// user mode, talked to over its real Unix socket, once per event-loop backend.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "ipc/rpc_client.h"
#include "sandbox/cgroup.h"
#include "tests/support/daemon_process.h"

namespace symphony {
namespace {

using testing::DaemonOptions;
using testing::DaemonProcess;

std::string get_string(const msgpack::object& map, std::string_view key) {
  const msgpack::object* v = ipc::map_get(map, key);
  if (v == nullptr || v->type != msgpack::type::STR) return "<missing>";
  return std::string(v->via.str.ptr, v->via.str.size);
}

std::int64_t get_int(const msgpack::object& map, std::string_view key) {
  const msgpack::object* v = ipc::map_get(map, key);
  if (v == nullptr) return -1;
  if (v->type == msgpack::type::POSITIVE_INTEGER) return static_cast<std::int64_t>(v->via.u64);
  if (v->type == msgpack::type::NEGATIVE_INTEGER) return v->via.i64;
  if (v->type == msgpack::type::BOOLEAN) return v->via.boolean ? 1 : 0;
  return -1;
}

// A raw socket for sending bytes no well-behaved client would.
int raw_connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads until EOF (or `timeout`); returns everything read. EOF is reported
// through `closed`.
std::string read_until_eof(int fd, std::chrono::milliseconds timeout, bool* closed) {
  std::string out;
  *closed = false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return out;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return out;
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      *closed = true;
      return out;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
}

// The first symphony.error notification in `bytes`, as "code: message".
std::string error_notification(const std::string& bytes) {
  ipc::rpc::StreamDecoder d({});
  auto buf = d.prepare(bytes.size());
  std::memcpy(buf.data(), bytes.data(), bytes.size());
  d.commit(bytes.size());
  for (;;) {
    auto m = d.next();
    if (m.kind != ipc::rpc::Decoded::Kind::message) return "<none>";
    if (m.message.type == ipc::rpc::MessageType::notification &&
        m.message.method == ipc::rpc::kErrorNotification) {
      return ipc::rpc::describe_error(m.message.params.via.array.ptr[0]);
    }
  }
}

class DaemonTest : public ::testing::TestWithParam<std::string> {
 protected:
  DaemonOptions options(std::vector<std::string> args = {}) {
    DaemonOptions o;
    o.loop_backend = GetParam();
    o.args = std::move(args);
    return o;
  }
};

TEST_P(DaemonTest, StatusReportsWhatIsRunning) {
  DaemonProcess d(options());
  auto c = d.client();
  auto st = c.call("daemon.status");
  ASSERT_TRUE(st) << st.error().message();
  const auto& s = st->get();
  EXPECT_EQ(get_string(s, "loop_backend"), GetParam());
  EXPECT_EQ(get_string(s, "mode"), "user");
  EXPECT_EQ(get_int(s, "pid"), d.pid());
  EXPECT_EQ(get_string(s, "socket"), d.socket());
  EXPECT_EQ(get_string(s, "config_path"), d.config_file());
  EXPECT_EQ(get_string(s, "version"), "0.1.0");
  EXPECT_GE(get_int(s, "uptime_ms"), 0);
  EXPECT_GE(get_int(s, "connections"), 1);
  EXPECT_EQ(get_int(s, "socket_activated"), 0);
  // The cgroup layout the daemon detected, as the sandbox reads it from
  // this process's own view (hybrid on the development machines).
  auto host = sandbox::detect_cgroup_host();
  ASSERT_TRUE(host) << host.error().message();
  EXPECT_EQ(get_string(s, "cgroup_layout"), sandbox::to_string(host->layout));
  EXPECT_NE(get_string(s, "sandbox").find("linux: user, pid, mount"), std::string::npos)
      << get_string(s, "sandbox");
  // The socket is group-accessible, not world-accessible.
  EXPECT_EQ(std::filesystem::status(d.socket()).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                std::filesystem::perms::group_read | std::filesystem::perms::group_write);
}

TEST_P(DaemonTest, HandshakeIsRequiredAndVersioned) {
  DaemonProcess d(options());
  auto raw = ipc::Client::connect(d.socket());
  ASSERT_TRUE(raw);
  auto before = raw->call("daemon.ping");
  ASSERT_FALSE(before);
  EXPECT_NE(before.error().message().find("handshake_required"), std::string::npos);
  auto wrong = raw->call("symphony.hello", 99, "test");
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message().find("protocol_mismatch"), std::string::npos);
  EXPECT_NE(wrong.error().message().find("99"), std::string::npos);
  EXPECT_NE(wrong.error().message().find("speaks 1"), std::string::npos);
  auto hello = raw->hello("test");
  ASSERT_TRUE(hello) << hello.error().message();
  EXPECT_EQ(get_string(hello->get(), "server"), "symphonyd");
  auto pong = raw->call("daemon.ping");
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->get().as<std::string>(), "pong");
  auto unknown = raw->call("no.such.method", 1, 2);
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message().find("unknown_method"), std::string::npos);
}

TEST_P(DaemonTest, ManyClientsPipelineAndGetTheirOwnAnswers) {
  DaemonProcess d(options());
  constexpr int kClients = 8, kRequests = 500;
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      auto c = ipc::Client::connect(d.socket());
      if (!c || !c->hello("pipeline")) return;
      std::map<std::uint32_t, std::int64_t> expected;
      for (int i = 0; i < kRequests; ++i) {
        std::int64_t payload = t * 1'000'000 + i;
        expected[c->queue("daemon.ping", payload)] = payload;
      }
      if (!c->flush()) return;
      int matched = 0;
      while (!expected.empty()) {
        auto m = c->receive();
        if (!m || m->type != ipc::rpc::MessageType::response) return;
        auto it = expected.find(m->id);
        if (it == expected.end() || m->result.as<std::int64_t>() != it->second) return;
        expected.erase(it);
        ++matched;
      }
      if (matched == kRequests) ++good;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(good.load(), kClients);
}

TEST_P(DaemonTest, ThousandMalformedConnectionsThenAGoodOne) {
  DaemonProcess d(options({"--set", "ipc.max_message_size=65536", "--log-level", "info"}));
  const std::vector<std::string> garbage = {
      std::string("\xc1", 1),                                  // reserved byte
      std::string("\xdb\xff\xff\xff\xf0" "abc", 8),            // str32 lying about its length
      std::string(200, '\x91'),                                // 200 nested arrays
      std::string("\xdd\x7f\xff\xff\xff", 5),                  // array32 of 2^31 elements
      std::string("\x94\x00\x01\xa1", 4),                      // truncated request
      std::string("\x93\x00\x01\x02", 4),                      // wrong shape, then close
      std::string("\x94\x05\x01\xa1m\x90", 6),                 // unknown message type 5
  };
  std::mt19937 rng(42);
  int refused = 0;
  for (int i = 0; i < 1000; ++i) {
    int fd = raw_connect(d.socket());
    if (fd < 0) {
      ++refused;
      continue;
    }
    const std::string& g = garbage[static_cast<std::size_t>(i) % garbage.size()];
    ::send(fd, g.data(), g.size(), MSG_NOSIGNAL);
    if (i % 3 == 0) {
      // Some clients wait for the verdict, others hang up at once.
      bool closed = false;
      read_until_eof(fd, std::chrono::milliseconds(20), &closed);
    }
    ::close(fd);
  }
  EXPECT_EQ(refused, 0);
  ASSERT_EQ(::kill(d.pid(), 0), 0) << "daemon died";
  auto c = d.client();
  auto pong = c.call("daemon.ping", std::string("still here"));
  ASSERT_TRUE(pong) << pong.error().message();
  EXPECT_EQ(pong->get().as<std::string>(), "still here");
  auto st = c.call("daemon.status");
  ASSERT_TRUE(st);
  EXPECT_GE(get_int(st->get(), "protocol_errors"), 500);
}

TEST_P(DaemonTest, MalformedBytesGetAnErrorAndTheConnectionCloses) {
  DaemonProcess d(options({"--set", "ipc.max_message_size=4096"}));
  struct Case {
    std::string bytes;
    std::string code;
  };
  std::string big_bin = std::string("\xc5\x20\x00", 3) + std::string(8192, 'x');  // bin16 8 KiB
  std::vector<Case> cases = {
      {std::string("\xc1", 1), "parse_error"},
      {std::string(100, '\x91'), "limit_exceeded"},
      {big_bin, "message_too_large"},
      {std::string("\xdb\x00\x10\x00\x00", 5) + std::string(5000, 'y'), "message_too_large"},
  };
  for (const auto& c : cases) {
    int fd = raw_connect(d.socket());
    ASSERT_GE(fd, 0);
    ::send(fd, c.bytes.data(), c.bytes.size(), MSG_NOSIGNAL);
    bool closed = false;
    std::string got = read_until_eof(fd, std::chrono::seconds(5), &closed);
    ::close(fd);
    EXPECT_TRUE(closed) << c.code;
    SCOPED_TRACE("case " + c.code + ", got " + std::to_string(got.size()) + " bytes");
    EXPECT_EQ(error_notification(got).rfind(c.code + ":", 0), 0u)
        << "expected " << c.code << ", got " << error_notification(got);
  }
  auto c = d.client();
  EXPECT_TRUE(c.call("daemon.ping"));
}

TEST_P(DaemonTest, WrongShapeIsAnsweredAndTheStreamGoesOn) {
  DaemonProcess d(options());
  auto c = d.client();
  // [0, 7, 42, []]: method is not a string; the id is readable.
  const char bad[] = "\x94\x00\x07\x2a\x90";
  ASSERT_TRUE(c.send_raw(std::as_bytes(std::span(bad, 5))));
  auto m = c.receive();
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->type, ipc::rpc::MessageType::response);
  EXPECT_EQ(m->id, 7u);
  EXPECT_NE(ipc::rpc::describe_error(m->error).find("invalid_message"), std::string::npos);
  EXPECT_NE(ipc::rpc::describe_error(m->error).find("method"), std::string::npos);
  auto pong = c.call("daemon.ping", 5);
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->get().as<int>(), 5);
}

TEST_P(DaemonTest, ClientThatNeverReadsIsDisconnected) {
  // 64 KiB of queued responses at most; each ping answers 4 KiB.
  DaemonProcess d(options({"--set", "ipc.max_write_queue=65536", "--set",
                           "ipc.max_message_size=8192"}));
  int fd = raw_connect(d.socket());
  ASSERT_GE(fd, 0);
  int small = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  ipc::rpc::WriteBuffer hello;
  ipc::rpc::write_request(hello, 1, "symphony.hello", 1, "hog");
  ::send(fd, hello.bytes().data(), hello.size(), MSG_NOSIGNAL);
  std::string payload(4000, 'z');
  bool disconnected = false;
  // Bounded: 20 000 requests × 4 KiB answers = 80 MB the daemon must not hold.
  for (int i = 0; i < 20000 && !disconnected; ++i) {
    ipc::rpc::WriteBuffer req;
    ipc::rpc::write_request(req, static_cast<std::uint32_t>(i + 2), "daemon.ping", payload);
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 2000) <= 0) continue;
    if (::send(fd, req.bytes().data(), req.size(), MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
        errno != EAGAIN) {
      disconnected = true;
    }
  }
  ::close(fd);
  EXPECT_TRUE(disconnected) << "the daemon kept a client that never reads";
  auto c = d.client();
  auto st = c.call("daemon.status");
  ASSERT_TRUE(st);
  EXPECT_EQ(get_int(st->get(), "slow_clients"), 1);
  EXPECT_NE(d.log().find("not reading its responses"), std::string::npos);
}

TEST_P(DaemonTest, SigtermDrainsAndExitsCleanly) {
  DaemonProcess d(options());
  auto c = d.client();
  d.send_signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(std::chrono::seconds(10)), 0);
  EXPECT_FALSE(std::filesystem::exists(d.socket())) << "socket file left behind";
  EXPECT_NE(d.log().find("SIGTERM"), std::string::npos);
}

TEST_P(DaemonTest, SighupReloadsAndABadConfigKeepsTheOldOne) {
  DaemonProcess d(options());
  std::filesystem::create_directories(std::filesystem::path(d.config_file()).parent_path());
  {
    std::ofstream f(d.config_file());
    f << "[ipc]\nmax_connections = 3\n";
  }
  d.send_signal(SIGHUP);
  // Reload is asynchronous: wait until the daemon says it is done.
  for (int i = 0; i < 200 && d.log().find("configuration reloaded") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto c = d.client();
  auto st = c.call("daemon.status");
  ASSERT_TRUE(st);
  ASSERT_EQ(st->get().via.map.size > 0, true);
  // The new limit applies to new connections: 3 allowed (c is one of them).
  auto c2 = d.client("second");
  auto c3 = d.client("third");
  auto c4 = ipc::Client::connect(d.socket());
  ASSERT_TRUE(c4);
  auto refused = c4->hello("fourth");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("too_many_connections"), std::string::npos);

  {
    std::ofstream f(d.config_file());
    f << "[ipc]\nmax_connections = \"many\"\n";
  }
  d.send_signal(SIGHUP);
  for (int i = 0; i < 200 && d.log().find("reload failed") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::string log = d.log();
  EXPECT_NE(log.find("reload failed, keeping the running configuration"), std::string::npos);
  EXPECT_NE(log.find("symphonyd.toml:2: ipc.max_connections: expected integer, got string"),
            std::string::npos)
      << log;
  EXPECT_TRUE(c.call("daemon.ping"));
}

TEST_P(DaemonTest, BadConfigurationRefusesToStartAndSaysWhere) {
  auto o = options();
  o.wait_until_serving = false;
  std::string dir = testing::make_temp_dir("symphony-cfg");
  std::string file = dir + "/bad.toml";
  {
    std::ofstream f(file);
    f << "[ipc]\nmax_message_size = 16777216\n\n[access]\nallow_usrs = [\"alice\"]\n";
  }
  o.args = {"--config", file};
  DaemonProcess d(o);
  EXPECT_EQ(d.wait_exit(std::chrono::seconds(10)), 78);
  EXPECT_NE(d.log().find(file + ":5: unknown key 'access.allow_usrs'"), std::string::npos)
      << d.log();
  testing::remove_tree(dir);
}

TEST_P(DaemonTest, SecondDaemonOnTheSameSocketIsRefused) {
  DaemonProcess first(options());
  auto o = options({"--socket", first.socket()});
  o.wait_until_serving = false;
  DaemonProcess second(o);
  EXPECT_EQ(second.wait_exit(std::chrono::seconds(10)), 1);
  EXPECT_NE(second.log().find("another daemon is already listening on " + first.socket()),
            std::string::npos)
      << second.log();
  EXPECT_TRUE(first.client().call("daemon.ping"));
}

TEST_P(DaemonTest, ABusyDaemonThatRefusesTheProbeIsStillSeenAsLive) {
  // The first daemon is full: it answers the second one's probe with a
  // refusal and ends its side; that must not read as a dead listener.
  DaemonProcess first(options({"--set", "ipc.max_connections=1"}));
  auto holder = first.client("holder");
  auto o = options({"--socket", first.socket()});
  o.wait_until_serving = false;
  DaemonProcess second(o);
  EXPECT_EQ(second.wait_exit(std::chrono::seconds(10)), 1);
  EXPECT_NE(second.log().find("another daemon is already listening"), std::string::npos)
      << second.log();
  EXPECT_TRUE(std::filesystem::exists(first.socket()));
  EXPECT_TRUE(holder.call("daemon.ping"));
}

TEST_P(DaemonTest, StaleSocketFromACrashIsReplaced) {
  std::string socket;
  {
    DaemonProcess first(options());
    socket = first.socket();
    first.send_signal(SIGKILL);
    first.wait_exit(std::chrono::seconds(10));
    ASSERT_TRUE(std::filesystem::exists(socket));
    // Start a second daemon in the same runtime directory layout.
    auto o = options({"--socket", socket});
    DaemonProcess second(o);
    auto c = ipc::Client::connect(socket);
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->hello("after-crash"));
  }
}

// --- systemd protocol -----------------------------------------------------------

// A datagram socket standing in for systemd's notification socket.
class NotifySocket {
 public:
  NotifySocket() {
    dir_ = testing::make_temp_dir("symphony-notify");
    path_ = dir_ + "/notify";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof(a.sun_path) - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  }
  ~NotifySocket() {
    ::close(fd_);
    testing::remove_tree(dir_);
  }
  const std::string& path() const { return path_; }
  // The next datagram, or "" after `timeout`.
  std::string next(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return "";
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
  }
  // Skips datagrams until one contains `needle`.
  std::string wait_for(const std::string& needle) {
    for (int i = 0; i < 50; ++i) {
      std::string m = next();
      if (m.empty()) return "";
      if (m.find(needle) != std::string::npos) return m;
    }
    return "";
  }

 private:
  std::string dir_, path_;
  int fd_ = -1;
};

TEST_P(DaemonTest, SpeaksTheSystemdNotifyProtocol) {
  NotifySocket notify;
  auto o = options();
  o.env = {"NOTIFY_SOCKET=" + notify.path(), "WATCHDOG_USEC=200000"};
  DaemonProcess d(o);
  std::string ready = notify.wait_for("READY=1");
  EXPECT_NE(ready.find("STATUS=Serving on " + d.socket()), std::string::npos) << ready;
  EXPECT_NE(notify.wait_for("WATCHDOG=1"), "");
  d.send_signal(SIGHUP);
  std::string reloading = notify.wait_for("RELOADING=1");
  EXPECT_NE(reloading.find("MONOTONIC_USEC="), std::string::npos) << reloading;
  EXPECT_NE(notify.wait_for("READY=1"), "");
  d.send_signal(SIGTERM);
  EXPECT_NE(notify.wait_for("STOPPING=1"), "");
  EXPECT_EQ(d.wait_exit(std::chrono::seconds(10)), 0);
}

TEST_P(DaemonTest, AcceptsASocketFromSocketActivation) {
  std::string dir = testing::make_temp_dir("symphony-activation");
  std::string path = dir + "/activated.sock";
  int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  auto o = options();
  o.wait_until_serving = false;
  o.env = {"LISTEN_FDS=1"};
  // systemd's contract: the socket is fd 3 and LISTEN_PID names the daemon.
  o.in_child = [listener] { ::dup2(listener, 3); };
  o.env.push_back("LISTEN_PID=SELF");
  DaemonProcess d(o);
  ::close(listener);
  bool serving = false;
  for (int i = 0; i < 1000 && !serving; ++i) {
    if (auto c = ipc::Client::connect(path)) serving = static_cast<bool>(c->hello("activation"));
    if (!serving) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(serving) << d.log();
  auto c = ipc::Client::connect(path);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->hello("activation"));
  auto st = c->call("daemon.status");
  ASSERT_TRUE(st);
  EXPECT_EQ(get_int(st->get(), "socket_activated"), 1);
  EXPECT_EQ(get_string(st->get(), "socket"), path);
  d.send_signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(std::chrono::seconds(10)), 0);
  // The socket belongs to systemd: the daemon must not remove it.
  EXPECT_TRUE(std::filesystem::exists(path));
  testing::remove_tree(dir);
}

// --- access control --------------------------------------------------------------

TEST_P(DaemonTest, RefusesPeersOutsideTheAllowListAndLogsThem) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to connect as another uid";
  // World-reachable socket so that 'nobody' can connect at all; the
  // credential check is what must refuse it.
  std::string dir = testing::make_temp_dir("symphony-acl");
  ::chmod(dir.c_str(), 0755);
  std::string path = dir + "/acl.sock";
  DaemonProcess d(options({"--socket", path, "--set", "ipc.socket_mode=438"}));
  const uid_t nobody = 65534;
  auto connect_as_nobody = [&]() -> std::string {
    int pipefd[2];
    EXPECT_EQ(::pipe(pipefd), 0);
    pid_t child = ::fork();
    if (child == 0) {
      ::close(pipefd[0]);
      if (::setgid(nobody) != 0 || ::setuid(nobody) != 0) ::_exit(3);
      int fd = raw_connect(path);
      if (fd < 0) ::_exit(4);
      ipc::rpc::WriteBuffer hello;
      ipc::rpc::write_request(hello, 1, "symphony.hello", 1, "nobody");
      ::send(fd, hello.bytes().data(), hello.size(), MSG_NOSIGNAL);
      bool closed = false;
      std::string got = read_until_eof(fd, std::chrono::seconds(5), &closed);
      std::string verdict = error_notification(got);
      if (verdict == "<none>") verdict = "answered";
      ::write(pipefd[1], verdict.data(), verdict.size());
      ::_exit(0);
    }
    ::close(pipefd[1]);
    std::string verdict;
    char buf[512];
    ssize_t n;
    while ((n = ::read(pipefd[0], buf, sizeof(buf))) > 0) verdict.append(buf, static_cast<std::size_t>(n));
    ::close(pipefd[0]);
    ::waitpid(child, nullptr, 0);
    return verdict;
  };
  std::string verdict = connect_as_nobody();
  EXPECT_EQ(verdict.rfind("access_denied:", 0), 0u) << verdict;
  std::string log = d.log();
  EXPECT_NE(log.find("refused connection from uid 65534"), std::string::npos) << log;
  d.send_signal(SIGTERM);
  ASSERT_EQ(d.wait_exit(std::chrono::seconds(10)), 0);

  // Once allowed by configuration, the same peer is served.
  DaemonProcess allowed(options({"--socket", path, "--set", "ipc.socket_mode=438", "--set",
                                 "access.allow_users=nobody"}));
  EXPECT_EQ(connect_as_nobody(), "answered");
  testing::remove_tree(dir);
}

INSTANTIATE_TEST_SUITE_P(Backends, DaemonTest, ::testing::Values("io_uring", "epoll"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace symphony
