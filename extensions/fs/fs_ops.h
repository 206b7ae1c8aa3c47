// The file operations behind the bundled `fs` operator (org.symphony.fs):
// list, read, write and search inside a workspace, never outside it. Kept
// apart from the protocol wiring (main.cc) so that tests can run them
// directly. Every path is relative to the workspace; absolute paths and ".."
// are refused before anything is opened, and every open resolves beneath the
// workspace (openat2 with RESOLVE_BENEATH, or a realpath check where the
// kernel lacks openat2), so a symlink cannot lead out of it.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace symphony::extensions::fs {

// How opens are confined to the workspace. `automatic` uses openat2 and
// falls back to `realpath_check` when the kernel answers ENOSYS; tests pick
// each explicitly to prove both.
enum class Confinement { automatic, beneath, realpath_check };

// A workspace directory, held open. Errors from the operations below carry
// an errno: EINVAL for a malformed path or parameter and EXDEV for a path that
// leads out of the workspace (neither is worth retrying), otherwise the errno
// of the failed call.
class Workspace {
 public:
  // Opens `root` (a directory; made absolute and resolved).
  static Result<Workspace> open(const std::filesystem::path& root,
                                Confinement confinement = Confinement::automatic);

  const std::filesystem::path& root() const { return root_; }

  // Opens `rel` (as check_relative returns it; "" is the root) beneath the
  // root with open(2) `flags` (O_CLOEXEC is added) and `mode` (with O_CREAT).
  Result<UniqueFd> open_beneath(const std::string& rel, int flags, mode_t mode = 0) const;

 private:
  Workspace(UniqueFd fd, std::filesystem::path root, Confinement confinement)
      : fd_(std::move(fd)), root_(std::move(root)), confinement_(confinement) {}

  Result<UniqueFd> open_checked(const std::string& rel, int flags, mode_t mode) const;

  UniqueFd fd_;
  std::filesystem::path root_;  // absolute, symlinks resolved
  Confinement confinement_;
};

// `path` normalised ("./a//b/" -> "a/b", "." -> ""), or EINVAL for an
// absolute path, a ".." component or an empty string.
Result<std::string> check_relative(std::string_view path);

struct Entry {
  std::string path;  // relative to the workspace root
  std::string type;  // "file", "directory", "symlink" or "other"
  std::uint64_t size = 0;  // bytes, for files; 0 otherwise
};

struct ListOptions {
  std::string path = ".";
  bool recursive = false;
  // fnmatch(3) glob: against the entry's name, or its whole path when the
  // pattern has a '/'. Empty: every entry. Directories are walked whether
  // they match or not.
  std::string pattern;
  std::size_t max_entries = 10000;
};

struct Listing {
  std::vector<Entry> entries;  // depth first, names sorted within a directory
  bool truncated = false;      // max_entries was reached before the end
};

// Lists `options.path` (a directory, or a single file). Symlinks are listed,
// never followed.
Result<Listing> list(const Workspace& workspace, const ListOptions& options);

struct FileContent {
  std::string data;
  std::string media_type;  // guess_media_type(data)
};

// Reads a regular file of at most `max_bytes`.
Result<FileContent> read(const Workspace& workspace, std::string_view path,
                         std::uint64_t max_bytes);

struct WriteOptions {
  std::string path;
  std::string content;
  bool create_parents = false;  // create missing directories on the way
};

// Writes the file whole: through a temporary file renamed over the target
// (keeping the target's permissions), or in place when the target is a
// symlink (which must resolve inside the workspace). Returns bytes written.
Result<std::uint64_t> write(const Workspace& workspace, const WriteOptions& options);

struct SearchOptions {
  std::string pattern;       // POSIX extended regular expression, per line
  std::string path = ".";    // a directory (searched recursively) or a file
  std::string glob;          // file filter, matched like ListOptions::pattern
  std::size_t max_matches = 1000;
  bool ignore_case = false;
  std::uint64_t max_file_bytes = 16 * 1024 * 1024;  // larger files are skipped
};

struct Match {
  std::string path;
  std::uint64_t line = 0;  // from 1
  std::string text;        // the line, without its end, cut at 1024 bytes
};

struct SearchResult {
  std::vector<Match> matches;
  bool truncated = false;          // max_matches was reached before the end
  std::uint64_t files_searched = 0;
  std::uint64_t files_skipped = 0;  // binary or over max_file_bytes
};

Result<SearchResult> search(const Workspace& workspace, const SearchOptions& options);

// "text/plain" for UTF-8 text without NUL bytes (the empty string included),
// "application/octet-stream" otherwise.
std::string guess_media_type(std::string_view data);

// Whether `data` is well-formed UTF-8.
bool is_utf8(std::string_view data);

}  // namespace symphony::extensions::fs
