// Small pieces every daemon RPC service shares: reading msgpack strings,
// mapping an Error's errno to a wire error code, and holding a Responder in
// a completion (std::function must be copyable; a Responder is not).
#pragma once

#include <cerrno>
#include <memory>
#include <string_view>

#include "ipc/rpc_server.h"

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

}  // namespace symphony::daemon
