// The extension registry: which extensions are installed, where, in which
// versions, and whether they are enabled. Three places hold extensions, in
// the order they win for a user: that user's own installs, the
// administrator's installs, and the read-only roots of extensions bundled
// with Symphony. The registry owns the writable root; everything it changes
// there is made durable (fsync) and switched in by rename, so a crash leaves
// either the old or the new state and at most temporary directories, which
// the next open() removes. Layout and rules: docs/cli.md, "Where extensions
// live"; the RPC methods over it: docs/protocol.md, "Extensions".
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "stage/manifest.h"

namespace symphony::stage {

// Who an installed extension is for: everyone (installed by an
// administrator, or bundled) or one user.
enum class Scope { system, user };
std::string_view to_string(Scope scope);

struct Installed {
  Manifest manifest;  // of the current version; `directory` is `dir`
  Scope scope = Scope::system;
  bool bundled = false;  // from a read-only system directory (never removed, only disabled)
  bool enabled = true;
  std::filesystem::path dir;                // the current version's directory
  std::vector<std::string> other_versions;  // on disk besides the current one, oldest first
  bool shadowed = false;  // set by list() only: an entry earlier in the order has this id
};

struct InstallOutcome {
  Installed installed;
  std::optional<std::string> previous;  // the version that was current before, if any
};

// Credentials whose read access to the source tree is checked (by mode
// bits) while it is copied: an install asked for by another user than the
// daemon's must not copy files that user could not read. ACLs are not
// consulted, so a file readable only through an ACL is refused.
struct ReadAs {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::vector<std::uint32_t> groups;
};

struct RegistryOptions {
  std::filesystem::path writable_root;             // admin and user installs, state files
  std::vector<std::filesystem::path> system_dirs;  // bundled extensions, searched in order
};

class Registry;

struct OpenedRegistry {
  std::unique_ptr<Registry> registry;
  // Problems that do not stop the daemon: an unreadable or malformed
  // bundled or installed manifest (that extension is left out), an
  // unreadable state file, a leftover that could not be removed.
  std::vector<std::string> warnings;
};

class Registry {
 public:
  // Creates the writable root (0755) if missing, removes temporary
  // directories an interrupted install, replace or remove left behind, and
  // checks every manifest once. Fails only when the writable root cannot be
  // created or read.
  static Result<OpenedRegistry> open(RegistryOptions options);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Installs the extension in `source_dir` (which holds extension.toml) for
  // everyone (system) or for `uid` (user): the manifest must parse (errors
  // name the file, line and field) and admit this Symphony's version; the
  // tree is copied (regular files, directories, symlinks that are relative
  // and stay inside; anything else is refused naming the path), made
  // durable, renamed into place and made current and enabled. Installing
  // the version that is already current is refused (EEXIST) unless `force`,
  // which replaces its files. Other versions stay on disk until prune().
  // With `read_as`, every file and directory copied (and the source's
  // ancestors) must be readable by those credentials (EACCES otherwise).
  Result<InstallOutcome> install(const std::filesystem::path& source_dir, Scope scope,
                                 std::uint32_t uid, bool force,
                                 const std::optional<ReadAs>& read_as = std::nullopt);

  // Removes every version of `id` at `scope` (for `uid` when user) and
  // answers what was removed. ENOENT when nothing is installed there; a
  // bundled extension is refused (EPERM): it can only be disabled.
  Result<Installed> remove(const std::string& id, Scope scope, std::uint32_t uid);

  // Enables or disables `id`: at `scope` when given, else wherever it
  // resolves for `uid`. Bundled extensions keep their state in the writable
  // root. Answers the extension after the change; ENOENT when unknown.
  Result<Installed> set_enabled(const std::string& id, bool enabled, std::optional<Scope> scope,
                                std::uint32_t uid);

  // Deletes the version directories of `id` at `scope` that are neither
  // current nor in `keep` (versions still running, compared by semver
  // precedence); answers the versions removed.
  Result<std::vector<std::string>> prune(const std::string& id, Scope scope, std::uint32_t uid,
                                         const std::set<std::string>& keep);

  // Everything visible to `uid`, sorted by id; for an id present in several
  // places the first in resolution order (user, system, bundled) comes first
  // and the others are marked shadowed.
  std::vector<Installed> list(std::uint32_t uid) const;
  // What `id` resolves to for `uid` (disabled ones included: see `enabled`).
  // Reads the disk (a few small files); a caller asking often can keep the
  // answer until generation() changes.
  std::optional<Installed> find(const std::string& id, std::uint32_t uid) const;

  // Incremented by every change (install, remove, enable, disable, prune);
  // the extension host compares it to notice a hot swap.
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // `callback(id)` runs after each change, on the thread that made it,
  // with no registry lock held (it may call back into the registry).
  void on_change(std::function<void(const std::string& id)> callback);

  const std::filesystem::path& writable_root() const { return options_.writable_root; }

 private:
  explicit Registry(RegistryOptions options);
  std::filesystem::path level_dir(Scope scope, std::uint32_t uid) const;
  std::vector<Installed> bundled_entries(std::vector<std::string>* warnings) const;
  std::vector<Installed> installed_entries(const std::filesystem::path& dir, Scope scope,
                                           std::vector<std::string>* warnings) const;
  void changed(const std::string& id);

  RegistryOptions options_;
  // Held for every read and change of the writable root's state; copies of
  // an install's files are made before taking it.
  mutable std::mutex mu_;
  std::atomic<std::uint64_t> generation_{0};
  std::mutex callbacks_mu_;
  std::vector<std::function<void(const std::string&)>> callbacks_;
};

// Names close to `id` among `candidates` (edit distance, shared last label,
// substring), for "did you mean" in errors; at most 5, best first.
std::vector<std::string> similar_ids(std::string_view id,
                                     const std::vector<std::string>& candidates);

}  // namespace symphony::stage
