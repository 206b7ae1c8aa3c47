// The git operator's logic (org.symphony.git), on libgit2: status, diff, log
// and blame of the repository a step names in its workspace. Kept apart from
// the extension protocol (main.cc wires it to the SDK) so that every operation
// can be tested against a real repository without a daemon.
//
// Errors follow base/result.h. Those caused by the request — a path that is
// not a repository, an unknown revision, a file not in HEAD, a malformed
// parameter — carry EINVAL or ENOENT and will not succeed on retry
// (is_request_error); anything else (an unreadable object, I/O) may.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

struct git_repository;

namespace symphony::extensions::git {

// How a path differs between two of HEAD, the index and the working tree.
// `conflicted` marks an unmerged index entry (both sides say so).
enum class Change { none, modified, added, deleted, renamed, typechange, conflicted };
// "none", "modified", "new" (for `added`), "deleted", "renamed", "typechange",
// "conflicted".
std::string_view to_string(Change change);

struct StatusEntry {
  std::string path;                // the current path, relative to the repository's root
  std::string old_path;            // the path before a rename; empty otherwise
  Change index = Change::none;     // HEAD → index
  Change worktree = Change::none;  // index → working tree ("new": untracked)
};

struct Status {
  std::optional<std::string> branch;  // "main"; none when HEAD is detached
  std::optional<std::string> head;    // the commit's 40-hex id; none before the first commit
  std::vector<StatusEntry> entries;   // sorted by path; ignored files are left out
  bool clean() const { return entries.empty(); }
};

struct DiffOptions {
  std::string from = "HEAD";       // a revision (anything git rev-parse takes)
  std::optional<std::string> to;   // a revision; none = the working tree (with the index)
  int context = 3;                 // lines of context around each change
  std::vector<std::string> paths;  // pathspecs relative to the root; empty = everything
};

struct Diff {
  std::string patch;  // unified diff, as `git diff` prints it; renames detected
  std::size_t files_changed = 0;
  std::size_t insertions = 0;
  std::size_t deletions = 0;
};

struct LogOptions {
  int limit = 20;                    // at most this many commits, newest first
  std::optional<std::string> path;   // only commits that change this file or directory
  std::optional<std::string> since;  // only commits not reachable from this revision
};

struct Commit {
  std::string commit;  // 40-hex id
  std::string author;
  std::string email;
  std::string time;     // author time, ISO 8601 in the author's offset: "2023-11-14T22:13:20+01:00"
  std::string summary;  // the first paragraph of the message, on one line
};

struct BlameLine {
  std::size_t line = 0;  // 1-based, in the file as of HEAD
  std::string commit;    // the commit that last changed the line
  std::string author;
  std::string text;  // the line without its newline
};

// An open repository. Move-only; frees the libgit2 handle on destruction.
class Repository {
 public:
  // Opens the repository whose working tree (or, for a bare repository, git
  // directory) is exactly `dir`: no search in parent directories, so a step
  // never acts on a repository outside what it named. Initialises libgit2 on
  // first use, with owner validation off: the sandbox grants the workspace
  // explicitly and it may belong to another uid there.
  static Result<Repository> open(const std::filesystem::path& dir);

  Result<Status> status() const;
  Result<Diff> diff(const DiffOptions& options) const;
  // An unborn HEAD (no commits yet) gives an empty log.
  Result<std::vector<Commit>> log(const LogOptions& options) const;
  // Blames `path` (relative to the root) as of HEAD, one entry per line.
  Result<std::vector<BlameLine>> blame(std::string_view path) const;

 private:
  struct Free {
    void operator()(git_repository* repo) const;
  };
  explicit Repository(git_repository* repo, std::filesystem::path dir);

  std::unique_ptr<git_repository, Free> repo_;
  std::filesystem::path dir_;
};

// True for errors the request caused (EINVAL, ENOENT): retrying cannot help.
bool is_request_error(const Error& error);

// `relative` ("" or "." = the workspace itself) resolved under `workspace`.
// Absolute paths and ".." components are refused, as is a path that leaves
// the workspace through a symbolic link. `field` names the parameter in errors.
Result<std::filesystem::path> resolve_in_workspace(const std::filesystem::path& workspace,
                                                   std::string_view relative,
                                                   std::string_view field);

// Step parameters (a JSON object) to options. The daemon checks them against
// the manifest first; these checks repeat the types and add the ranges, and
// each error names the parameter ("params.context: expected integer, got
// string"). `repo` (every capability) is the repository's directory under
// the workspace, default ".".
Result<std::string> repository_param(const nlohmann::json& params);
Result<DiffOptions> diff_options(const nlohmann::json& params);
Result<LogOptions> log_options(const nlohmann::json& params);
Result<std::string> blame_path(const nlohmann::json& params);

// The JSON outputs documented in docs/bundled-extensions.md. Strings that are
// not valid UTF-8 (paths, names, file lines) have the bad bytes replaced by
// U+FFFD, since JSON cannot carry them.
nlohmann::json to_json(const Status& status);
nlohmann::json to_json(const std::vector<Commit>& log);
nlohmann::json to_json(const std::vector<BlameLine>& blame);
nlohmann::json diff_summary(const Diff& diff);

}  // namespace symphony::extensions::git
