// The blocking client's receive path.
#include "ipc/rpc_client.h"

#include <fmt/format.h>

#include "symphony_build_config.h"

namespace symphony::ipc {

Result<Client> Client::connect(const std::string& address, const rpc::DecodeLimits& limits) {
  auto stream = ipc::connect(address);
  if (!stream) return std::move(stream).error();
  return Client(std::move(*stream), limits);
}

Client::Client(std::unique_ptr<ClientStream> stream, const rpc::DecodeLimits& limits)
    : stream_(std::move(stream)), decoder_(limits) {}

Result<msgpack::object_handle> Client::hello(std::string_view client_name) {
  return call("symphony.hello", static_cast<std::uint32_t>(SYMPHONY_PROTOCOL_VERSION), client_name);
}

Result<void> Client::flush() {
  if (out_.empty()) return ok();
  auto r = stream_->write_all(out_.bytes());
  out_.clear();
  return r;
}

Result<void> Client::send_raw(std::span<const std::byte> bytes) { return stream_->write_all(bytes); }

Result<rpc::Message> Client::receive() {
  for (;;) {
    rpc::Decoded d = decoder_.next();
    switch (d.kind) {
      case rpc::Decoded::Kind::message: return std::move(d.message);
      case rpc::Decoded::Kind::invalid:
      case rpc::Decoded::Kind::fatal:
        return Error(EPROTO, "bad message from the daemon: " + d.problem);
      case rpc::Decoded::Kind::need_more: break;
    }
    auto buf = decoder_.prepare(64 * 1024);
    auto n = stream_->read_some(buf);
    if (!n) return std::move(n).error();
    if (*n == 0) return Error(ECONNRESET, "the daemon closed the connection");
    decoder_.commit(*n);
  }
}

Result<msgpack::object_handle> Client::wait_for(std::uint32_t id) {
  if (auto it = early_.find(id); it != early_.end()) {
    rpc::Message m = std::move(it->second);
    early_.erase(it);
    if (m.error.type != msgpack::type::NIL) return remote_error(m.error);
    return msgpack::object_handle(m.result, std::move(m.handle.zone()));
  }
  for (;;) {
    auto m = receive();
    if (!m) return std::move(m).error();
    if (m->type == rpc::MessageType::notification) {
      // A symphony.error about a misshapen message of ours is not the answer
      // we wait for; one that ends the stream (refusal, parse error, limit)
      // is, since no answer will come.
      if (m->method == rpc::kErrorNotification && m->params.via.array.size > 0) {
        const msgpack::object& err = m->params.via.array.ptr[0];
        const msgpack::object* code = map_get(err, "code");
        if (!code || code->type != msgpack::type::STR ||
            std::string_view(code->via.str.ptr, code->via.str.size) != "invalid_message") {
          return remote_error(err);
        }
      }
      continue;  // events are not what we wait for
    }
    if (m->type != rpc::MessageType::response) continue;
    if (m->id != id) {
      // The answer to another request still queued: keep it for its wait_for.
      if (m->id < next_id_) early_.emplace(m->id, std::move(*m));
      continue;
    }
    if (m->error.type != msgpack::type::NIL) return remote_error(m->error);
    return msgpack::object_handle(m->result, std::move(m->handle.zone()));
  }
}

Error remote_error(const msgpack::object& error) {
  return Error::described(EREMOTEIO, rpc::describe_error(error));
}

const msgpack::object* map_get(const msgpack::object& map, std::string_view key) {
  if (map.type != msgpack::type::MAP) return nullptr;
  for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
    const auto& kv = map.via.map.ptr[i];
    if (kv.key.type == msgpack::type::STR &&
        std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key) {
      return &kv.val;
    }
  }
  return nullptr;
}

}  // namespace symphony::ipc
