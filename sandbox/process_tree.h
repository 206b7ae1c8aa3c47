// What a sandboxed process tree uses, read from /proc: for the pool's
// measured memory accounting of model and extension instances.
#pragma once

#include <cstdint>

namespace symphony::sandbox {

// Resident memory of `pid` and all its descendants, in bytes (0 when gone).
std::uint64_t tree_rss(int pid);

}  // namespace symphony::sandbox
