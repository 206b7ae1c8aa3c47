// The registry on disk. Nothing is cached: every question reads the
// directories again (a handful of small files), so what the registry answers
// is always what the next start would see, bundled roots updated by a
// package upgrade included. Copies are made with *at() calls on directory
// fds and O_NOFOLLOW, so a source tree changed while it is copied cannot
// make the daemon follow a symlink out of it; the manifest is read again
// from the copy, which is what gets installed.
#include "stage/registry.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include <fmt/format.h>

#include "base/paths.h"
#include "base/unique_fd.h"
#include "symphony_build_config.h"

namespace symphony::stage {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kManifestFile = "extension.toml";
constexpr std::string_view kStateFile = "state.json";
constexpr std::string_view kUsersDir = "users";
// Symphony's temporary-name convention (also pit/stale): whatever starts
// with it under the writable root is an unfinished operation's leftover.
constexpr std::string_view kTempPrefix = ".symphony-tmp-";

std::string temp_name() {
  static std::atomic<std::uint64_t> counter{0};
  return fmt::format("{}{}-{}", kTempPrefix, ::getpid(), counter.fetch_add(1));
}

bool is_temp(std::string_view name) { return name.starts_with(kTempPrefix); }

// Extension ids become directory names: accept only what a manifest could
// declare ([a-z0-9-] labels joined by dots, no empty label), so an id from a
// client can never name a path outside the registry.
bool plausible_id(std::string_view id) {
  if (id.empty() || id.size() > 255 || id.front() == '.' || id.back() == '.') return false;
  if (id.find("..") != std::string_view::npos || id.find('.') == std::string_view::npos)
    return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

Error bad_id(std::string_view id) {
  return Error::invalid(
      fmt::format("'{}' is not an extension id (reverse DNS: org.example.name)", id));
}

// The directory name of a version: semver without build metadata, which
// does not take part in precedence (1.0.0+a and 1.0.0+b are one version).
std::string version_key(const Version& v) {
  Version k = v;
  k.build.clear();
  return to_string(k);
}

Result<void> fsync_path(const fs::path& p) {
  UniqueFd fd(::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Error::from_errno("open " + p.string());
  if (::fsync(fd.get()) != 0) return Error::from_errno("fsync " + p.string());
  return ok();
}

Result<void> make_dir(const fs::path& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    return Error::from_errno("create " + dir.string());
  return ok();
}

void remove_quietly(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
}

// Runs `fn` at scope exit unless cancelled: the temporary copy of an
// install that fails half way is removed on every error path.
template <class F>
class Defer {
 public:
  explicit Defer(F fn) : fn_(std::move(fn)) {}
  ~Defer() {
    if (armed_) fn_();
  }
  Defer(const Defer&) = delete;
  Defer& operator=(const Defer&) = delete;
  void cancel() { armed_ = false; }

 private:
  F fn_;
  bool armed_ = true;
};

// --- state.json ------------------------------------------------------------

struct State {
  std::optional<std::string> current;
  bool enabled = true;
};

// nullopt when there is no state file.
Result<std::optional<State>> read_state(const fs::path& id_dir) {
  fs::path file = id_dir / kStateFile;
  std::ifstream in(file);
  if (!in) {
    if (errno == ENOENT) return std::optional<State>();
    return Error::from_errno("read " + file.string());
  }
  std::stringstream text;
  text << in.rdbuf();
  auto j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Error::invalid(fmt::format("{}: not a JSON object", file.string()));
  State s;
  if (auto it = j.find("current"); it != j.end()) {
    if (!it->is_string())
      return Error::invalid(fmt::format("{}: current: expected a string", file.string()));
    s.current = it->get<std::string>();
  }
  if (auto it = j.find("enabled"); it != j.end()) {
    if (!it->is_boolean())
      return Error::invalid(fmt::format("{}: enabled: expected a boolean", file.string()));
    s.enabled = it->get<bool>();
  }
  return std::optional<State>(std::move(s));
}

// Temp file, fsync, rename over state.json, fsync of the directory: a crash
// leaves the old state or the new one.
Result<void> write_state(const fs::path& id_dir, const State& s) {
  nlohmann::json j = nlohmann::json::object();
  if (s.current) j["current"] = *s.current;
  j["enabled"] = s.enabled;
  std::string text = j.dump() + "\n";
  fs::path temp = id_dir / temp_name();
  fs::path dest = id_dir / kStateFile;
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd) return Error::from_errno("create " + temp.string());
  Defer cleanup([&] { ::unlink(temp.c_str()); });
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("write " + temp.string());
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return Error::from_errno("fsync " + temp.string());
  fd.reset();
  if (::rename(temp.c_str(), dest.c_str()) != 0)
    return Error::from_errno("rename to " + dest.string());
  cleanup.cancel();
  return fsync_path(id_dir);
}

// --- versions on disk ----------------------------------------------------

struct VersionDir {
  Version version;
  std::string name;
};

// The version directories under `id_dir`, oldest first.
std::vector<VersionDir> versions_in(const fs::path& id_dir) {
  std::vector<VersionDir> out;
  std::error_code ec;
  for (auto it = fs::directory_iterator(id_dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (is_temp(name) || !it->is_directory(ec) || it->is_symlink(ec)) continue;
    auto v = parse_version(name);
    if (!v || !v->build.empty()) continue;
    out.push_back({std::move(*v), std::move(name)});
  }
  std::sort(out.begin(), out.end(),
            [](const VersionDir& a, const VersionDir& b) { return a.version < b.version; });
  return out;
}

// The names of the subdirectories of `dir` that are not temporaries.
std::vector<std::string> subdirs(const fs::path& dir, std::error_code& ec) {
  std::vector<std::string> out;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    std::error_code e2;
    if (name.starts_with('.') || !it->is_directory(e2)) continue;
    out.push_back(std::move(name));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// What is installed in one id directory (an admin's or a user's): the
// current version's manifest plus the other versions. nullopt when no
// version is there (a bundled extension's state lives in such a directory).
// A broken manifest or state file is an error naming it.
struct Effective {
  std::vector<VersionDir> versions;
  std::optional<State> state;
  std::string current;  // "" when there are no versions
};

Result<Effective> effective(const fs::path& id_dir) {
  Effective e;
  e.versions = versions_in(id_dir);
  auto st = read_state(id_dir);
  if (!st) return std::move(st).error();
  e.state = std::move(*st);
  if (e.versions.empty()) return e;
  e.current =
      e.versions.back().name;  // no state (a crash before the first state write): the newest
  if (e.state && e.state->current) {
    for (const auto& v : e.versions) {
      if (v.name == *e.state->current) e.current = v.name;
    }
  }
  return e;
}

// What is installed in one id directory (an admin's or a user's); nullopt
// when no version is there (a bundled extension's state lives in such a
// directory). A broken manifest is an error naming it. A broken state file
// fails closed: the newest version, disabled, until `ext enable` writes a
// good one; the problem goes to `warnings`.
Result<std::optional<Installed>> read_installed(const fs::path& id_dir, Scope scope,
                                                std::vector<std::string>* warnings) {
  auto e = effective(id_dir);
  Effective eff;
  if (e) {
    eff = std::move(*e);
  } else {
    if (warnings)
      warnings->push_back(e.error().message() +
                          " (the extension stays disabled until enabled again)");
    eff.versions = versions_in(id_dir);
    if (!eff.versions.empty()) eff.current = eff.versions.back().name;
    eff.state = State{std::nullopt, false};
  }
  if (eff.versions.empty()) return std::optional<Installed>();
  Installed out;
  out.scope = scope;
  out.dir = id_dir / eff.current;
  auto m = load_manifest(out.dir / kManifestFile);
  if (!m) return std::move(m).error();
  out.manifest = std::move(*m);
  out.enabled = eff.state ? eff.state->enabled : true;
  for (const auto& v : eff.versions) {
    if (v.name != eff.current) out.other_versions.push_back(v.name);
  }
  return std::optional<Installed>(std::move(out));
}

// --- copying a source tree -------------------------------------------------

bool allowed(const struct stat& st, const ReadAs& who, unsigned want /* 4 read, 1 search */) {
  if (who.uid == 0) return true;
  unsigned mode = st.st_mode & 0777;
  unsigned bits;
  if (st.st_uid == who.uid) {
    bits = mode >> 6;
  } else if (st.st_gid == who.gid ||
             std::find(who.groups.begin(), who.groups.end(), st.st_gid) != who.groups.end()) {
    bits = mode >> 3;
  } else {
    bits = mode;
  }
  return (bits & want) == want;
}

Error not_readable(const fs::path& p, std::uint32_t uid, bool dir) {
  return Error::described(
      EACCES, fmt::format("{}: not {} by uid {} (the daemon installs only what the "
                          "requesting user can read)",
                          p.string(), dir ? "readable and searchable" : "readable", uid));
}

class TreeCopier {
 public:
  TreeCopier(fs::path src_root, const std::optional<ReadAs>& read_as)
      : src_root_(std::move(src_root)), read_as_(read_as) {}

  // Copies the contents of directory `src` into the empty directory `dst`.
  Result<void> copy_dir(int src, int dst, const fs::path& rel, int depth) {
    if (depth > 64)
      return Error::described(ELOOP,
                              fmt::format("{}: directories nested too deep", where(rel).string()));
    auto names = list(src, rel);
    if (!names) return std::move(names).error();
    for (const auto& name : *names) {
      fs::path child = rel / name;
      struct stat st {};
      if (::fstatat(src, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return Error::from_errno("stat " + where(child).string());
      }
      Result<void> r = ok();
      if (S_ISDIR(st.st_mode)) {
        r = copy_subdir(src, dst, name, child, st, depth);
      } else if (S_ISREG(st.st_mode)) {
        r = copy_file(src, dst, name, child, st);
      } else if (S_ISLNK(st.st_mode)) {
        r = copy_symlink(src, dst, name, child);
      } else {
        const char* what = S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                           : S_ISFIFO(st.st_mode)                     ? "a fifo"
                           : S_ISSOCK(st.st_mode)                     ? "a socket"
                                                                      : "a special file";
        r = Error::described(EPERM,
                             fmt::format("{}: is {}; an extension may contain only regular files, "
                                         "directories and relative symlinks",
                                         where(child).string(), what));
      }
      if (!r) return r;
    }
    if (::fsync(dst) != 0) return Error::from_errno("fsync copy of " + where(rel).string());
    return ok();
  }

  fs::path where(const fs::path& rel) const { return rel.empty() ? src_root_ : src_root_ / rel; }

 private:
  Result<std::vector<std::string>> list(int dirfd, const fs::path& rel) {
    int fd = ::dup(dirfd);
    if (fd < 0) return Error::from_errno("dup");
    DIR* d = ::fdopendir(fd);
    if (d == nullptr) {
      ::close(fd);
      return Error::from_errno("read directory " + where(rel).string());
    }
    std::vector<std::string> names;
    errno = 0;
    while (dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (n != "." && n != "..") names.emplace_back(n);
      errno = 0;
    }
    int err = errno;
    ::closedir(d);
    if (err != 0) return Error(err, "read directory " + where(rel).string());
    std::sort(names.begin(), names.end());
    return names;
  }

  Result<void> copy_subdir(int src, int dst, const std::string& name, const fs::path& rel,
                           const struct stat& st, int depth) {
    if (read_as_ && !allowed(st, *read_as_, 5))
      return not_readable(where(rel), read_as_->uid, true);
    UniqueFd s(::openat(src, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!s) return Error::from_errno("open " + where(rel).string());
    if (::mkdirat(dst, name.c_str(), 0755) != 0)
      return Error::from_errno("create copy of " + where(rel).string());
    UniqueFd d(::openat(dst, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!d) return Error::from_errno("open copy of " + where(rel).string());
    if (::fchmod(d.get(), 0755) != 0)
      return Error::from_errno("chmod copy of " + where(rel).string());
    return copy_dir(s.get(), d.get(), rel, depth + 1);
  }

  Result<void> copy_file(int src, int dst, const std::string& name, const fs::path& rel,
                         const struct stat& st) {
    if (read_as_ && !allowed(st, *read_as_, 4))
      return not_readable(where(rel), read_as_->uid, false);
    UniqueFd in(
        ::openat(src, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!in) return Error::from_errno("open " + where(rel).string());
    struct stat again {};
    // Replaced by something else since the fstatat (a fifo would block).
    if (::fstat(in.get(), &again) != 0 || !S_ISREG(again.st_mode) || again.st_ino != st.st_ino) {
      return Error::described(EAGAIN,
                              fmt::format("{}: changed while being copied", where(rel).string()));
    }
    mode_t mode = (st.st_mode & 0111) != 0 ? 0755 : 0644;
    UniqueFd out(
        ::openat(dst, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!out) return Error::from_errno("create copy of " + where(rel).string());
    char buf[64 * 1024];
    while (true) {
      ssize_t n = ::read(in.get(), buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error::from_errno("read " + where(rel).string());
      if (n == 0) break;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = ::write(out.get(), buf + off, static_cast<std::size_t>(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return Error::from_errno("write copy of " + where(rel).string());
        off += w;
      }
    }
    // The umask must not take the executable or read bits away.
    if (::fchmod(out.get(), mode) != 0)
      return Error::from_errno("chmod copy of " + where(rel).string());
    if (::fsync(out.get()) != 0) return Error::from_errno("fsync copy of " + where(rel).string());
    return ok();
  }

  Result<void> copy_symlink(int src, int dst, const std::string& name, const fs::path& rel) {
    std::string target(PATH_MAX, '\0');
    ssize_t n = ::readlinkat(src, name.c_str(), target.data(), target.size());
    if (n < 0) return Error::from_errno("read symlink " + where(rel).string());
    target.resize(static_cast<std::size_t>(n));
    auto refuse = [&](std::string_view why) {
      return Error::described(
          EPERM, fmt::format("{}: symlink to '{}' {}; only relative symlinks that stay "
                             "inside the extension can be installed",
                             where(rel).string(), target, why));
    };
    if (target.empty() || target.front() == '/') return refuse("is absolute");
    // Lexically first (the link's own directory is the starting depth);
    // chains through other symlinks are checked on the finished copy.
    long depth =
        static_cast<long>(std::distance(rel.parent_path().begin(), rel.parent_path().end()));
    for (const auto& part : fs::path(target)) {
      if (part.empty() || part == ".") continue;
      if (part == "..") {
        if (--depth < 0) return refuse("leaves the extension's directory");
      } else {
        ++depth;
      }
    }
    if (::symlinkat(target.c_str(), dst, name.c_str()) != 0) {
      return Error::from_errno("create copy of symlink " + where(rel).string());
    }
    return ok();
  }

  fs::path src_root_;
  const std::optional<ReadAs>& read_as_;
};

// Every symlink of the finished copy `root` must resolve inside it, also
// through other symlinks of the copy (sub -> .., then a -> sub/x).
Result<void> check_symlinks(const fs::path& root, const fs::path& src_root) {
  std::error_code ec;
  fs::path real_root = fs::canonical(root, ec);
  if (ec) return Error(ec.value(), "resolve " + root.string());
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code e2;
    if (!it->is_symlink(e2)) continue;
    fs::path rel = it->path().lexically_relative(root);
    // The target joined to the link's directory: weakly_canonical alone
    // would stop at a dangling link instead of resolving its target.
    fs::path target = fs::read_symlink(it->path(), e2);
    fs::path real = e2 ? fs::path() : fs::weakly_canonical(it->path().parent_path() / target, e2);
    if (e2) {
      return Error::described(e2.value(), fmt::format("{}: symlink cannot be resolved: {}",
                                                      (src_root / rel).string(), e2.message()));
    }
    fs::path inside = real.lexically_relative(real_root);
    if (inside.empty() || *inside.begin() == "..") {
      return Error::described(EPERM,
                              fmt::format("{}: symlink resolves outside the extension (through "
                                          "another symlink); only relative symlinks that stay "
                                          "inside the extension can be installed",
                                          (src_root / rel).string()));
    }
  }
  if (ec) return Error(ec.value(), "walk " + root.string());
  return ok();
}

// The source directory and each of its ancestors must be searchable, and
// the directory and its manifest readable, by `who`.
Result<void> check_source_access(const fs::path& source, const ReadAs& who) {
  fs::path p;
  for (const auto& part : source) {
    p /= part;
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return Error::from_errno("stat " + p.string());
    bool last = p == source;
    if (!allowed(st, who, last ? 5 : 1)) return not_readable(p, who.uid, true);
  }
  fs::path manifest = source / kManifestFile;
  struct stat st {};
  if (::stat(manifest.c_str(), &st) != 0)
    return Error::from_errno("open manifest " + manifest.string());
  if (!allowed(st, who, 4)) return not_readable(manifest, who.uid, false);
  return ok();
}

// Exchanges `a` and `b` (both exist) atomically where the file system can;
// otherwise moves `b` aside to `aside` and `a` to `b`. Afterwards the old
// contents of `b` are at `a` or at `aside`; answers which.
Result<fs::path> swap_in(const fs::path& a, const fs::path& b, const fs::path& aside) {
  if (::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0) return a;
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
    return Error::from_errno(fmt::format("exchange {} and {}", a.string(), b.string()));
  }
  if (::rename(b.c_str(), aside.c_str()) != 0) return Error::from_errno("move aside " + b.string());
  if (::rename(a.c_str(), b.c_str()) != 0) {
    Error e = Error::from_errno("rename to " + b.string());
    ::rename(aside.c_str(), b.c_str());  // put the old one back
    return e;
  }
  return aside;
}

std::string where_installed(Scope scope, std::uint32_t uid) {
  return scope == Scope::system ? std::string("system-wide") : fmt::format("for user {}", uid);
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string_view last_label(std::string_view id) {
  auto dot = id.rfind('.');
  return dot == std::string_view::npos ? id : id.substr(dot + 1);
}

}  // namespace

std::string_view to_string(Scope scope) { return scope == Scope::system ? "system" : "user"; }

std::vector<std::string> similar_ids(std::string_view id,
                                     const std::vector<std::string>& candidates) {
  std::vector<std::pair<std::size_t, std::string>> scored;
  for (const auto& c : candidates) {
    if (c == id) continue;
    std::size_t d = edit_distance(id, c);
    std::size_t limit = std::max<std::size_t>(2, id.size() / 4);
    bool related = d <= limit ||
                   (!id.empty() &&
                    (c.find(id) != std::string::npos || id.find(c) != std::string_view::npos)) ||
                   last_label(c) == last_label(id) || last_label(c) == id;
    if (related) scored.emplace_back(d, c);
  }
  std::sort(scored.begin(), scored.end());
  scored.erase(std::unique(scored.begin(), scored.end()), scored.end());
  std::vector<std::string> out;
  for (auto& [d, c] : scored) {
    if (out.size() == 5) break;
    out.push_back(std::move(c));
  }
  return out;
}

Registry::Registry(RegistryOptions options) : options_(std::move(options)) {}
Registry::~Registry() = default;

Result<OpenedRegistry> Registry::open(RegistryOptions options) {
  if (options.writable_root.empty() || !options.writable_root.is_absolute()) {
    return Error::invalid(fmt::format("extension directory '{}' must be an absolute path",
                                      options.writable_root.string()));
  }
  if (auto r = ensure_directory(options.writable_root, 0755); !r) {
    return std::move(r).error().wrap("extension directory");
  }
  OpenedRegistry out;
  out.registry.reset(new Registry(std::move(options)));
  const fs::path& root = out.registry->options_.writable_root;
  if (::access(root.c_str(), R_OK | W_OK | X_OK) != 0) {
    return Error::from_errno("extension directory " + root.string());
  }
  // Leftovers: <root>/.tmp*, <root>/<id>/.tmp*, <root>/users/<uid>/.tmp*,
  // <root>/users/<uid>/<id>/.tmp*.
  auto sweep = [&](const fs::path& dir) {
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      if (!is_temp(it->path().filename().string())) continue;
      std::error_code e2;
      fs::remove_all(it->path(), e2);
      if (e2)
        out.warnings.push_back(
            fmt::format("remove leftover {}: {}", it->path().string(), e2.message()));
    }
  };
  auto sweep_level = [&](const fs::path& level, bool top) {
    sweep(level);
    std::error_code ec;
    for (const auto& name : subdirs(level, ec)) {
      if (top && name == kUsersDir) continue;
      sweep(level / name);
    }
  };
  sweep_level(root, true);
  std::error_code ec;
  for (const auto& uid : subdirs(root / kUsersDir, ec)) sweep_level(root / kUsersDir / uid, false);

  // Check everything once, so a broken manifest shows in the daemon's log
  // at start rather than only as a missing extension.
  Registry& reg = *out.registry;
  std::lock_guard lock(reg.mu_);
  (void)reg.bundled_entries(&out.warnings);
  (void)reg.installed_entries(root, Scope::system, &out.warnings);
  for (const auto& uid : subdirs(root / kUsersDir, ec)) {
    (void)reg.installed_entries(root / kUsersDir / uid, Scope::user, &out.warnings);
  }
  return out;
}

fs::path Registry::level_dir(Scope scope, std::uint32_t uid) const {
  if (scope == Scope::system) return options_.writable_root;
  return options_.writable_root / kUsersDir / std::to_string(uid);
}

std::vector<Installed> Registry::bundled_entries(std::vector<std::string>* warnings) const {
  std::vector<Installed> out;
  std::string version = SYMPHONY_VERSION;
  for (const auto& sys : options_.system_dirs) {
    std::error_code ec;
    auto names = subdirs(sys, ec);
    if (ec && ec != std::errc::no_such_file_or_directory && warnings) {
      warnings->push_back(fmt::format("bundled extensions in {}: {}", sys.string(), ec.message()));
    }
    for (const auto& name : names) {
      fs::path file = sys / name / kManifestFile;
      std::error_code e2;
      if (!fs::exists(file, e2)) continue;  // not an extension directory
      auto m = load_manifest(file);
      if (!m) {
        if (warnings)
          warnings->push_back(fmt::format("bundled extension skipped: {}", m.error().message()));
        continue;
      }
      if (auto c = check_compatible(*m, version); !c) {
        if (warnings)
          warnings->push_back(fmt::format("bundled extension skipped: {}", c.error().message()));
        continue;
      }
      Installed e;
      e.scope = Scope::system;
      e.bundled = true;
      e.dir = m->directory;
      e.manifest = std::move(*m);
      // Its state (only `enabled`) is kept in the writable root; an admin
      // install of the same id shares it (and shadows this one).
      fs::path state_dir = options_.writable_root / e.manifest.id;
      auto st = read_state(state_dir);
      if (!st) {
        if (warnings) warnings->push_back(st.error().message());
        e.enabled = false;
      } else {
        e.enabled = *st ? (*st)->enabled : true;
      }
      out.push_back(std::move(e));
    }
  }
  return out;
}

std::vector<Installed> Registry::installed_entries(const fs::path& dir, Scope scope,
                                                   std::vector<std::string>* warnings) const {
  std::vector<Installed> out;
  std::error_code ec;
  for (const auto& name : subdirs(dir, ec)) {
    if (scope == Scope::system && name == kUsersDir) continue;
    auto e = read_installed(dir / name, scope, warnings);
    if (!e) {
      if (warnings)
        warnings->push_back(fmt::format("installed extension skipped: {}", e.error().message()));
      continue;
    }
    if (*e) out.push_back(std::move(**e));
  }
  return out;
}

std::vector<Installed> Registry::list(std::uint32_t uid) const {
  std::lock_guard lock(mu_);
  std::vector<Installed> all = installed_entries(level_dir(Scope::user, uid), Scope::user, nullptr);
  for (auto& e : installed_entries(options_.writable_root, Scope::system, nullptr))
    all.push_back(std::move(e));
  for (auto& e : bundled_entries(nullptr)) all.push_back(std::move(e));
  // Stable: within one id, resolution order (user, system, bundled in the
  // order of system_dirs) is kept.
  std::stable_sort(all.begin(), all.end(), [](const Installed& a, const Installed& b) {
    return a.manifest.id < b.manifest.id;
  });
  for (std::size_t i = 1; i < all.size(); ++i) {
    all[i].shadowed = all[i].manifest.id == all[i - 1].manifest.id;
  }
  return all;
}

std::optional<Installed> Registry::find(const std::string& id, std::uint32_t uid) const {
  if (!plausible_id(id)) return std::nullopt;
  std::lock_guard lock(mu_);
  for (Scope scope : {Scope::user, Scope::system}) {
    auto e = read_installed(level_dir(scope, uid) / id, scope, nullptr);
    if (e && *e) return std::move(**e);
  }
  for (auto& e : bundled_entries(nullptr)) {
    if (e.manifest.id == id) return std::move(e);
  }
  return std::nullopt;
}

Result<InstallOutcome> Registry::install(const fs::path& source_dir, Scope scope, std::uint32_t uid,
                                         bool force, const std::optional<ReadAs>& read_as) {
  if (!source_dir.is_absolute()) {
    return Error::invalid(
        fmt::format("install: '{}' must be an absolute path", source_dir.string()));
  }
  std::error_code ec;
  fs::path source = fs::canonical(source_dir, ec);
  if (ec) return Error(ec.value(), "install: " + source_dir.string());
  if (!fs::is_directory(source, ec)) {
    return Error::described(ENOTDIR,
                            fmt::format("install: {} is not a directory (give the directory that "
                                        "holds extension.toml)",
                                        source_dir.string()));
  }
  // Before the manifest is read: its parse errors would quote a file the
  // requester may not be allowed to see.
  if (read_as) {
    if (auto r = check_source_access(source, *read_as); !r) return std::move(r).error();
  }
  auto declared = load_manifest(source / kManifestFile);
  if (!declared) return std::move(declared).error();
  if (auto r = check_compatible(*declared, std::string_view(SYMPHONY_VERSION)); !r)
    return std::move(r).error();
  const std::string id = declared->id;
  const std::string key = version_key(declared->version);
  const fs::path level = level_dir(scope, uid);
  const fs::path id_dir = level / id;
  auto already = [&] {
    return Error::described(EEXIST,
                            fmt::format("{} {} is already installed; remove it first or install "
                                        "another version ({}; --force replaces it)",
                                        id, key, where_installed(scope, uid)));
  };
  {
    std::lock_guard lock(mu_);
    auto e = effective(id_dir);
    if (e && e->current == key && !force) return already();
  }

  // Copy, outside the lock: a large extension must not stall find().
  if (scope == Scope::user) {
    if (auto r = make_dir(options_.writable_root / kUsersDir); !r) return std::move(r).error();
    if (auto r = make_dir(level); !r) return std::move(r).error();
  }
  bool new_id_dir = !fs::exists(id_dir, ec);
  if (auto r = make_dir(id_dir); !r) return std::move(r).error();
  if (new_id_dir) {
    if (auto r = fsync_path(level); !r) return std::move(r).error();
  }
  fs::path temp = id_dir / temp_name();
  if (::mkdir(temp.c_str(), 0755) != 0) return Error::from_errno("create " + temp.string());
  Defer drop_temp([&] { remove_quietly(temp); });
  {
    UniqueFd src(::open(source.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!src) return Error::from_errno("open " + source.string());
    UniqueFd dst(::open(temp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dst) return Error::from_errno("open " + temp.string());
    if (::fchmod(dst.get(), 0755) != 0) return Error::from_errno("chmod " + temp.string());
    TreeCopier copier(source, read_as);
    if (auto r = copier.copy_dir(src.get(), dst.get(), {}, 0); !r)
      return std::move(r).error().wrap("install");
  }
  if (auto r = check_symlinks(temp, source); !r) return std::move(r).error().wrap("install");
  // What is installed is the copy: read it again, it must still be the
  // same extension and version.
  auto copied = load_manifest(temp / kManifestFile);
  if (!copied)
    return std::move(copied).error().wrap(fmt::format("install: the copy of {}", source.string()));
  if (copied->id != id || version_key(copied->version) != key) {
    return Error::described(EAGAIN, fmt::format("install: {} changed while it was copied",
                                                (source / kManifestFile).string()));
  }
  if (auto r = fsync_path(id_dir); !r) return std::move(r).error();

  InstallOutcome outcome;
  std::optional<fs::path> old_copy;
  {
    std::lock_guard lock(mu_);
    auto e = effective(id_dir);
    Effective eff = e ? std::move(*e) : Effective{versions_in(id_dir), std::nullopt, ""};
    if (!e && !eff.versions.empty()) eff.current = eff.versions.back().name;
    if (!eff.current.empty()) outcome.previous = eff.current;
    fs::path target = id_dir / key;
    bool exists = std::any_of(eff.versions.begin(), eff.versions.end(),
                              [&](const VersionDir& v) { return v.name == key; });
    if (exists) {
      if (eff.current == key && !force) return already();
      // A forced reinstall, or a version on disk that is not current: its
      // files are replaced in one exchange.
      auto moved = swap_in(temp, target, id_dir / temp_name());
      if (!moved) return std::move(moved).error().wrap("install");
      old_copy = *moved;
      if (*moved == temp) drop_temp.cancel();
    } else {
      if (::rename(temp.c_str(), target.c_str()) != 0) {
        return Error::from_errno(
            fmt::format("install: rename {} to {}", temp.string(), target.string()));
      }
    }
    drop_temp.cancel();
    if (auto r = fsync_path(id_dir); !r) return std::move(r).error().wrap("install");
    if (auto r = write_state(id_dir, State{key, true}); !r)
      return std::move(r).error().wrap("install");
    generation_.fetch_add(1, std::memory_order_acq_rel);
    auto now = read_installed(id_dir, scope, nullptr);
    if (!now || !*now) {
      return now ? Error(EIO, fmt::format("install: {} vanished after install", id_dir.string()))
                 : std::move(now).error().wrap("install");
    }
    outcome.installed = std::move(**now);
  }
  if (old_copy) remove_quietly(*old_copy);
  changed(id);
  return outcome;
}

Result<Installed> Registry::remove(const std::string& id, Scope scope, std::uint32_t uid) {
  if (!plausible_id(id)) return bad_id(id);
  fs::path level = level_dir(scope, uid);
  fs::path id_dir = level / id;
  fs::path aside = level / temp_name();
  Installed removed;
  {
    std::lock_guard lock(mu_);
    auto e = read_installed(id_dir, scope, nullptr);
    bool present = e ? e->has_value() : !versions_in(id_dir).empty();
    if (!present) {
      if (scope == Scope::system) {
        for (const auto& b : bundled_entries(nullptr)) {
          if (b.manifest.id == id) {
            return Error::described(EPERM,
                                    fmt::format("{} is bundled with Symphony: use `symphonyctl ext "
                                                "disable {}`",
                                                id, id));
          }
        }
      }
      return Error::described(ENOENT, fmt::format("no extension '{}' is installed {}", id,
                                                  where_installed(scope, uid)));
    }
    if (e) {
      removed = std::move(**e);
    } else {
      removed.scope = scope;
      removed.manifest.id = id;
      removed.dir = id_dir;
    }
    // One rename makes the whole id disappear at once; the files go after.
    if (::rename(id_dir.c_str(), aside.c_str()) != 0)
      return Error::from_errno("remove " + id_dir.string());
    if (auto r = fsync_path(level); !r) return std::move(r).error();
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  remove_quietly(aside);
  changed(id);
  return removed;
}

Result<Installed> Registry::set_enabled(const std::string& id, bool enabled,
                                        std::optional<Scope> scope, std::uint32_t uid) {
  if (!plausible_id(id)) return bad_id(id);
  std::optional<Installed> target;
  bool did_change = false;
  {
    std::lock_guard lock(mu_);
    fs::path state_dir;
    Scope at = Scope::system;
    for (Scope s : {Scope::user, Scope::system}) {
      if (scope && *scope != s) continue;
      if (!versions_in(level_dir(s, uid) / id).empty()) {
        state_dir = level_dir(s, uid) / id;
        at = s;
        break;
      }
    }
    bool bundled = false;
    if (state_dir.empty() && scope != Scope::user) {
      auto all = bundled_entries(nullptr);
      bundled = std::any_of(all.begin(), all.end(),
                            [&](const Installed& b) { return b.manifest.id == id; });
      if (bundled) state_dir = options_.writable_root / id;
    }
    if (state_dir.empty()) {
      std::string where = scope ? " " + where_installed(*scope, uid) : std::string();
      return Error::described(ENOENT, fmt::format("no extension '{}' is installed{}", id, where));
    }
    auto st = read_state(state_dir);
    // A broken state file is repaired by writing a good one.
    bool good = st && st->has_value();
    State state = good ? **st : State{};
    if (!good || state.enabled != enabled) {
      if (bundled && !fs::exists(state_dir)) {
        if (auto r = make_dir(state_dir); !r) return std::move(r).error();
        if (auto r = fsync_path(options_.writable_root); !r) return std::move(r).error();
      }
      if (!bundled) {
        // Keep what is current (the newest when the state said nothing usable).
        auto vs = versions_in(state_dir);
        bool known = state.current && std::any_of(vs.begin(), vs.end(), [&](const VersionDir& v) {
                       return v.name == *state.current;
                     });
        if (!known) state.current = vs.back().name;
      }
      state.enabled = enabled;
      if (auto r = write_state(state_dir, state); !r) return std::move(r).error();
      generation_.fetch_add(1, std::memory_order_acq_rel);
      did_change = true;
    }
    if (bundled) {
      for (auto& b : bundled_entries(nullptr)) {
        if (b.manifest.id == id) {
          target = std::move(b);
          break;
        }
      }
    } else {
      auto e = read_installed(state_dir, at, nullptr);
      if (!e) return std::move(e).error();
      if (*e) target = std::move(**e);
    }
  }
  if (did_change) changed(id);
  if (!target) return Error::described(ENOENT, fmt::format("no extension '{}' is installed", id));
  return std::move(*target);
}

Result<std::vector<std::string>> Registry::prune(const std::string& id, Scope scope,
                                                 std::uint32_t uid,
                                                 const std::set<std::string>& keep) {
  if (!plausible_id(id)) return bad_id(id);
  std::vector<Version> kept;
  for (const auto& k : keep) {
    if (auto v = parse_version(k)) kept.push_back(*v);
  }
  fs::path id_dir = level_dir(scope, uid) / id;
  std::vector<std::string> removed;
  std::vector<fs::path> doomed;
  {
    std::lock_guard lock(mu_);
    auto e = effective(id_dir);
    if (!e) return std::move(e).error();
    if (e->versions.empty()) {
      return Error::described(ENOENT, fmt::format("no extension '{}' is installed {}", id,
                                                  where_installed(scope, uid)));
    }
    for (const auto& v : e->versions) {
      if (v.name == e->current) continue;
      if (std::find(kept.begin(), kept.end(), v.version) != kept.end()) continue;
      fs::path aside = id_dir / temp_name();
      if (::rename((id_dir / v.name).c_str(), aside.c_str()) != 0) {
        return Error::from_errno("remove " + (id_dir / v.name).string());
      }
      removed.push_back(v.name);
      doomed.push_back(std::move(aside));
    }
    if (removed.empty()) return removed;
    if (auto r = fsync_path(id_dir); !r) return std::move(r).error();
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  for (const auto& d : doomed) remove_quietly(d);
  changed(id);
  return removed;
}

void Registry::on_change(std::function<void(const std::string& id)> callback) {
  std::lock_guard lock(callbacks_mu_);
  callbacks_.push_back(std::move(callback));
}

void Registry::changed(const std::string& id) {
  std::vector<std::function<void(const std::string&)>> copy;
  {
    std::lock_guard lock(callbacks_mu_);
    copy = callbacks_;
  }
  for (const auto& cb : copy) cb(id);
}

}  // namespace symphony::stage
