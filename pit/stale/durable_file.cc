// Temp → fsync → rename → directory fsync, with the temporary file removed on
// every failure path (a scope guard, not repeated cleanup code).
#include "pit/stale/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <charconv>

#include "base/unique_fd.h"

namespace symphony::pit::stale {
namespace fs = std::filesystem;

std::string temp_file_name() {
  static std::atomic<std::uint64_t> counter{0};
  return std::string(kTempPrefix) + std::to_string(::getpid()) + "-" +
         std::to_string(counter.fetch_add(1));
}

std::optional<int> temp_file_owner(std::string_view name) {
  if (!name.starts_with(kTempPrefix)) return std::nullopt;
  name.remove_prefix(kTempPrefix.size());
  int pid = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
  if (ec != std::errc() || pid <= 0 || end == name.data() + name.size() || *end != '-') {
    return std::nullopt;
  }
  return pid;
}

Result<void> write_all(int fd, const void* data, std::size_t len, std::string_view what) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("write " + std::string(what));
    }
    p += n;
    len -= static_cast<std::size_t>(n);
  }
  return ok();
}

Result<void> fsync_directory(const fs::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Error::from_errno("open directory " + dir.string());
  if (::fsync(fd.get()) != 0) return Error::from_errno("fsync directory " + dir.string());
  return ok();
}

Result<void> write_file_durably(const fs::path& dest,
                                const std::function<Result<void>(int fd)>& fill) {
  fs::path dir = dest.parent_path().empty() ? fs::path(".") : dest.parent_path();
  fs::path temp = dir / temp_file_name();
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
  if (!fd) return Error::from_errno("create " + temp.string());
  // Until the rename succeeds, the temporary file is ours to remove.
  struct RemoveTemp {
    const fs::path* path;
    ~RemoveTemp() {
      if (path) ::unlink(path->c_str());
    }
  } guard{&temp};
  if (auto r = fill(fd.get()); !r) return std::move(r).error().wrap("write " + dest.string());
  if (::fsync(fd.get()) != 0) return Error::from_errno("fsync " + temp.string());
  fd.reset();
  if (::rename(temp.c_str(), dest.c_str()) != 0) {
    return Error::from_errno("rename " + temp.string() + " to " + dest.string());
  }
  guard.path = nullptr;
  return fsync_directory(dir);
}

Result<void> remove_durably(const fs::path& path) {
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return ok();
    return Error::from_errno("unlink " + path.string());
  }
  fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  return fsync_directory(dir);
}

}  // namespace symphony::pit::stale
