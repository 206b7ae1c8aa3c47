// Resource names for the arbiter: what an extension may claim. Three kinds,
// written "kind:rest": a GPU ("gpu:0"), a workspace path prefix
// ("path:/work/repo/src", which covers everything beneath it) and a named
// lock ("lock:NAME"). Parsing normalizes and validates once, so the engine
// compares interned ids and path components, never raw strings.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace symphony::pit {

enum class ResourceKind : std::uint8_t { gpu, path, lock };
inline constexpr std::size_t kResourceKindCount = 3;
std::string_view to_string(ResourceKind kind);

// A parsed, validated resource name.
//   gpu:N       N a decimal device index, 0–4095, no sign, no leading zeros
//   path:/a/b   absolute; components of [^/\0], no "." or "..", no empty
//               component ("//"); a trailing "/" is dropped; "path:/" is the
//               whole workspace. At most 64 components, 4096 bytes.
//   lock:NAME   1–128 chars of [A-Za-z0-9._:/-]
struct ResourceName {
  ResourceKind kind = ResourceKind::lock;
  std::string canonical;                // "gpu:0", "path:/a/b", "lock:x"
  std::vector<std::string> components;  // path components ("a", "b"); empty otherwise

  // Errors are EINVAL and say which rule the name breaks and where.
  static Result<ResourceName> parse(std::string_view text);
};

}  // namespace symphony::pit
