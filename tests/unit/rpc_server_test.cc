// Unit tests of the msgpack-rpc server (ipc/rpc_server.h) and the blocking
// client (ipc/rpc_client.h) over a real Unix socket in a temporary directory.
// The server's loop runs on its own thread; every Server call happens on that
// thread (through registered methods) or while it is not running. The test
// thread talks to it only through sockets, and stops it by writing to an
// eventfd the loop polls. Every case runs against both loop backends.
#include "ipc/rpc_server.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>
#include <thread>

#include "ipc/rpc_client.h"

#include "tests/support/loop_backends.h"

namespace symphony::ipc {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::StartsWith;

using Backend = symphony::testing::LoopBackend;

constexpr const auto& kBackends = symphony::testing::kLoopBackends;

// The daemon's answer to a failed call ("code: message"), the local error
// when the call failed here, or a marker when it unexpectedly succeeded.
std::string failure_of(const Result<msgpack::object_handle>& r) {
  if (r) return "<no error>";
  return r.error().code() == EREMOTEIO ? r.error().context() : r.error().message();
}

std::string as_string(const msgpack::object& o) {
  if (o.type != msgpack::type::STR) {
    ADD_FAILURE() << "expected a string, got " << rpc::type_name(o);
    return {};
  }
  return {o.via.str.ptr, o.via.str.size};
}

class RpcServerTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    auto loop = GetParam().make();
    if (!loop) {
      GTEST_SKIP() << GetParam().name << " backend unavailable here: " << loop.error().message();
    }
    loop_ = std::move(*loop);
    std::string tmpl = (std::filesystem::temp_directory_path() / "symphony-rpc-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << tmpl << ": " << std::strerror(errno);
    dir_ = tmpl;
    socket_ = dir_ + "/symphonyd.sock";
    stop_fd_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    ASSERT_TRUE(stop_fd_);
    options_.server_version = "1.2.3";
  }

  void TearDown() override {
    stop();
    // The server first: it closes every connection, so the held responders
    // destroyed next find their connection closed and write nothing.
    server_.reset();
    held_.clear();
    loop_.reset();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  // Creates the server with the test methods and its listener; the loop is
  // not running yet.
  void prepare(AccessPolicy policy, ListenOptions listen_options = {}) {
    server_ = std::make_unique<Server>(*loop_, options_, std::move(policy));
    add_methods();
    auto listener = listen(*loop_, socket_, listen_options);
    ASSERT_TRUE(listener) << listener.error().message();
    server_->add_listener(std::move(*listener));
  }

  // Runs the loop on its own thread until stop() or a method stops it.
  void run_loop() {
    loop_->poll(stop_fd_.get(), POLLIN, [this](Result<std::uint32_t>) { loop_->stop(); });
    // Turns a lost response into failing calls instead of a hang: closing
    // every connection ends the clients' blocking reads.
    loop_->add_timer(30s, [this] {
      watchdog_fired_ = true;
      server_->drain(0ms, [this] { loop_->stop(); });
    });
    thread_ = std::thread([this] { run_result_ = loop_->run(); });
  }

  void start(AccessPolicy policy = AccessPolicy::make(::getuid(), {}, {})) {
    prepare(std::move(policy));
    run_loop();
  }

  // Stops the loop (if it still runs) and waits for its thread. Afterwards
  // the test thread may look at the server.
  void stop() {
    if (!thread_.joinable()) return;
    std::uint64_t one = 1;
    EXPECT_EQ(::write(stop_fd_.get(), &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
    join_loop();
  }

  // Waits for a loop that stops by itself (a drain's done callback).
  void join_loop() {
    thread_.join();
    EXPECT_TRUE(run_result_) << run_result_.error().message();
    EXPECT_FALSE(watchdog_fired_) << "the server was stopped by the 30 s watchdog";
  }

  // Throws on failure, which fails the test (the loop thread is still
  // stopped by TearDown).
  Client connect() {
    auto c = Client::connect(socket_);
    if (!c) throw std::runtime_error(c.error().message());
    return std::move(*c);
  }

  Client connect_and_hello(std::string_view name = "unit-test") {
    Client c = connect();
    auto r = c.hello(name);
    EXPECT_TRUE(r) << failure_of(r);
    return c;
  }

  void add_methods() {
    // Answers with its first argument.
    server_->add_method("test.echo", [](const CallContext& call, Responder& r) {
      const auto& p = call.params.via.array;
      if (p.size != 1) return r.fail(rpc::ErrorCode::invalid_params, "test.echo expects [value]");
      r.reply_with([&](rpc::Packer& pk) { pk.pack(p.ptr[0]); });
    });
    // [delay_ms, value]: answers `value` from a timer, after the method returned.
    server_->add_method("test.later", [this](const CallContext& call, Responder& r) {
      const auto& p = call.params.via.array;
      auto delay = std::chrono::milliseconds(p.ptr[0].as<int>());
      auto value = std::make_shared<std::string>(p.ptr[1].as<std::string>());
      auto responder = std::make_shared<Responder>(std::move(r));
      loop_->add_timer(delay, [responder, value] { responder->reply(*value); });
    });
    // Keeps the request unanswered until test.drain releases it.
    server_->add_method("test.hold", [this](const CallContext&, Responder& r) {
      held_.push_back(std::move(r));
    });
    // [size]: a string of `size` bytes.
    server_->add_method("test.blob", [](const CallContext& call, Responder& r) {
      r.reply(std::string(call.params.via.array.ptr[0].as<std::size_t>(), 'b'));
    });
    // Who the server thinks we are.
    server_->add_method("test.whoami", [](const CallContext& call, Responder& r) {
      r.reply_with([&](rpc::Packer& pk) {
        pk.pack_array(4);
        pk.pack(call.client_name);
        pk.pack(call.connection_id);
        pk.pack(call.peer.uid);
        pk.pack(call.peer.pid);
      });
    });
    server_->add_method("test.note", [this](const CallContext&, Responder&) { ++notes_; });
    server_->add_method("test.notes", [this](const CallContext&, Responder& r) { r.reply(notes_); });
    server_->add_method("test.stats", [this](const CallContext&, Responder& r) {
      const ServerStats& s = server_->stats();
      std::map<std::string, std::uint64_t> m{{"accepted", s.accepted},
                                             {"refused", s.refused},
                                             {"requests", s.requests},
                                             {"protocol_errors", s.protocol_errors},
                                             {"slow_clients", s.slow_clients},
                                             {"connections", server_->connection_count()}};
      r.reply(m);
    });
    // [deadline_ms, release_held]: answers, then drains the server; when
    // `release_held`, the held requests are answered right after. The loop
    // stops once the drain is done.
    server_->add_method("test.drain", [this](const CallContext& call, Responder& r) {
      const auto& p = call.params.via.array;
      auto deadline = std::chrono::milliseconds(p.ptr[0].as<int>());
      bool release = p.ptr[1].as<bool>();
      r.reply(true);
      server_->drain(deadline, [this] {
        drained_ = true;
        loop_->stop();
      });
      if (release) {
        loop_->defer([this] {
          for (auto& h : held_) h.reply(std::string("released"));
        });
      }
    });
  }

  std::map<std::string, std::uint64_t> stats(Client& c) {
    auto r = c.call("test.stats");
    EXPECT_TRUE(r) << failure_of(r);
    if (!r) return {};
    return r->get().as<std::map<std::string, std::uint64_t>>();
  }

  ServerOptions options_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  Result<void> run_result_;
  std::atomic<bool> watchdog_fired_ = false;
  UniqueFd stop_fd_;
  std::string dir_;
  std::string socket_;
  // Loop-thread state, read by the test thread only after stop().
  std::vector<Responder> held_;
  std::uint64_t notes_ = 0;
  bool drained_ = false;
};

TEST_P(RpcServerTest, HelloThenARegisteredMethod) {
  start();
  Client c = connect();
  auto hello = c.hello("unit-test");
  ASSERT_TRUE(hello) << failure_of(hello);
  const msgpack::object& h = hello->get();
  ASSERT_NE(map_get(h, "protocol"), nullptr);
  EXPECT_EQ(map_get(h, "protocol")->as<std::uint32_t>(), 1u);
  EXPECT_EQ(as_string(*map_get(h, "server")), "symphonyd");
  EXPECT_EQ(as_string(*map_get(h, "version")), "1.2.3");
  ASSERT_NE(map_get(h, "connection"), nullptr);
  std::uint64_t connection = map_get(h, "connection")->as<std::uint64_t>();
  EXPECT_GT(connection, 0u);

  auto echo = c.call("test.echo", std::string("hello, symphony"));
  ASSERT_TRUE(echo) << failure_of(echo);
  EXPECT_EQ(as_string(echo->get()), "hello, symphony");

  auto who = c.call("test.whoami");
  ASSERT_TRUE(who) << failure_of(who);
  const auto& w = who->get().via.array;
  ASSERT_EQ(w.size, 4u);
  EXPECT_EQ(as_string(w.ptr[0]), "unit-test");
  EXPECT_EQ(w.ptr[1].as<std::uint64_t>(), connection);
  EXPECT_EQ(w.ptr[2].as<std::uint32_t>(), ::getuid());
  EXPECT_EQ(w.ptr[3].as<std::int32_t>(), ::getpid());
}

TEST_P(RpcServerTest, MethodBeforeHelloIsHandshakeRequired) {
  start();
  Client c = connect();
  auto r = c.call("test.echo", 1);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EREMOTEIO);
  EXPECT_EQ(r.error().context(),
            "handshake_required: call symphony.hello [1, \"<client name>\"] before 'test.echo'");
  // The connection stays usable: hello now, then the call works.
  ASSERT_TRUE(c.hello("late"));
  EXPECT_TRUE(c.call("test.echo", 1));
}

TEST_P(RpcServerTest, ProtocolMismatchNamesBothVersions) {
  start();
  Client c = connect();
  auto r = c.call("symphony.hello", 99u, std::string("future-cli"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().context(),
            "protocol_mismatch: protocol version mismatch: the client speaks 99, symphonyd 1.2.3 "
            "speaks 1");
  // Still not past the handshake.
  EXPECT_THAT(failure_of(c.call("test.echo", 1)), StartsWith("handshake_required:"));
}

TEST_P(RpcServerTest, HelloWithBadParamsIsInvalidParams) {
  start();
  Client c = connect();
  auto r = c.call("symphony.hello", std::string("1"), std::string("cli"));
  EXPECT_EQ(failure_of(r),
            "invalid_params: symphony.hello expects [protocol_version (integer), client_name "
            "(string)]");
}

TEST_P(RpcServerTest, UnknownMethod) {
  start();
  Client c = connect_and_hello();
  auto r = c.call("pit.frobnicate", 1, 2);
  EXPECT_EQ(failure_of(r), "unknown_method: unknown method 'pit.frobnicate'");
  EXPECT_TRUE(c.call("test.echo", 3));
}

TEST_P(RpcServerTest, MethodErrorsReachTheClient) {
  start();
  Client c = connect_and_hello();
  EXPECT_EQ(failure_of(c.call("test.echo", 1, 2)), "invalid_params: test.echo expects [value]");
}

TEST_P(RpcServerTest, PipelinedRequestsAreAllAnsweredWithMatchingIds) {
  start();
  Client c = connect_and_hello();
  // About 120 KiB of requests: more than one read, so some straddle reads.
  std::map<std::uint32_t, std::string> expected;
  for (int i = 0; i < 1000; ++i) {
    std::string value = std::string(100, 'v') + std::to_string(i);
    expected[c.queue("test.echo", value)] = value;
  }
  ASSERT_TRUE(c.flush());

  std::set<std::uint32_t> seen;
  for (int i = 0; i < 1000; ++i) {
    auto m = c.receive();
    ASSERT_TRUE(m) << m.error().message();
    ASSERT_EQ(m->type, rpc::MessageType::response);
    ASSERT_EQ(m->error.type, msgpack::type::NIL) << rpc::describe_error(m->error);
    auto it = expected.find(m->id);
    ASSERT_NE(it, expected.end()) << "response to unknown id " << m->id;
    EXPECT_EQ(as_string(m->result), it->second) << "id " << m->id;
    EXPECT_TRUE(seen.insert(m->id).second) << "second response to id " << m->id;
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST_P(RpcServerTest, AsyncMethodAnswersLaterAndOutOfOrder) {
  start();
  Client c = connect_and_hello();
  std::uint32_t slow = c.queue("test.later", 1, std::string("slow"));
  std::uint32_t fast = c.queue("test.echo", std::string("fast"));
  ASSERT_TRUE(c.flush());

  auto first = c.receive();
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(first->id, fast);
  EXPECT_EQ(as_string(first->result), "fast");
  auto second = c.receive();
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(second->id, slow);
  EXPECT_EQ(as_string(second->result), "slow");
}

TEST_P(RpcServerTest, NotificationsAreDispatchedButNeverAnswered) {
  start();
  Client c = connect_and_hello();
  rpc::WriteBuffer notes;
  rpc::write_notification(notes, "test.note");
  rpc::write_notification(notes, "test.note");
  rpc::write_notification(notes, "no.such.method");  // no answer either
  ASSERT_TRUE(c.send_raw(notes.bytes()));
  std::uint32_t id = c.queue("test.notes");
  ASSERT_TRUE(c.flush());
  auto m = c.receive();
  ASSERT_TRUE(m) << m.error().message();
  // The first thing back is the answer to the request, not to a notification.
  ASSERT_EQ(m->type, rpc::MessageType::response);
  EXPECT_EQ(m->id, id);
  EXPECT_EQ(m->result.as<std::uint64_t>(), 2u);
}

TEST_P(RpcServerTest, MisshapenMessagesAreAnsweredAndTheConnectionStays) {
  start();
  Client c = connect_and_hello();
  // Not an array: no id to answer, so an error notification.
  rpc::WriteBuffer junk;
  rpc::Packer(junk).pack(5);
  ASSERT_TRUE(c.send_raw(junk.bytes()));
  auto m = c.receive();
  ASSERT_TRUE(m) << m.error().message();
  ASSERT_EQ(m->type, rpc::MessageType::notification);
  EXPECT_EQ(m->method, rpc::kErrorNotification);
  EXPECT_EQ(rpc::describe_error(m->params.via.array.ptr[0]),
            "invalid_message: a message must be an array, got integer");

  // A request with a non-string method: answered under its id.
  rpc::WriteBuffer bad;
  rpc::Packer pk(bad);
  pk.pack_array(4);
  pk.pack(0);
  pk.pack(4000);
  pk.pack(7);
  pk.pack_array(0);
  ASSERT_TRUE(c.send_raw(bad.bytes()));
  EXPECT_EQ(failure_of(c.wait_for(4000)),
            "invalid_message: method (element 2) must be a string, got integer");

  EXPECT_TRUE(c.call("test.echo", 1));
  EXPECT_EQ(stats(c)["protocol_errors"], 2u);
}

TEST_P(RpcServerTest, MalformedBytesCloseTheConnectionAfterSayingWhy) {
  start();
  Client c = connect_and_hello();
  const std::byte garbage[] = {std::byte{0xc1}};
  ASSERT_TRUE(c.send_raw(garbage));
  auto m = c.receive();
  ASSERT_TRUE(m) << m.error().message();
  ASSERT_EQ(m->method, rpc::kErrorNotification);
  EXPECT_THAT(rpc::describe_error(m->params.via.array.ptr[0]), StartsWith("parse_error: "));
  auto after = c.receive();
  EXPECT_FALSE(after);

  // Only that connection went down.
  Client other = connect_and_hello();
  EXPECT_TRUE(other.call("test.echo", 1));
}

TEST_P(RpcServerTest, OversizedMessageClosesTheConnection) {
  options_.limits.max_message_size = 4096;
  start();
  Client c = connect_and_hello();
  std::uint32_t id = c.queue("test.echo", std::string(10'000, 'x'));
  ASSERT_TRUE(c.flush());
  // The wording depends on how much of the message the server had seen.
  EXPECT_THAT(failure_of(c.wait_for(id)), StartsWith("message_too_large: "));
  EXPECT_FALSE(c.receive());
}

// A client in a child process running as another user: the only way for a
// root test run to be refused (root is always allowed).
struct ChildClient {
  pid_t pid = -1;
  UniqueFd output;  // what the child read from the server, after a status byte
};

// Forks a child that becomes uid and gid `id`, connects to `socket` and
// copies everything the server sends (until it closes) into the pipe, after
// 'S', or 'F' and the reason it could not. Call while the process has one
// thread: before the loop thread starts.
ChildClient spawn_client_as(std::uint32_t id, const std::string& socket) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(out[0]);
    auto fail = [&](const char* what) {
      std::string msg = std::string("F") + what + ": " + std::strerror(errno);
      (void)!::write(out[1], msg.data(), msg.size());
      ::_exit(1);
    };
    if (::setgroups(0, nullptr) != 0) fail("setgroups");
    if (::setresgid(id, id, id) != 0) fail("setresgid");
    if (::setresuid(id, id, id) != 0) fail("setresuid");
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socket.c_str(), socket.size());
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      fail("connect");
    }
    (void)!::write(out[1], "S", 1);
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) {
      (void)!::write(out[1], buf, static_cast<std::size_t>(n));
    }
    ::_exit(0);
  }
  ::close(out[1]);
  if (pid < 0) {
    ::close(out[0]);
    return {};
  }
  return {pid, UniqueFd(out[0])};
}

// Waits for the child; returns what it read, or an error saying why not.
Result<std::string> collect(ChildClient& child) {
  if (child.pid < 0) return Error(0, "could not fork a client");
  std::string all;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(child.output.get(), buf, sizeof(buf))) > 0) {
    all.append(buf, static_cast<std::size_t>(n));
  }
  int status = 0;
  ::waitpid(child.pid, &status, 0);
  if (all.empty()) return Error(0, "the client process reported nothing");
  if (all[0] != 'S') return Error(0, all.substr(1));
  return all.substr(1);
}

// Decodes the first message of `bytes`.
Result<rpc::Message> first_message(const std::string& bytes) {
  rpc::StreamDecoder decoder({});
  auto buf = decoder.prepare(bytes.size());
  std::memcpy(buf.data(), bytes.data(), bytes.size());
  decoder.commit(bytes.size());
  rpc::Decoded d = decoder.next();
  if (d.kind != rpc::Decoded::Kind::message) return Error(0, "no message: " + d.problem);
  return std::move(d.message);
}

TEST(ServerAccessPolicy, RootIsAlwaysAllowedAndOthersOnlyWhenListed) {
  // The check behind the refusal, with credentials as the kernel reports them.
  AccessPolicy policy = AccessPolicy::make(4000, {}, {});
  PeerCredentials root;
  PeerCredentials stranger;
  stranger.uid = stranger.gid = 4001;
  EXPECT_TRUE(policy.allows(root));
  EXPECT_FALSE(policy.allows(stranger));
}

TEST_P(RpcServerTest, PeerNotInThePolicyIsRefusedWithAccessDenied) {
  std::uint32_t denied_uid = 0;
  Result<rpc::Message> m = Error(0, "nothing received");
  if (::getuid() == 0) {
    // Root is always allowed, so a child process drops to `nobody`.
    denied_uid = 65534;
    ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
    prepare(AccessPolicy::make(0, {}, {}), ListenOptions{.mode = 0666});
    ChildClient child = spawn_client_as(denied_uid, socket_);
    run_loop();
    auto bytes = collect(child);
    if (!bytes) GTEST_SKIP() << "cannot run a client as uid 65534: " << bytes.error().message();
    m = first_message(*bytes);
  } else {
    denied_uid = ::getuid();
    start(AccessPolicy::make(::getuid() + 1, {}, {}));
    Client c = connect();
    // Read only: the server may have closed before a request of ours arrived.
    m = c.receive();
    EXPECT_FALSE(c.receive());
  }
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->type, rpc::MessageType::notification);
  EXPECT_EQ(m->method, rpc::kErrorNotification);
  EXPECT_EQ(rpc::describe_error(m->params.via.array.ptr[0]),
            "access_denied: access denied: uid " + std::to_string(denied_uid) +
                " is not allowed to use this daemon (allowed: root, the daemon's user and the "
                "configured users and groups)");
  stop();
  EXPECT_EQ(server_->stats().refused, 1u);
  EXPECT_EQ(server_->stats().accepted, 0u);
}

TEST_P(RpcServerTest, ConnectionsOverTheLimitAreRefused) {
  options_.max_connections = 1;
  start();
  Client first = connect_and_hello("first");
  Client second = connect();
  auto m = second.receive();
  ASSERT_TRUE(m) << m.error().message();
  ASSERT_EQ(m->method, rpc::kErrorNotification);
  EXPECT_EQ(rpc::describe_error(m->params.via.array.ptr[0]),
            "too_many_connections: too many connections (limit 1)");
  EXPECT_FALSE(second.receive());
  auto s = stats(first);
  EXPECT_EQ(s["refused"], 1u);
  EXPECT_EQ(s["accepted"], 1u);
}

TEST_P(RpcServerTest, AClientThatNeverReadsIsDisconnectedAndOthersKeepWorking) {
  options_.max_write_queue = 64 * 1024;
  start();
  Client slow = connect_and_hello("slow");
  std::uint32_t last = 0;
  // 200 responses of 16 KiB each: far more than the queue limit plus what
  // the socket buffers hold.
  for (int i = 0; i < 200; ++i) last = slow.queue("test.blob", 16 * 1024);
  ASSERT_TRUE(slow.flush());

  Client good = connect_and_hello("good");
  auto echo = good.call("test.echo", std::string("still here"));
  ASSERT_TRUE(echo) << failure_of(echo);
  EXPECT_EQ(as_string(echo->get()), "still here");

  // The slow client finds its connection closed before its last answer.
  auto r = slow.wait_for(last);
  EXPECT_FALSE(r);
  auto s = stats(good);
  EXPECT_EQ(s["slow_clients"], 1u);
  EXPECT_EQ(s["connections"], 1u);
}

TEST_P(RpcServerTest, DrainClosesIdleConnectionsAndRunsDone) {
  start();
  Client a = connect_and_hello("a");
  Client b = connect_and_hello("b");
  auto r = a.call("test.drain", 5000, false);
  ASSERT_TRUE(r) << failure_of(r);
  EXPECT_TRUE(r->get().as<bool>());
  // Both connections are closed by the server.
  EXPECT_FALSE(a.receive());
  EXPECT_FALSE(b.receive());
  join_loop();  // the drain's done callback stops the loop
  EXPECT_TRUE(drained_);
  EXPECT_EQ(server_->connection_count(), 0u);
  // The listener is gone with its socket file.
  EXPECT_FALSE(std::filesystem::exists(socket_));
  EXPECT_FALSE(Client::connect(socket_));
}

TEST_P(RpcServerTest, DrainWaitsForOutstandingRequests) {
  start();
  Client c = connect_and_hello();
  std::uint32_t held = c.queue("test.hold");
  std::uint32_t drain = c.queue("test.drain", 5000, true);
  ASSERT_TRUE(c.flush());

  auto first = c.receive();
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(first->id, drain);
  auto second = c.receive();
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(second->id, held);
  EXPECT_EQ(as_string(second->result), "released");
  EXPECT_FALSE(c.receive());
  join_loop();
  EXPECT_TRUE(drained_);
}

TEST_P(RpcServerTest, DrainForceClosesWhatIsLeftAtTheDeadline) {
  start();
  Client c = connect_and_hello();
  std::uint32_t held = c.queue("test.hold");
  std::uint32_t drain = c.queue("test.drain", 20, false);
  ASSERT_TRUE(c.flush());
  auto first = c.receive();
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(first->id, drain);
  // The held request is never answered: the deadline closes the connection.
  auto r = c.wait_for(held);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().code(), EREMOTEIO) << r.error().message();
  join_loop();
  EXPECT_TRUE(drained_);
  EXPECT_EQ(server_->connection_count(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, RpcServerTest, ::testing::ValuesIn(kBackends),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace symphony::ipc
