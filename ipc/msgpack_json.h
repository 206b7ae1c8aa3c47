// msgpack ⇄ JSON: the daemon's msgpack objects as JSON for `--json` output
// and for JSON-shaped data (workflow parameters, step summaries), and JSON
// packed as msgpack. Binary data becomes a lowercase hex string; extension
// types become {"ext_type": N, "hex": "…"}. JSON floats are packed as
// float64 even when integral, so a value keeps its type across the wire.
#pragma once

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include "ipc/msgpack_rpc.h"

namespace symphony::ipc {

nlohmann::json to_json(const msgpack::object& obj);
void pack_json(rpc::Packer& pk, const nlohmann::json& value);

}  // namespace symphony::ipc
