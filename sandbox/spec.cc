// Validation of sandbox specs: every check names the field, so a manifest
// author (or the daemon's log) sees exactly what is wrong before anything runs.
#include "sandbox/spec.h"

#include <algorithm>
#include <set>
#include <string>

namespace symphony::sandbox {

namespace {

bool normalised_absolute(const std::string& path) {
  if (path.empty() || path.front() != '/') return false;
  if (path.size() > 1 && path.back() == '/') return false;
  std::size_t start = 1;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string_view part(path.data() + start, end - start);
    if (path.size() > 1 && (part.empty() || part == "." || part == "..")) return false;
    start = end + 1;
  }
  return path.find('\0') == std::string::npos;
}

Error field(const std::string& name, const std::string& what) {
  return Error::invalid(name + ": " + what);
}

}  // namespace

std::string_view to_string(Capability cap) {
  switch (cap) {
    case Capability::net_bind_service: return "net_bind_service";
  }
  return "?";
}

Result<Capability> parse_capability(std::string_view name) {
  std::string lower;
  for (char c : name) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (lower.rfind("cap_", 0) == 0) lower.erase(0, 4);
  for (auto cap : {Capability::net_bind_service}) {
    if (lower == to_string(cap)) return cap;
  }
  return Error::invalid("capability '" + std::string(name) +
                        "' cannot be granted (grantable: net_bind_service)");
}

Result<void> validate(const Spec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty()) return field("argv", "needs a program");
  for (std::size_t i = 0; i < spec.argv.size(); ++i) {
    if (spec.argv[i].find('\0') != std::string::npos) {
      return field("argv[" + std::to_string(i) + "]", "contains a NUL byte");
    }
  }
  for (std::size_t i = 0; i < spec.env.size(); ++i) {
    const auto& e = spec.env[i];
    auto eq = e.find('=');
    if (eq == std::string::npos || eq == 0 || e.find('\0') != std::string::npos) {
      return field("env[" + std::to_string(i) + "]", "'" + e + "' is not KEY=value");
    }
  }
  if (!normalised_absolute(spec.cwd)) {
    return field("cwd", "'" + spec.cwd + "' must be an absolute normalised path");
  }
  if (spec.hostname.empty() || spec.hostname.size() > 64) {
    return field("hostname", "must be 1 to 64 characters");
  }
  for (char c : spec.name) {
    bool good = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '.' || c == '-';
    if (!good) return field("name", "'" + spec.name + "' may only hold [A-Za-z0-9_.-]");
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < spec.permissions.binds.size(); ++i) {
    const auto& b = spec.permissions.binds[i];
    std::string name = "permissions.binds[" + std::to_string(i) + "]";
    if (!normalised_absolute(b.path) || b.path == "/") {
      return field(name, "'" + b.path + "' must be an absolute normalised path other than /");
    }
    if (!seen.insert(b.path).second) return field(name, "'" + b.path + "' is granted twice");
  }
  for (std::size_t i = 0; i < spec.permissions.devices.size(); ++i) {
    const auto& d = spec.permissions.devices[i];
    if (d.rfind("/dev/", 0) != 0 || !normalised_absolute(d)) {
      return field("permissions.devices[" + std::to_string(i) + "]",
                   "'" + d + "' must be a path under /dev");
    }
  }
  const auto& l = spec.limits;
  if (l.cpu && !(*l.cpu >= 0.01 && *l.cpu <= 4096)) {
    return field("limits.cpu", "must be between 0.01 and 4096 CPUs, got " + std::to_string(*l.cpu));
  }
  if (l.memory && l.memory->value < (1u << 20)) {
    return field("limits.memory", "must be at least 1 MiB, got " + std::to_string(l.memory->value));
  }
  if (l.swap && !l.memory) return field("limits.swap", "needs limits.memory");
  if (l.pids && *l.pids < 1) return field("limits.pids", "must be at least 1");
  if (l.open_files && *l.open_files < 4) return field("limits.open_files", "must be at least 4");
  if (l.timeout && l.timeout->count() <= 0) return field("limits.timeout", "must be positive");
  // stdin/out/err are added when missing; everything must fit one message
  // to a zygote shell (fd_passing.h).
  if (spec.fds.size() > 61) return field("fds", "at most 61 fds can be passed in");
  std::set<int> targets;
  for (std::size_t i = 0; i < spec.fds.size(); ++i) {
    const auto& f = spec.fds[i];
    std::string name = "fds[" + std::to_string(i) + "]";
    if (f.fd < 0) return field(name, "fd must be >= 0");
    if (f.target < 0 || f.target > 1023) return field(name, "target must be 0..1023");
    if (!targets.insert(f.target).second) {
      return field(name, "target " + std::to_string(f.target) + " is given twice");
    }
  }
  return ok();
}

}  // namespace symphony::sandbox
