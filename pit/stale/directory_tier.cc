// RemoteTier over a directory: each object a file named by its key, written
// with the same temp → fsync → rename → directory fsync sequence as the
// archive, so a crash on the far side of a network mount leaves no partial
// object under a real key.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "base/unique_fd.h"
#include "pit/stale/durable_file.h"
#include "pit/stale/remote_tier.h"

namespace symphony::pit::stale {
namespace fs = std::filesystem;
namespace {

// Copies all of `in` to `out`.
Result<void> copy_fd(int in, int out) {
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(in, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("read");
    }
    if (n == 0) return ok();
    if (auto r = write_all(out, buf, static_cast<std::size_t>(n), "copy"); !r) return r;
  }
}

Result<void> copy_file_durably(const fs::path& from, const fs::path& to) {
  UniqueFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return Error::from_errno("open " + from.string());
  return write_file_durably(to, [&](int out) { return copy_fd(in.get(), out); });
}

class DirectoryTier final : public RemoteTier {
 public:
  explicit DirectoryTier(fs::path dir) : dir_(std::move(dir)) {}

  Result<void> put(std::string_view key, const fs::path& file) override {
    if (auto r = validate_remote_key(key); !r) return r;
    if (auto r = copy_file_durably(file, dir_ / key); !r) {
      return std::move(r).error().wrap("remote put " + std::string(key));
    }
    return ok();
  }

  Result<void> get(std::string_view key, const fs::path& dest) const override {
    if (auto r = validate_remote_key(key); !r) return r;
    if (auto r = copy_file_durably(dir_ / key, dest); !r) {
      return std::move(r).error().wrap("remote get " + std::string(key));
    }
    return ok();
  }

  Result<void> remove(std::string_view key) override {
    if (auto r = validate_remote_key(key); !r) return r;
    return remove_durably(dir_ / key);
  }

  Result<TierUsage> usage() const override {
    TierUsage u;
    std::error_code ec;
    for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (name.starts_with('.')) continue;  // temporary files
      std::error_code sec;
      if (!it->is_regular_file(sec)) continue;
      ++u.objects;
      u.bytes += it->file_size(sec);
    }
    if (ec) return Error(ec.value(), "list remote directory " + dir_.string());
    return u;
  }

  std::string describe() const override { return "directory " + dir_.string(); }

 private:
  fs::path dir_;
};

}  // namespace

Result<void> validate_remote_key(std::string_view key) {
  auto allowed = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '@' || c == '%' || c == '-';
  };
  if (key.empty() || key.size() > 255 || key.front() == '.' ||
      !std::all_of(key.begin(), key.end(), allowed)) {
    return Error::invalid("remote key '" + std::string(key) +
                          "': expected 1-255 of [A-Za-z0-9._@%-], not starting with '.'");
  }
  return ok();
}

Result<std::unique_ptr<RemoteTier>> open_directory_tier(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Error(ec.value(), "create remote directory " + dir.string());
  if (!fs::is_directory(dir, ec)) return Error(ENOTDIR, "remote tier " + dir.string());
  return std::unique_ptr<RemoteTier>(std::make_unique<DirectoryTier>(dir));
}

}  // namespace symphony::pit::stale
