// Parsing and validation of resource names (see resource.h for the grammar).
#include "pit/arbiter/resource.h"

#include <string>

namespace symphony::pit {
namespace {

constexpr std::size_t kMaxPathComponents = 64;
constexpr std::size_t kMaxPathBytes = 4096;
constexpr std::size_t kMaxLockName = 128;
constexpr unsigned kMaxGpuIndex = 4095;

// Built by appending: GCC 12's -Wrestrict misfires on "\"" + std::string(…) at -O3.
std::string quoted(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('"');
  out.append(text);
  out.push_back('"');
  return out;
}

Result<ResourceName> parse_gpu(std::string_view full, std::string_view rest) {
  if (rest.empty()) return Error::invalid("resource " + quoted(full) + ": gpu index is missing (expected gpu:N)");
  if (rest.size() > 1 && rest[0] == '0')
    return Error::invalid("resource " + quoted(full) + ": gpu index has a leading zero");
  unsigned index = 0;
  for (std::size_t i = 0; i < rest.size(); ++i) {
    char c = rest[i];
    if (c < '0' || c > '9')
      return Error::invalid("resource " + quoted(full) + ": gpu index has a non-digit at offset " +
                            std::to_string(4 + i));
    index = index * 10 + static_cast<unsigned>(c - '0');
    if (index > kMaxGpuIndex)
      return Error::invalid("resource " + quoted(full) + ": gpu index exceeds " + std::to_string(kMaxGpuIndex));
  }
  ResourceName name;
  name.kind = ResourceKind::gpu;
  name.canonical = "gpu:" + std::to_string(index);
  return name;
}

Result<ResourceName> parse_path(std::string_view full, std::string_view rest) {
  if (rest.empty() || rest[0] != '/')
    return Error::invalid("resource " + quoted(full) + ": path must be absolute (start with '/')");
  if (rest.size() > kMaxPathBytes)
    return Error::invalid("resource " + quoted(full).substr(0, 40) + "…: path longer than " +
                          std::to_string(kMaxPathBytes) + " bytes");
  ResourceName name;
  name.kind = ResourceKind::path;
  std::size_t pos = 1;
  while (pos < rest.size()) {
    std::size_t end = rest.find('/', pos);
    if (end == std::string_view::npos) end = rest.size();
    std::string_view comp = rest.substr(pos, end - pos);
    if (comp.empty()) {
      if (end == rest.size()) break;  // cannot happen, kept for clarity
      return Error::invalid("resource " + quoted(full) + ": empty path component (\"//\") at offset " +
                            std::to_string(5 + pos));
    }
    if (comp == "." || comp == "..")
      return Error::invalid("resource " + quoted(full) + ": path component \"" + std::string(comp) +
                            "\" is not allowed (paths must be normalized)");
    if (comp.find('\0') != std::string_view::npos)
      return Error::invalid("resource " + quoted(full) + ": path contains a NUL byte");
    name.components.emplace_back(comp);
    if (name.components.size() > kMaxPathComponents)
      return Error::invalid("resource " + quoted(full) + ": path has more than " +
                            std::to_string(kMaxPathComponents) + " components");
    pos = end + 1;  // a trailing '/' ends the loop with nothing more to read
  }
  name.canonical = "path:";
  if (name.components.empty()) name.canonical += "/";
  for (const auto& c : name.components) name.canonical += "/" + c;
  return name;
}

Result<ResourceName> parse_lock(std::string_view full, std::string_view rest) {
  if (rest.empty()) return Error::invalid("resource " + quoted(full) + ": lock name is empty");
  if (rest.size() > kMaxLockName)
    return Error::invalid("resource " + quoted(full) + ": lock name longer than " + std::to_string(kMaxLockName) +
                          " chars");
  for (std::size_t i = 0; i < rest.size(); ++i) {
    char c = rest[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-' || c == ':' || c == '/';
    if (!ok)
      return Error::invalid("resource " + quoted(full) + ": lock name has a character outside [A-Za-z0-9._:/-] at offset " +
                            std::to_string(5 + i));
  }
  ResourceName name;
  name.kind = ResourceKind::lock;
  name.canonical = "lock:" + std::string(rest);
  return name;
}

}  // namespace

std::string_view to_string(ResourceKind kind) {
  switch (kind) {
    case ResourceKind::gpu: return "gpu";
    case ResourceKind::path: return "path";
    case ResourceKind::lock: return "lock";
  }
  return "?";
}

Result<ResourceName> ResourceName::parse(std::string_view text) {
  std::size_t colon = text.find(':');
  if (colon == std::string_view::npos)
    return Error::invalid("resource " + quoted(text) + ": expected KIND:NAME with KIND one of gpu, path, lock");
  std::string_view kind = text.substr(0, colon);
  std::string_view rest = text.substr(colon + 1);
  if (kind == "gpu") return parse_gpu(text, rest);
  if (kind == "path") return parse_path(text, rest);
  if (kind == "lock") return parse_lock(text, rest);
  return Error::invalid("resource " + quoted(text) + ": unknown kind \"" + std::string(kind) +
                        "\" (expected gpu, path or lock)");
}

}  // namespace symphony::pit
