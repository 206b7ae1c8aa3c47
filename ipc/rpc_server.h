// The msgpack-rpc server: accepts connections from any Listener, checks each
// peer against the AccessPolicy, decodes the stream under limits, enforces the
// `symphony.hello` handshake, dispatches requests to registered methods and
// writes responses in whatever order the methods answer. Bad input never
// takes more than its own connection down; a client that does not read its
// responses is disconnected once its write queue passes the limit.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ipc/access_policy.h"
#include "ipc/event_loop.h"
#include "ipc/msgpack_rpc.h"
#include "ipc/transport.h"

namespace symphony::ipc {

struct ServerOptions {
  rpc::DecodeLimits limits;
  std::size_t max_write_queue = 32 * 1024 * 1024;  // bytes of unsent responses per connection
  std::size_t max_connections = 1024;
  std::size_t read_chunk = 64 * 1024;
  std::string server_name = "symphonyd";
  std::string server_version;
  std::uint32_t protocol_version = 1;
};

class Connection;

// Answers one request, now or later (a method may move it out and keep it).
// Answering twice is ignored. Destroying an unanswered Responder answers
// internal_error, so a client never waits forever. For notifications every
// call is a no-op.
class Responder {
 public:
  Responder() = default;
  Responder(std::weak_ptr<Connection> conn, std::uint32_t id, bool expects_reply)
      : conn_(std::move(conn)), id_(id), pending_(expects_reply) {}
  Responder(Responder&& other) noexcept;
  Responder& operator=(Responder&& other) noexcept;
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;
  ~Responder();

  // `pack` packs exactly one msgpack object: the result.
  void reply_with(const std::function<void(rpc::Packer&)>& pack);
  template <class T>
  void reply(const T& value) {
    reply_with([&](rpc::Packer& pk) { pk.pack(value); });
  }
  void fail(rpc::ErrorCode code, std::string_view message);
  // Before the answer: sends the notification [2, method, [obj]] on the
  // asking connection, `pack` packing obj (a request that streams events,
  // such as workflow.watch). A no-op once answered or disconnected.
  void notify(std::string_view method, const std::function<void(rpc::Packer&)>& pack);
  bool pending() const { return pending_; }
  // Whether the connection that asked is still open (a method that answers
  // late can drop what it would have handed over).
  bool connected() const { return !conn_.expired(); }

 private:
  std::weak_ptr<Connection> conn_;
  std::uint32_t id_ = 0;
  bool pending_ = false;
};

struct CallContext {
  std::string_view method;
  const msgpack::object& params;  // an array
  const PeerCredentials& peer;
  std::uint64_t connection_id;
  std::string_view client_name;  // from symphony.hello
};

using Method = std::function<void(const CallContext& call, Responder& responder)>;

struct ServerStats {
  std::uint64_t accepted = 0;
  std::uint64_t refused = 0;          // access denied or over max_connections
  std::uint64_t requests = 0;
  std::uint64_t protocol_errors = 0;  // malformed or misshapen input
  std::uint64_t slow_clients = 0;     // disconnected for not reading
};

class Server {
 public:
  Server(EventLoop& loop, ServerOptions options, AccessPolicy policy);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Registers a method; replaces one of the same name.
  void add_method(std::string name, Method method);
  // Called (on the loop thread) after a connection is gone, with its id, so
  // services can drop per-connection state. Handlers run in the order added.
  void on_disconnect(std::function<void(std::uint64_t connection_id)> handler);
  // Starts accepting on `listener`; the server owns it from now on.
  void add_listener(std::unique_ptr<Listener> listener);
  // Replaces the policy and limits for connections accepted from now on
  // (configuration reload); open connections keep what they started with.
  void reconfigure(ServerOptions options, AccessPolicy policy);

  std::size_t connection_count() const { return connections_.size(); }
  const ServerStats& stats() const { return stats_; }
  EventLoop& loop() { return loop_; }

  // Graceful drain: stop accepting and stop reading new requests, close each
  // connection once the requests already received are answered and the
  // responses written, and force-close what is left after `deadline`.
  // `done` runs once every connection is gone.
  void drain(std::chrono::milliseconds deadline, std::function<void()> done);

 private:
  friend class Connection;
  void accept_next(Listener* listener);
  void on_accepted(Listener* listener, Result<std::unique_ptr<Stream>> stream);
  void dispatch(Connection& conn, rpc::Message& message);
  void forget(std::uint64_t id);
  void maybe_finish_drain();

  EventLoop& loop_;
  ServerOptions options_;
  AccessPolicy policy_;
  std::unordered_map<std::string, Method> methods_;
  std::vector<std::function<void(std::uint64_t)>> disconnect_handlers_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::unordered_map<std::uint64_t, std::shared_ptr<Connection>> connections_;
  std::uint64_t next_connection_id_ = 1;
  ServerStats stats_;
  // Handlers that may run after the server is gone check this token.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  bool draining_ = false;
  // Connections refused or given up on, waiting for the peer to hang up.
  std::size_t lingering_ = 0;
  static constexpr std::size_t kMaxLingering = 256;
  std::function<void()> drain_done_;
  TimerId drain_timer_;
};

}  // namespace symphony::ipc
