// The leftover sweep: match by name first (nothing else is ever looked at
// twice), then prove the owner gone (dead pid, refused connection) before
// unlinking.
#include "pit/stale/leftovers.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstring>

#include "base/unique_fd.h"
#include "pit/stale/durable_file.h"
#include "sandbox/cgroup.h"

namespace symphony::pit::stale {
namespace fs = std::filesystem;
namespace {

bool pid_dead(int pid) { return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH; }

// "<pid>-<n>" after the prefix, digits only.
std::optional<int> shm_owner(std::string_view name, std::string_view prefix) {
  if (prefix.empty() || !name.starts_with(prefix)) return std::nullopt;
  name.remove_prefix(prefix.size());
  int pid = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
  const char* stop = name.data() + name.size();
  if (ec != std::errc() || pid <= 0 || end == stop || *end != '-' || end + 1 == stop) {
    return std::nullopt;
  }
  std::uint64_t n = 0;
  auto [end2, ec2] = std::from_chars(end + 1, stop, n);
  if (ec2 != std::errc() || end2 != stop) return std::nullopt;
  return pid;
}

// True when nothing listens on the socket at `path` (connect refused).
bool socket_abandoned(const fs::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string p = path.string();
  if (p.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return false;
  // EAGAIN (backlog full), EACCES and the rest say nothing about staleness.
  return errno == ECONNREFUSED;
}

void unlink_one(const Leftover& item, DryRun dry_run, LeftoverReport& report) {
  if (dry_run == DryRun::no && ::unlink(item.path.c_str()) != 0 && errno != ENOENT) {
    report.errors.push_back(item.path.string() + ": " + std::strerror(errno));
    return;
  }
  report.removed.push_back(item);
}

template <class Fn>
Result<void> for_each_entry(const fs::path& dir, Fn&& fn) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec == std::errc::no_such_file_or_directory) return ok();
  if (ec) return Error(ec.value(), "list " + dir.string());
  for (fs::directory_iterator end; it != end; it.increment(ec)) {
    if (ec) return Error(ec.value(), "list " + dir.string());
    fn(it->path());
  }
  return ok();
}

}  // namespace

std::string shm_segment_name(std::string_view prefix, int pid, std::uint64_t n) {
  return std::string(prefix) + std::to_string(pid) + "-" + std::to_string(n);
}

std::string_view to_string(Leftover::Kind kind) {
  switch (kind) {
    case Leftover::Kind::temp_file: return "temporary file";
    case Leftover::Kind::socket: return "socket";
    case Leftover::Kind::shm_segment: return "shared memory";
    case Leftover::Kind::archive_file: return "orphaned archive file";
  }
  return "?";
}

Result<LeftoverReport> clean_leftovers(const LeftoverOptions& options, DryRun dry_run) {
  LeftoverReport report;
  auto now = options.now ? options.now() : std::chrono::system_clock::now();

  for (const fs::path& dir : options.temp_dirs) {
    auto r = for_each_entry(dir, [&](const fs::path& path) {
      auto owner = temp_file_owner(path.filename().string());
      if (!owner || *owner == ::getpid() || !pid_dead(*owner)) return;
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;
      auto mtime = std::chrono::system_clock::from_time_t(st.st_mtime);
      if (now - mtime < options.temp_min_age) return;
      unlink_one({Leftover::Kind::temp_file, path, static_cast<std::uint64_t>(st.st_size)},
                 dry_run, report);
    });
    if (!r) return r.error();
  }

  if (!options.runtime_dir.empty()) {
    auto r = for_each_entry(options.runtime_dir, [&](const fs::path& path) {
      if (path.extension() != ".sock") return;
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return;
      if (!socket_abandoned(path)) return;
      unlink_one({Leftover::Kind::socket, path, 0}, dry_run, report);
    });
    if (!r) return r.error();
  }

  if (!options.shm_prefix.empty() && !options.shm_dir.empty()) {
    auto r = for_each_entry(options.shm_dir, [&](const fs::path& path) {
      auto owner = shm_owner(path.filename().string(), options.shm_prefix);
      if (!owner || *owner == ::getpid() || !pid_dead(*owner)) return;
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;
      // unlink in the tmpfs is shm_unlink(3) without the leading '/'.
      unlink_one({Leftover::Kind::shm_segment, path, static_cast<std::uint64_t>(st.st_size)},
                 dry_run, report);
    });
    if (!r) return r.error();
  }

  if (options.cgroups != nullptr && dry_run == DryRun::no) {
    report.cgroups_checked = true;
    if (auto n = options.cgroups->cleanup_stale(); n) {
      report.cgroups_removed = *n;
    } else {
      report.errors.push_back("sandbox cgroups: " + n.error().message());
    }
  }
  return report;
}

}  // namespace symphony::pit::stale
