// Small pieces every daemon RPC service shares: reading msgpack strings and
// positional parameters, mapping an Error's errno to a wire error code, and
// holding a Responder in a completion (std::function must be copyable; a
// Responder is not).
#pragma once

#include <cerrno>
#include <memory>
#include <string_view>

#include <fmt/format.h>

#include <cstdint>
#include <optional>
#include <span>

#include "base/result.h"
#include "ipc/rpc_server.h"
#include "pit/artifacts/artifact_store.h"

namespace symphony::daemon {

inline std::string_view as_str(const msgpack::object& o) { return {o.via.str.ptr, o.via.str.size}; }

// What does not exist is not_found, what was malformed is invalid_params,
// everything else (I/O, limits, refusals) failed.
inline ipc::rpc::ErrorCode error_code_for(int err) {
  if (err == ENOENT) return ipc::rpc::ErrorCode::not_found;
  if (err == EINVAL) return ipc::rpc::ErrorCode::invalid_params;
  return ipc::rpc::ErrorCode::failed;
}

using Reply = std::shared_ptr<ipc::Responder>;
inline Reply hold(ipc::Responder& r) { return std::make_shared<ipc::Responder>(std::move(r)); }

// Positional parameters with errors that name the method, the position and
// what was expected.
class Params {
 public:
  explicit Params(const ipc::CallContext& call) : call_(call), arr_(call.params.via.array) {}

  std::size_t size() const { return arr_.size; }
  const msgpack::object* at(std::size_t i) const { return i < arr_.size ? &arr_.ptr[i] : nullptr; }

  Result<std::string_view> string(std::size_t i, std::string_view what) const {
    const auto* o = at(i);
    if (o == nullptr || o->type != msgpack::type::STR) return bad(i, what, "a string");
    return as_str(*o);
  }
  Result<std::span<const std::byte>> bytes(std::size_t i, std::string_view what) const {
    const auto* o = at(i);
    if (o == nullptr) return bad(i, what, "binary data");
    if (o->type == msgpack::type::BIN) {
      return std::span<const std::byte>(reinterpret_cast<const std::byte*>(o->via.bin.ptr), o->via.bin.size);
    }
    if (o->type == msgpack::type::STR) {  // clients without a bin type send text
      return std::span<const std::byte>(reinterpret_cast<const std::byte*>(o->via.str.ptr), o->via.str.size);
    }
    return bad(i, what, "binary data");
  }
  Result<std::uint64_t> uint(std::size_t i, std::string_view what) const {
    const auto* o = at(i);
    if (o == nullptr || o->type != msgpack::type::POSITIVE_INTEGER) return bad(i, what, "a non-negative integer");
    return o->via.u64;
  }
  std::optional<bool> opt_bool(std::size_t i) const {
    const auto* o = at(i);
    if (o == nullptr || o->type != msgpack::type::BOOLEAN) return std::nullopt;
    return o->via.boolean;
  }
  Error bad(std::size_t i, std::string_view what, std::string_view expected) const {
    return Error::invalid(fmt::format("{}: parameter {} ({}) must be {}", call_.method, i + 1, what, expected));
  }

 private:
  const ipc::CallContext& call_;
  const msgpack::object_array& arr_;
};

inline Result<pit::ArtifactRef> parse_ref(const Params& p, std::size_t i) {
  auto text = p.string(i, "artifact, NAME or NAME@VERSION");
  if (!text) return std::move(text).error();
  return pit::ArtifactRef::parse(*text);
}


}  // namespace symphony::daemon
