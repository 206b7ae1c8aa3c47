// Durable file writes for the stale manager: every file it creates (an
// archive, a remote object, a restored copy) is written to a temporary name
// in the destination's directory, flushed, renamed into place and the
// directory flushed, so a crash leaves either the old state or the complete
// new file, never a torn one. Temporary names follow Symphony's convention
// (".symphony-tmp-<pid>-<n>"), which the leftover sweep recognises.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace symphony::pit::stale {

// Every temporary file Symphony writes starts with this; the pid of the
// writer follows, then "-" and a per-process counter.
inline constexpr std::string_view kTempPrefix = ".symphony-tmp-";

// A fresh temporary file name for this process: ".symphony-tmp-<pid>-<n>".
std::string temp_file_name();
// The writer's pid when `name` follows the convention, else nullopt.
std::optional<int> temp_file_owner(std::string_view name);

// Creates `dest` durably: `fill` writes the contents to the (temporary) fd it
// is given; then fsync, rename over `dest`, fsync of the directory. When
// `fill` or any step fails, the temporary file is removed and `dest` is as
// it was. Errors name the path.
Result<void> write_file_durably(const std::filesystem::path& dest,
                                const std::function<Result<void>(int fd)>& fill);

// Unlinks `path` and flushes its directory; a missing file is fine.
Result<void> remove_durably(const std::filesystem::path& path);

// fsync of a directory (after a rename or unlink in it).
Result<void> fsync_directory(const std::filesystem::path& dir);

// write(2) until all of `len` is written (EINTR retried).
Result<void> write_all(int fd, const void* data, std::size_t len, std::string_view what);

}  // namespace symphony::pit::stale
