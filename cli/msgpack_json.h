// Converts msgpack objects from the daemon into JSON for `--json` output.
// Binary data becomes a lowercase hex string; extension types become
// {"ext_type": N, "hex": "…"}.
#pragma once

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

namespace symphony::cli {

nlohmann::json to_json(const msgpack::object& obj);

}  // namespace symphony::cli
