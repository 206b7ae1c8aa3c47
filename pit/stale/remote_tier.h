// The remote tier: where archived artifact versions go after the archive
// period, behind an interface so the backend can be a directory (a network
// mount, here) or an object store (S3, later) without the stale manager
// changing. Objects are whole files addressed by a key the stale manager
// chooses ("<name>@<version>.zst", '/' in names written as '%').
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"

namespace symphony::pit::stale {

struct TierUsage {
  std::uint64_t objects = 0;
  std::uint64_t bytes = 0;
};

class RemoteTier {
 public:
  virtual ~RemoteTier() = default;
  // Stores the whole of `file` under `key`, replacing an object of that
  // key. Returns only once the object is durable; after a failure there is
  // either no object or the previous one, never a partial one.
  virtual Result<void> put(std::string_view key, const std::filesystem::path& file) = 0;
  // Writes the object to `dest` (durably: temp, fsync, rename). ENOENT when
  // there is no such object.
  virtual Result<void> get(std::string_view key, const std::filesystem::path& dest) const = 0;
  // Removes the object; removing an absent one succeeds.
  virtual Result<void> remove(std::string_view key) = 0;
  // How many objects and bytes the tier holds (for `pit stats`).
  virtual Result<TierUsage> usage() const = 0;
  // "directory /mnt/archive" — for status and logs.
  virtual std::string describe() const = 0;
};

// Keys are 1-255 of [A-Za-z0-9._@%-], not starting with '.' (which would
// collide with temporary files); EINVAL otherwise.
Result<void> validate_remote_key(std::string_view key);

// A remote tier that is a directory (typically a network mount). Creates
// `dir` if missing. Puts are durable: temp file in `dir`, fsync, rename,
// fsync of `dir`.
Result<std::unique_ptr<RemoteTier>> open_directory_tier(const std::filesystem::path& dir);

}  // namespace symphony::pit::stale
