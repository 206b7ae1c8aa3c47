// A blocking msgpack-rpc client over any ClientStream: what symphonyctl, the
// SDK and the tests use to talk to the daemon. Supports plain calls and
// pipelining (queue many requests, flush once, read the responses).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "ipc/msgpack_rpc.h"
#include "ipc/transport.h"

namespace symphony::ipc {

class Client {
 public:
  // Connects; does not perform the handshake (see hello()).
  static Result<Client> connect(const std::string& address, const rpc::DecodeLimits& limits = {});
  explicit Client(std::unique_ptr<ClientStream> stream, const rpc::DecodeLimits& limits = {});

  // symphony.hello with this library's protocol version; returns the
  // daemon's answer ({"protocol", "server", "version", "connection"}).
  Result<msgpack::object_handle> hello(std::string_view client_name);

  // Sends one request and waits for its response. An error answer from the
  // daemon becomes an Error with code EREMOTEIO and the text "code: message".
  template <class... Args>
  Result<msgpack::object_handle> call(std::string_view method, const Args&... args) {
    std::uint32_t id = queue(method, args...);
    if (auto r = flush(); !r) return std::move(r).error();
    return wait_for(id);
  }

  // Pipelining: queue() only buffers; flush() sends everything queued.
  template <class... Args>
  std::uint32_t queue(std::string_view method, const Args&... args) {
    std::uint32_t id = next_id_++;
    rpc::write_request(out_, id, method, args...);
    return id;
  }
  Result<void> flush();
  // The next message from the daemon (response or notification).
  Result<rpc::Message> receive();
  // Reads until the response to `id` arrives; returns its result. The
  // daemon may answer pipelined requests in any order: responses to other
  // queued requests that arrive first are kept for their own wait_for().
  Result<msgpack::object_handle> wait_for(std::uint32_t id);

  // Raw access for tests that must send malformed bytes.
  Result<void> send_raw(std::span<const std::byte> bytes);

 private:
  std::unique_ptr<ClientStream> stream_;
  rpc::StreamDecoder decoder_;
  rpc::WriteBuffer out_;
  std::uint32_t next_id_ = 1;
  std::unordered_map<std::uint32_t, rpc::Message> early_;
};

// The error a daemon answered, as an Error (EREMOTEIO, "code: message").
Error remote_error(const msgpack::object& error);

// For results: look up `key` in a msgpack map; nullptr when absent.
const msgpack::object* map_get(const msgpack::object& map, std::string_view key);

}  // namespace symphony::ipc
