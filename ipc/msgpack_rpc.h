// The msgpack-rpc wire format exactly as its specification defines it: a
// stream of consecutive msgpack objects with no extra framing.
//   request      [0, msgid, method, params]
//   response     [1, msgid, error, result]
//   notification [2, method, params]
// StreamDecoder parses the stream incrementally with msgpack-c's streaming
// unpacker under explicit limits (message size, nesting depth, container
// elements) and classifies what it finds: a message, a well-formed object of
// the wrong shape (answerable; the stream goes on), or a fatal error after
// which the stream cannot be trusted. The writers produce the same objects.
// Transport-agnostic: the server, the client and the fuzz target share it.
#pragma once

#include <msgpack.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace symphony::ipc::rpc {

enum class MessageType : int { request = 0, response = 1, notification = 2 };

// Error codes carried in the error object of a response, on the wire as
// {"code": "<name>", "message": "<human-readable text>"}.
enum class ErrorCode {
  parse_error,           // not valid msgpack; the connection is closed
  message_too_large,     // over the message size limit; the connection is closed
  limit_exceeded,        // nesting depth or container size limit; closed
  invalid_message,       // valid msgpack, not a msgpack-rpc message
  unknown_method,
  invalid_params,
  handshake_required,    // symphony.hello must come first
  protocol_mismatch,
  access_denied,
  too_many_connections,
  shutting_down,
  internal_error,
  failed,                // the method ran and failed; the message says why
  not_found,             // the method names something that does not exist (an artifact, a version)
};
std::string_view to_string(ErrorCode code);
std::optional<ErrorCode> error_code_from_string(std::string_view name);

// The name of the notification the daemon sends when an error cannot be tied
// to a request id (unparseable bytes, a refused connection). Its params are
// [{"code": …, "message": …}].
inline constexpr std::string_view kErrorNotification = "symphony.error";

struct DecodeLimits {
  std::size_t max_message_size = 16 * 1024 * 1024;
  std::size_t max_depth = 32;
  std::size_t max_container_elements = 262'144;
};

struct Message {
  MessageType type = MessageType::request;
  std::uint32_t id = 0;          // request and response
  std::string_view method;       // request and notification; points into `handle`
  msgpack::object params;        // request and notification: an array
  msgpack::object error;         // response: nil on success
  msgpack::object result;        // response
  msgpack::object_handle handle; // owns the memory the views above point into
};

struct Decoded {
  enum class Kind {
    need_more,  // feed more bytes
    message,    // `message` is valid
    invalid,    // well-formed msgpack of the wrong shape; `id` when it had one
    fatal,      // the stream cannot be trusted any more: close it
  };
  Kind kind = Kind::need_more;
  Message message;
  std::optional<std::uint32_t> id;
  ErrorCode code = ErrorCode::invalid_message;
  std::string problem;
};

// Checks that `obj` is a msgpack-rpc message and fills `out`.
Decoded classify(msgpack::object_handle obj);

class StreamDecoder {
 public:
  explicit StreamDecoder(const DecodeLimits& limits);

  // A writable region of at least `at_least` bytes for the next read.
  std::span<std::byte> prepare(std::size_t at_least);
  // Marks `n` bytes of the prepared region as filled.
  void commit(std::size_t n);
  // The next message, or need_more. After `fatal` the decoder must not be
  // used again.
  Decoded next();
  // Bytes received but not yet returned as messages.
  std::size_t buffered() const;

 private:
  Decoded too_large(const char* what);

  DecodeLimits limits_;
  // On the heap: msgpack's parser keeps a reference to the unpacker's own
  // finalizer, which a move of the unpacker would leave dangling; a decoder
  // (and the Client holding it) must stay movable.
  std::unique_ptr<msgpack::unpacker> unpacker_;
  bool failed_ = false;
};

// A growable output buffer with the write() msgpack::packer expects.
class WriteBuffer {
 public:
  void write(const char* data, std::size_t size) { bytes_.insert(bytes_.end(), data, data + size); }
  std::span<const std::byte> bytes() const {
    return {reinterpret_cast<const std::byte*>(bytes_.data()), bytes_.size()};
  }
  std::size_t size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }
  void clear() { bytes_.clear(); }
  void swap(WriteBuffer& other) { bytes_.swap(other.bytes_); }
  void shrink() { bytes_.shrink_to_fit(); }

 private:
  std::vector<char> bytes_;
};

// msgpack-c's packer over a WriteBuffer, with access to the buffer for the
// few encodings msgpack-c will not produce (see pack_exact).
class Packer : public msgpack::packer<WriteBuffer> {
 public:
  explicit Packer(WriteBuffer& out) : msgpack::packer<WriteBuffer>(out), out_(out) {}
  WriteBuffer& buffer() { return out_; }

 private:
  WriteBuffer& out_;
};

// Packs `obj` exactly as it was received. msgpack-c's own packer turns a
// float with an integral value (4.0, -0.0) into an integer; an echo must
// not change types, so floats are written as float32/float64 here.
void pack_exact(Packer& pk, const msgpack::object& obj);

// [0, id, method, [args…]]
template <class... Args>
void write_request(WriteBuffer& out, std::uint32_t id, std::string_view method, const Args&... args) {
  Packer pk(out);
  pk.pack_array(4);
  pk.pack(static_cast<int>(MessageType::request));
  pk.pack(id);
  pk.pack(method);
  pk.pack_array(sizeof...(Args));
  (pk.pack(args), ...);
}

// [2, method, [args…]]
template <class... Args>
void write_notification(WriteBuffer& out, std::string_view method, const Args&... args) {
  Packer pk(out);
  pk.pack_array(3);
  pk.pack(static_cast<int>(MessageType::notification));
  pk.pack(method);
  pk.pack_array(sizeof...(Args));
  (pk.pack(args), ...);
}

// [1, id, nil, <result packed by `pack_result`>]; pack_result packs exactly one object.
template <class F>
void write_response(WriteBuffer& out, std::uint32_t id, F&& pack_result) {
  Packer pk(out);
  pk.pack_array(4);
  pk.pack(static_cast<int>(MessageType::response));
  pk.pack(id);
  pk.pack_nil();
  pack_result(pk);
}

// [1, id, {"code": …, "message": …}, nil]
void write_error_response(WriteBuffer& out, std::uint32_t id, ErrorCode code,
                          std::string_view message);
// [2, "symphony.error", [{"code": …, "message": …}]]
void write_error_notification(WriteBuffer& out, ErrorCode code, std::string_view message);

// Packs the {"code", "message"} error object.
void pack_error(Packer& pk, ErrorCode code, std::string_view message);

// Reads an error object back: "code: message" for any shape a peer may send.
std::string describe_error(const msgpack::object& error);

// "integer", "string", "array"… for messages about wrong types.
std::string_view type_name(const msgpack::object& obj);

}  // namespace symphony::ipc::rpc
