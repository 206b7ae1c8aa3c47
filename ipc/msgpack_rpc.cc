// Incremental msgpack-rpc decoding and the error-object helpers. msgpack-c
// reports malformed input and limit violations by throwing; the exceptions
// are caught here and become Decoded::fatal, so none escapes the codec.
#include "ipc/msgpack_rpc.h"

#include <fmt/format.h>

#include <array>
#include <cstring>
#include <sstream>

namespace symphony::ipc::rpc {
namespace {

constexpr std::array<std::string_view, 14> kCodeNames = {
    "parse_error",      "message_too_large", "limit_exceeded",       "invalid_message",
    "unknown_method",   "invalid_params",    "handshake_required",   "protocol_mismatch",
    "access_denied",    "too_many_connections", "shutting_down",     "internal_error",
    "failed",           "not_found",
};

Decoded invalid(std::string problem, std::optional<std::uint32_t> id = std::nullopt) {
  Decoded d;
  d.kind = Decoded::Kind::invalid;
  d.code = ErrorCode::invalid_message;
  d.problem = std::move(problem);
  d.id = id;
  return d;
}

Decoded fatal(ErrorCode code, std::string problem) {
  Decoded d;
  d.kind = Decoded::Kind::fatal;
  d.code = code;
  d.problem = std::move(problem);
  return d;
}

std::optional<std::uint32_t> as_msgid(const msgpack::object& o) {
  if (o.type == msgpack::type::POSITIVE_INTEGER && o.via.u64 <= 0xffffffffu) {
    return static_cast<std::uint32_t>(o.via.u64);
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(ErrorCode code) { return kCodeNames[static_cast<std::size_t>(code)]; }

std::optional<ErrorCode> error_code_from_string(std::string_view name) {
  for (std::size_t i = 0; i < kCodeNames.size(); ++i) {
    if (kCodeNames[i] == name) return static_cast<ErrorCode>(i);
  }
  return std::nullopt;
}

std::string_view type_name(const msgpack::object& obj) {
  switch (obj.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "boolean";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER: return "integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return "float";
    case msgpack::type::STR: return "string";
    case msgpack::type::BIN: return "binary";
    case msgpack::type::ARRAY: return "array";
    case msgpack::type::MAP: return "map";
    case msgpack::type::EXT: return "extension";
  }
  return "unknown";
}

Decoded classify(msgpack::object_handle handle) {
  const msgpack::object& o = handle.get();
  if (o.type != msgpack::type::ARRAY) {
    return invalid(fmt::format("a message must be an array, got {}", type_name(o)));
  }
  const auto& a = o.via.array;
  if (a.size == 0 || a.ptr[0].type != msgpack::type::POSITIVE_INTEGER || a.ptr[0].via.u64 > 2) {
    return invalid("message type (element 0) must be 0 (request), 1 (response) or 2 (notification)");
  }
  Decoded d;
  d.kind = Decoded::Kind::message;
  auto type = static_cast<MessageType>(a.ptr[0].via.u64);
  d.message.type = type;
  if (type == MessageType::notification) {
    if (a.size != 3) return invalid(fmt::format("a notification has 3 elements, got {}", a.size));
    if (a.ptr[1].type != msgpack::type::STR) {
      return invalid(fmt::format("method (element 1) must be a string, got {}", type_name(a.ptr[1])));
    }
    if (a.ptr[2].type != msgpack::type::ARRAY) {
      return invalid(fmt::format("params (element 2) must be an array, got {}", type_name(a.ptr[2])));
    }
    d.message.method = {a.ptr[1].via.str.ptr, a.ptr[1].via.str.size};
    d.message.params = a.ptr[2];
  } else {
    std::optional<std::uint32_t> id = a.size >= 2 ? as_msgid(a.ptr[1]) : std::nullopt;
    if (a.size != 4) {
      return invalid(fmt::format("a {} has 4 elements, got {}",
                                 type == MessageType::request ? "request" : "response", a.size),
                     id);
    }
    if (!id) return invalid("msgid (element 1) must be an unsigned 32-bit integer");
    d.message.id = *id;
    if (type == MessageType::request) {
      if (a.ptr[2].type != msgpack::type::STR) {
        return invalid(fmt::format("method (element 2) must be a string, got {}", type_name(a.ptr[2])),
                       id);
      }
      if (a.ptr[3].type != msgpack::type::ARRAY) {
        return invalid(fmt::format("params (element 3) must be an array, got {}", type_name(a.ptr[3])),
                       id);
      }
      d.message.method = {a.ptr[2].via.str.ptr, a.ptr[2].via.str.size};
      d.message.params = a.ptr[3];
    } else {
      d.message.error = a.ptr[2];
      d.message.result = a.ptr[3];
    }
  }
  d.message.handle = std::move(handle);
  return d;
}

StreamDecoder::StreamDecoder(const DecodeLimits& limits)
    : limits_(limits),
      // Strings and binaries point into the unpacker's buffer (no copy); the
      // buffer is reference-counted by each message's zone.
      unpacker_(std::make_unique<msgpack::unpacker>(
          [](msgpack::type::object_type, std::size_t, void*) { return true; }, nullptr, 64 * 1024,
          msgpack::unpack_limit(limits.max_container_elements, limits.max_container_elements,
                                limits.max_message_size, limits.max_message_size, limits.max_message_size,
                                limits.max_depth))) {}

std::span<std::byte> StreamDecoder::prepare(std::size_t at_least) {
  unpacker_->reserve_buffer(at_least);
  return {reinterpret_cast<std::byte*>(unpacker_->buffer()), unpacker_->buffer_capacity()};
}

void StreamDecoder::commit(std::size_t n) { unpacker_->buffer_consumed(n); }

std::size_t StreamDecoder::buffered() const { return unpacker_->message_size(); }

// A string, binary or extension header announced more bytes than a whole
// message may have: msgpack-c rejects it as soon as it sees the header.
Decoded StreamDecoder::too_large(const char* what) {
  failed_ = true;
  return fatal(ErrorCode::message_too_large,
               fmt::format("{} longer than the message size limit of {} bytes", what,
                           limits_.max_message_size));
}

Decoded StreamDecoder::next() {
  if (failed_) return fatal(ErrorCode::internal_error, "decoder used after a fatal error");
  msgpack::object_handle handle;
  std::size_t before = unpacker_->parsed_size() + unpacker_->nonparsed_size();
  bool complete = false;
  try {
    complete = unpacker_->next(handle);
  } catch (const msgpack::depth_size_overflow&) {
    failed_ = true;
    return fatal(ErrorCode::limit_exceeded,
                 fmt::format("nesting deeper than {} levels", limits_.max_depth));
  } catch (const msgpack::str_size_overflow&) {
    return too_large("a string");
  } catch (const msgpack::bin_size_overflow&) {
    return too_large("a binary");
  } catch (const msgpack::ext_size_overflow&) {
    return too_large("an extension");
  } catch (const msgpack::size_overflow& e) {
    failed_ = true;
    return fatal(ErrorCode::limit_exceeded,
                 fmt::format("{} (limits: {} container elements, {} bytes per string or binary)",
                             e.what(), limits_.max_container_elements, limits_.max_message_size));
  } catch (const std::exception& e) {
    failed_ = true;
    return fatal(ErrorCode::parse_error, fmt::format("malformed msgpack: {}", e.what()));
  }
  if (!complete) {
    if (unpacker_->message_size() > limits_.max_message_size) {
      failed_ = true;
      return fatal(ErrorCode::message_too_large,
                   fmt::format("message exceeds the limit of {} bytes", limits_.max_message_size));
    }
    return Decoded{};
  }
  std::size_t size = before - unpacker_->nonparsed_size();
  if (size > limits_.max_message_size) {
    failed_ = true;
    return fatal(ErrorCode::message_too_large,
                 fmt::format("message of {} bytes exceeds the limit of {} bytes", size,
                             limits_.max_message_size));
  }
  return classify(std::move(handle));
}

void pack_exact(Packer& pk, const msgpack::object& obj) {
  switch (obj.type) {
    case msgpack::type::FLOAT32: {
      float f = static_cast<float>(obj.via.f64);
      std::uint32_t bits;
      std::memcpy(&bits, &f, sizeof(bits));
      char buf[5] = {static_cast<char>(0xca)};
      for (int i = 0; i < 4; ++i) buf[1 + i] = static_cast<char>(bits >> (24 - 8 * i));
      pk.buffer().write(buf, sizeof(buf));
      return;
    }
    case msgpack::type::FLOAT64: {
      std::uint64_t bits;
      std::memcpy(&bits, &obj.via.f64, sizeof(bits));
      char buf[9] = {static_cast<char>(0xcb)};
      for (int i = 0; i < 8; ++i) buf[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
      pk.buffer().write(buf, sizeof(buf));
      return;
    }
    case msgpack::type::ARRAY:
      pk.pack_array(obj.via.array.size);
      for (std::uint32_t i = 0; i < obj.via.array.size; ++i) pack_exact(pk, obj.via.array.ptr[i]);
      return;
    case msgpack::type::MAP:
      pk.pack_map(obj.via.map.size);
      for (std::uint32_t i = 0; i < obj.via.map.size; ++i) {
        pack_exact(pk, obj.via.map.ptr[i].key);
        pack_exact(pk, obj.via.map.ptr[i].val);
      }
      return;
    default:
      pk.pack(obj);
  }
}

void pack_error(Packer& pk, ErrorCode code, std::string_view message) {
  pk.pack_map(2);
  pk.pack(std::string_view("code"));
  pk.pack(to_string(code));
  pk.pack(std::string_view("message"));
  pk.pack(message);
}

void write_error_response(WriteBuffer& out, std::uint32_t id, ErrorCode code,
                          std::string_view message) {
  Packer pk(out);
  pk.pack_array(4);
  pk.pack(static_cast<int>(MessageType::response));
  pk.pack(id);
  pack_error(pk, code, message);
  pk.pack_nil();
}

void write_error_notification(WriteBuffer& out, ErrorCode code, std::string_view message) {
  Packer pk(out);
  pk.pack_array(3);
  pk.pack(static_cast<int>(MessageType::notification));
  pk.pack(kErrorNotification);
  pk.pack_array(1);
  pack_error(pk, code, message);
}

std::string describe_error(const msgpack::object& error) {
  if (error.type == msgpack::type::MAP) {
    std::string code, message;
    for (std::uint32_t i = 0; i < error.via.map.size; ++i) {
      const auto& kv = error.via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR || kv.val.type != msgpack::type::STR) continue;
      std::string_view k(kv.key.via.str.ptr, kv.key.via.str.size);
      std::string_view v(kv.val.via.str.ptr, kv.val.via.str.size);
      if (k == "code") code = v;
      if (k == "message") message = v;
    }
    if (!code.empty() || !message.empty()) return code + ": " + message;
  }
  if (error.type == msgpack::type::STR) return std::string(error.via.str.ptr, error.via.str.size);
  std::ostringstream out;
  out << error;
  return out.str();
}

}  // namespace symphony::ipc::rpc
