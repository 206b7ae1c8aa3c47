// Connection handling for the msgpack-rpc server. Each Connection is owned by
// a shared_ptr that the server's table and every in-flight I/O handler hold,
// so buffers handed to the kernel outlive the operations that use them even
// when the connection is closed mid-flight.
#include "ipc/rpc_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/log.h"

namespace symphony::ipc {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Server& server, std::uint64_t id, std::unique_ptr<Stream> stream,
             const ServerOptions& options)
      : server_(server),
        id_(id),
        stream_(std::move(stream)),
        decoder_(options.limits),
        read_chunk_(options.read_chunk),
        max_write_queue_(options.max_write_queue) {}

  std::uint64_t id() const { return id_; }
  const PeerCredentials& peer() const { return stream_->peer(); }
  bool closed() const { return closed_; }

  void start() { read_more(); }

  // --- output ---------------------------------------------------------------
  rpc::WriteBuffer& out() { return pending_; }
  // Call after writing a message into out().
  void enqueued() {
    if (closed_) return;
    std::size_t queued = pending_.size() + (inflight_.size() - offset_);
    if (queued > max_write_queue_) {
      ++server_.stats_.slow_clients;
      log::Fields f{{"PEER_UID", std::to_string(peer().uid)}, {"PEER_PID", std::to_string(peer().pid)}};
      spdlog::warn("connection {} ({}): client is not reading its responses ({} bytes queued, "
                   "limit {}); disconnecting",
                   id_, describe(peer()), queued, max_write_queue_);
      close_now();
      return;
    }
    if (!in_batch_) start_write();
  }

  void answered() {
    if (outstanding_ > 0) --outstanding_;
  }

  // --- lifecycle ------------------------------------------------------------
  // Graceful: stops reading; closes once everything queued is written and
  // every request received has been answered.
  void close_when_idle() {
    eof_ = true;
    close_when_idle_ = true;
    arm_close_timer();
    maybe_close_idle();
  }

  // Refuses the connection (or gives up on its stream): sends the error as a
  // symphony.error notification, ends our side of the stream, and lingers,
  // discarding input, until the peer hangs up. Closing at once with unread
  // input would make the kernel reset the connection, and the peer could
  // lose the notification.
  void reject(rpc::ErrorCode code, std::string_view message) {
    rpc::write_error_notification(pending_, code, message);
    lingering_ = true;
    ++server_.lingering_;
    arm_close_timer();
    enqueued();
    read_more();
  }

  void close_now() {
    if (closed_) return;
    closed_ = true;
    if (lingering_) --server_.lingering_;
    stream_->close();
    server_.forget(id_);
  }

  bool hello_done = false;
  std::string client_name;
  std::size_t outstanding_ = 0;

 private:
  // A client that never reads or never hangs up must not keep a closing
  // connection open forever.
  void arm_close_timer() {
    std::weak_ptr<Connection> weak = weak_from_this();
    server_.loop_.add_timer(lingering_ ? std::chrono::seconds(1) : std::chrono::seconds(5), [weak] {
      if (auto self = weak.lock()) self->close_now();
    });
  }

  void read_more() {
    if (reading_ || eof_ || closed_) return;
    std::span<std::byte> buf;
    if (lingering_) {
      discard_.resize(4096);
      buf = discard_;
    } else {
      buf = decoder_.prepare(read_chunk_);
    }
    reading_ = true;
    stream_->read(buf, [self = shared_from_this()](Result<std::size_t> r) {
      self->on_read(std::move(r));
    });
  }

  void on_read(Result<std::size_t> r) {
    reading_ = false;
    if (closed_) return;
    if (!r) {
      if (r.error().code() != ECANCELED) {
        spdlog::debug("connection {}: {}", id_, r.error().message());
      }
      close_now();
      return;
    }
    if (lingering_) {
      if (*r == 0) {
        close_now();
      } else {
        read_more();
      }
      return;
    }
    if (*r == 0) {
      // The peer finished sending; it may still read what we owe it.
      close_when_idle();
      return;
    }
    decoder_.commit(*r);
    process();
    read_more();
  }

  void process() {
    in_batch_ = true;
    while (!closed_ && !eof_ && !lingering_) {
      rpc::Decoded d = decoder_.next();
      if (d.kind == rpc::Decoded::Kind::need_more) break;
      if (d.kind == rpc::Decoded::Kind::message) {
        server_.dispatch(*this, d.message);
        continue;
      }
      ++server_.stats_.protocol_errors;
      if (d.kind == rpc::Decoded::Kind::invalid) {
        spdlog::debug("connection {}: invalid message: {}", id_, d.problem);
        if (d.id) {
          rpc::write_error_response(pending_, *d.id, d.code, d.problem);
        } else {
          rpc::write_error_notification(pending_, d.code, d.problem);
        }
        enqueued();
        continue;
      }
      // Fatal: the byte stream can no longer be trusted.
      {
        log::Fields f{{"PEER_UID", std::to_string(peer().uid)},
                      {"PEER_PID", std::to_string(peer().pid)}};
        spdlog::info("connection {} ({}): {}; closing it", id_, describe(peer()), d.problem);
      }
      in_batch_ = false;
      reject(d.code, d.problem);
      return;
    }
    in_batch_ = false;
    start_write();
  }

  void start_write() {
    if (closed_ || writing_) return;
    if (pending_.empty()) {
      maybe_close_idle();
      return;
    }
    inflight_.clear();
    inflight_.swap(pending_);
    offset_ = 0;
    issue_write();
  }

  void issue_write() {
    writing_ = true;
    stream_->write(inflight_.bytes().subspan(offset_),
                   [self = shared_from_this()](Result<std::size_t> r) { self->on_write(std::move(r)); });
  }

  void on_write(Result<std::size_t> r) {
    writing_ = false;
    if (closed_) return;
    if (!r) {
      spdlog::debug("connection {}: {}", id_, r.error().message());
      close_now();
      return;
    }
    offset_ += *r;
    if (offset_ < inflight_.size()) {
      issue_write();
      return;
    }
    // Do not keep a 16 MiB buffer around for one large response.
    if (inflight_.size() > 1024 * 1024) {
      inflight_.clear();
      inflight_.shrink();
    }
    offset_ = 0;
    inflight_.clear();
    start_write();
  }

  void maybe_close_idle() {
    if (lingering_ && !writing_ && pending_.empty() && !write_shut_) {
      write_shut_ = true;
      stream_->shutdown_write();
    }
    if (close_when_idle_ && !writing_ && pending_.empty() && outstanding_ == 0) close_now();
  }

  Server& server_;
  std::uint64_t id_;
  std::unique_ptr<Stream> stream_;
  rpc::StreamDecoder decoder_;
  std::size_t read_chunk_;
  std::size_t max_write_queue_;
  rpc::WriteBuffer pending_;   // responses not yet handed to the transport
  rpc::WriteBuffer inflight_;  // the batch being written
  std::size_t offset_ = 0;     // bytes of inflight_ already written
  bool reading_ = false;
  bool writing_ = false;
  bool in_batch_ = false;
  bool eof_ = false;
  bool close_when_idle_ = false;
  bool lingering_ = false;
  bool write_shut_ = false;
  std::vector<std::byte> discard_;
  bool closed_ = false;
};

// --- Responder ----------------------------------------------------------------

Responder::Responder(Responder&& other) noexcept
    : conn_(std::move(other.conn_)), id_(other.id_), pending_(std::exchange(other.pending_, false)) {}

Responder& Responder::operator=(Responder&& other) noexcept {
  if (this != &other) {
    if (pending_) fail(rpc::ErrorCode::internal_error, "request dropped without an answer");
    conn_ = std::move(other.conn_);
    id_ = other.id_;
    pending_ = std::exchange(other.pending_, false);
  }
  return *this;
}

Responder::~Responder() {
  if (pending_) fail(rpc::ErrorCode::internal_error, "the method returned without an answer");
}

void Responder::reply_with(const std::function<void(rpc::Packer&)>& pack) {
  if (!pending_) return;
  pending_ = false;
  auto conn = conn_.lock();
  if (!conn || conn->closed()) return;
  conn->answered();
  rpc::write_response(conn->out(), id_, pack);
  conn->enqueued();
}

void Responder::notify(std::string_view method, const std::function<void(rpc::Packer&)>& pack) {
  if (!pending_) return;
  auto conn = conn_.lock();
  if (!conn || conn->closed()) return;
  rpc::Packer pk(conn->out());
  pk.pack_array(3);
  pk.pack(static_cast<int>(rpc::MessageType::notification));
  pk.pack(method);
  pk.pack_array(1);
  pack(pk);
  conn->enqueued();
}

void Responder::fail(rpc::ErrorCode code, std::string_view message) {
  if (!pending_) return;
  pending_ = false;
  auto conn = conn_.lock();
  if (!conn || conn->closed()) return;
  conn->answered();
  rpc::write_error_response(conn->out(), id_, code, message);
  conn->enqueued();
}

// --- Server -------------------------------------------------------------------

Server::Server(EventLoop& loop, ServerOptions options, AccessPolicy policy)
    : loop_(loop), options_(std::move(options)), policy_(std::move(policy)) {}

Server::~Server() {
  alive_.reset();
  for (auto& l : listeners_) l->close();
  auto conns = connections_;
  for (auto& [id, c] : conns) c->close_now();
}

void Server::add_method(std::string name, Method method) {
  methods_[std::move(name)] = std::move(method);
}

void Server::add_listener(std::unique_ptr<Listener> listener) {
  Listener* raw = listener.get();
  listeners_.push_back(std::move(listener));
  accept_next(raw);
}

void Server::reconfigure(ServerOptions options, AccessPolicy policy) {
  options_ = std::move(options);
  policy_ = std::move(policy);
}

void Server::accept_next(Listener* listener) {
  std::weak_ptr<int> alive = alive_;
  listener->accept([this, alive, listener](Result<std::unique_ptr<Stream>> stream) {
    if (alive.expired()) return;
    on_accepted(listener, std::move(stream));
  });
}

void Server::on_accepted(Listener* listener, Result<std::unique_ptr<Stream>> stream) {
  if (!stream) {
    if (stream.error().code() == ECANCELED || draining_) return;
    // EMFILE and friends: log, back off briefly, keep serving.
    spdlog::warn("accept on {}: {}", listener->address(), stream.error().message());
    std::weak_ptr<int> alive = alive_;
    loop_.add_timer(std::chrono::milliseconds(100), [this, alive, listener] {
      if (!alive.expired() && !draining_) accept_next(listener);
    });
    return;
  }
  if (!draining_) accept_next(listener);

  std::uint64_t id = next_connection_id_++;
  auto conn = std::make_shared<Connection>(*this, id, std::move(*stream), options_);
  connections_.emplace(id, conn);
  const PeerCredentials& peer = conn->peer();
  std::optional<std::pair<rpc::ErrorCode, std::string>> refusal;
  if (!policy_.allows(peer)) {
    refusal.emplace(rpc::ErrorCode::access_denied,
                    fmt::format("access denied: uid {} is not allowed to use this daemon (allowed: "
                                "root, the daemon's user and the configured users and groups)",
                                peer.uid));
  } else if (draining_) {
    refusal.emplace(rpc::ErrorCode::shutting_down, "symphonyd is shutting down");
  } else if (connections_.size() - lingering_ > options_.max_connections) {
    refusal.emplace(rpc::ErrorCode::too_many_connections,
                    fmt::format("too many connections (limit {})", options_.max_connections));
  }
  if (refusal) {
    ++stats_.refused;
    // A refused peer must not be able to fill the table: refusals do not
    // count against max_connections, and past kMaxLingering of them the
    // connection is dropped without a goodbye.
    if (lingering_ >= kMaxLingering) {
      conn->close_now();
      return;
    }
    log::Fields f{{"PEER_UID", std::to_string(peer.uid)}, {"PEER_PID", std::to_string(peer.pid)}};
    spdlog::warn("refused connection from {}: {}", describe(peer), refusal->second);
    conn->reject(refusal->first, refusal->second);
    return;
  }
  ++stats_.accepted;
  spdlog::debug("connection {} from {}", id, describe(peer));
  conn->start();
}

void Server::dispatch(Connection& conn, rpc::Message& message) {
  if (message.type == rpc::MessageType::response) {
    // The daemon sends clients no requests yet, so there is nothing to match.
    spdlog::debug("connection {}: ignoring unexpected response id {}", conn.id(), message.id);
    return;
  }
  ++stats_.requests;
  bool expects_reply = message.type == rpc::MessageType::request;
  if (expects_reply) ++conn.outstanding_;
  Responder responder(conn.weak_from_this(), message.id, expects_reply);
  if (draining_) return responder.fail(rpc::ErrorCode::shutting_down, "symphonyd is shutting down");

  if (message.method == "symphony.hello") {
    const auto& p = message.params.via.array;
    if (p.size < 2 || p.ptr[0].type != msgpack::type::POSITIVE_INTEGER ||
        p.ptr[1].type != msgpack::type::STR) {
      return responder.fail(rpc::ErrorCode::invalid_params,
                            "symphony.hello expects [protocol_version (integer), client_name (string)]");
    }
    std::uint64_t version = p.ptr[0].via.u64;
    if (version != options_.protocol_version) {
      return responder.fail(rpc::ErrorCode::protocol_mismatch,
                            fmt::format("protocol version mismatch: the client speaks {}, {} {} "
                                        "speaks {}",
                                        version, options_.server_name, options_.server_version,
                                        options_.protocol_version));
    }
    conn.hello_done = true;
    conn.client_name.assign(p.ptr[1].via.str.ptr, p.ptr[1].via.str.size);
    std::uint64_t cid = conn.id();
    return responder.reply_with([&](rpc::Packer& pk) {
      pk.pack_map(4);
      pk.pack(std::string_view("protocol"));
      pk.pack(options_.protocol_version);
      pk.pack(std::string_view("server"));
      pk.pack(options_.server_name);
      pk.pack(std::string_view("version"));
      pk.pack(options_.server_version);
      pk.pack(std::string_view("connection"));
      pk.pack(cid);
    });
  }
  if (!conn.hello_done) {
    return responder.fail(rpc::ErrorCode::handshake_required,
                          fmt::format("call symphony.hello [{}, \"<client name>\"] before '{}'",
                                      options_.protocol_version, message.method));
  }
  auto it = methods_.find(std::string(message.method));
  if (it == methods_.end()) {
    return responder.fail(rpc::ErrorCode::unknown_method,
                          fmt::format("unknown method '{}'", message.method));
  }
  CallContext call{message.method, message.params, conn.peer(), conn.id(), conn.client_name};
  it->second(call, responder);
}

void Server::on_disconnect(std::function<void(std::uint64_t)> handler) {
  disconnect_handlers_.push_back(std::move(handler));
}

void Server::forget(std::uint64_t id) {
  connections_.erase(id);
  for (const auto& h : disconnect_handlers_) h(id);
  if (draining_) maybe_finish_drain();
}

void Server::drain(std::chrono::milliseconds deadline, std::function<void()> done) {
  draining_ = true;
  drain_done_ = std::move(done);
  for (auto& l : listeners_) l->close();
  auto conns = connections_;
  for (auto& [id, c] : conns) c->close_when_idle();
  drain_timer_ = loop_.add_timer(deadline, [this] {
    auto left = connections_;
    if (!left.empty()) spdlog::warn("drain deadline passed; closing {} connections", left.size());
    for (auto& [id, c] : left) c->close_now();
    maybe_finish_drain();
  });
  maybe_finish_drain();
}

void Server::maybe_finish_drain() {
  if (!connections_.empty() || !drain_done_) return;
  loop_.cancel_timer(drain_timer_);
  auto done = std::move(drain_done_);
  drain_done_ = nullptr;
  loop_.defer(std::move(done));
}

}  // namespace symphony::ipc
