// symphonyctl's name for the msgpack → JSON conversion (ipc/msgpack_json.h).
#pragma once

#include "ipc/msgpack_json.h"

namespace symphony::cli {

using ipc::to_json;

}  // namespace symphony::cli
