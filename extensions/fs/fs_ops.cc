// File operations confined to a workspace. Confinement is the kernel's job
// where it can do it: openat2(RESOLVE_BENEATH) refuses any resolution that
// leaves the directory, races included. Without openat2 the fallback opens an
// O_PATH descriptor, checks where /proc/self/fd says it points, and reopens
// that very inode, so a symlink swapped in between changes nothing. Walks
// (list, search) never follow symlinks: each level is opened with O_NOFOLLOW
// relative to its already-confined parent.
#include "extensions/fs/fs_ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/openat2.h>
#include <regex.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

namespace symphony::extensions::fs {
namespace {

constexpr int kMaxDepth = 256;
constexpr std::size_t kMaxLineText = 1024;
// Bytes looked at for a NUL when deciding a file is binary (as git and grep do).
constexpr std::size_t kBinaryProbe = 8000;

std::string shown(std::string_view path) {
  return "'" + std::string(path.empty() ? "." : path) + "'";
}

std::string join(const std::string& dir, std::string_view name) {
  return dir.empty() ? std::string(name) : dir + "/" + std::string(name);
}

Error open_error(const std::string& rel, int err) {
  if (err == EXDEV) {
    return Error::described(EXDEV, "path " + shown(rel) + " leads outside the workspace");
  }
  return Error(err, "open " + shown(rel));
}

Result<std::string> read_all(int fd, std::uint64_t limit, const std::string& rel) {
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("read " + shown(rel));
    if (n == 0) return data;
    data.append(buf, static_cast<std::size_t>(n));
    if (data.size() > limit) return data;  // the caller reports the size
  }
}

// fnmatch against the name, or the whole relative path for a pattern with '/'.
bool glob_matches(const std::string& pattern, const std::string& rel, std::string_view name) {
  if (pattern.empty()) return true;
  if (pattern.find('/') != std::string::npos) {
    return ::fnmatch(pattern.c_str(), rel.c_str(), FNM_PATHNAME) == 0;
  }
  return ::fnmatch(pattern.c_str(), std::string(name).c_str(), 0) == 0;
}

std::string type_of(mode_t mode) {
  if (S_ISREG(mode)) return "file";
  if (S_ISDIR(mode)) return "directory";
  if (S_ISLNK(mode)) return "symlink";
  return "other";
}

// Called for each entry with its path relative to the workspace, its name,
// its lstat and the descriptor of the directory holding it; false stops.
using Visitor = std::function<bool(const std::string& rel, std::string_view name,
                                   const struct stat& st, int dirfd)>;

// Walks the directory `dir` (at `rel`), names sorted, depth first. Returns
// false when the visitor stopped the walk.
Result<bool> walk(UniqueFd dir, const std::string& rel, bool recursive, int depth,
                  const Visitor& visit) {
  std::vector<std::string> names;
  {
    int listing_fd = ::dup(dir.get());
    if (listing_fd < 0) return Error::from_errno("read directory " + shown(rel));
    std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(listing_fd), ::closedir);
    if (!d) {
      int err = errno;
      ::close(listing_fd);
      return Error(err, "read directory " + shown(rel));
    }
    errno = 0;
    while (struct dirent* e = ::readdir(d.get())) {
      std::string_view name(e->d_name);
      if (name != "." && name != "..") names.emplace_back(name);
      errno = 0;
    }
    if (errno != 0) return Error::from_errno("read directory " + shown(rel));
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    struct stat st {};
    if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;  // removed while we walked
      return Error::from_errno("stat " + shown(join(rel, name)));
    }
    const std::string child = join(rel, name);
    if (!visit(child, name, st, dir.get())) return false;
    if (!recursive || !S_ISDIR(st.st_mode)) continue;
    if (depth + 1 >= kMaxDepth) {
      return Error::described(ELOOP, "directory " + shown(child) + " is nested deeper than " +
                                         std::to_string(kMaxDepth) + " levels");
    }
    UniqueFd sub(::openat(dir.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) return Error::from_errno("open directory " + shown(child));
    auto more = walk(std::move(sub), child, recursive, depth + 1, visit);
    if (!more) return more.error();
    if (!*more) return false;
  }
  return true;
}

// The text of a matching line: without its line end, cut at a UTF-8
// character boundary.
std::string line_text(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() <= kMaxLineText) return std::string(line);
  std::size_t cut = kMaxLineText;
  while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
  return std::string(line.substr(0, cut));
}

struct RegexDeleter {
  void operator()(regex_t* re) const {
    ::regfree(re);
    delete re;
  }
};

// Searches one file's bytes; false when max_matches stopped it.
bool search_text(const regex_t& re, const std::string& rel, const std::string& data,
                 const SearchOptions& options, SearchResult& out) {
  std::uint64_t number = 0;
  std::size_t start = 0;
  std::string line;
  while (start < data.size()) {
    std::size_t end = data.find('\n', start);
    if (end == std::string::npos) end = data.size();
    ++number;
    line.assign(data, start, end - start);
    if (::regexec(&re, line.c_str(), 0, nullptr, 0) == 0) {
      if (out.matches.size() >= options.max_matches) {
        out.truncated = true;
        return false;
      }
      out.matches.push_back(Match{rel, number, line_text(line)});
    }
    start = end + 1;
  }
  return true;
}

// Reads a regular file for search; nullopt (and counted as skipped) when it
// is too large or binary.
Result<std::optional<std::string>> searchable(int fd, const struct stat& st, const std::string& rel,
                                              const SearchOptions& options, SearchResult& out) {
  if (static_cast<std::uint64_t>(st.st_size) > options.max_file_bytes) {
    ++out.files_skipped;
    return std::optional<std::string>();
  }
  auto data = read_all(fd, options.max_file_bytes, rel);
  if (!data) return data.error();
  if (data->size() > options.max_file_bytes ||
      data->find('\0') < std::min(data->size(), kBinaryProbe)) {
    ++out.files_skipped;
    return std::optional<std::string>();
  }
  ++out.files_searched;
  return std::optional<std::string>(std::move(*data));
}

}  // namespace

// --- paths ---------------------------------------------------------------------

Result<std::string> check_relative(std::string_view path) {
  if (path.empty()) {
    return Error::invalid("path is empty (use '.' for the workspace itself)");
  }
  if (path.find('\0') != std::string_view::npos) {
    return Error::invalid("path contains a NUL byte");
  }
  if (path.front() == '/') {
    return Error::invalid("path '" + std::string(path) +
                          "' is absolute; paths are relative to the workspace");
  }
  std::string out;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    if (part == "..") {
      return Error::invalid("path '" + std::string(path) +
                            "' contains '..'; paths must stay inside the workspace");
    }
    if (!part.empty() && part != ".") out = join(out, part);
    start = end + 1;
  }
  return out;
}

Result<Workspace> Workspace::open(const std::filesystem::path& root, Confinement confinement) {
  if (root.empty()) return Error::invalid("the step has no workspace");
  std::error_code ec;
  std::filesystem::path resolved = std::filesystem::canonical(root, ec);
  if (ec) return Error(ec.value(), "workspace " + root.string());
  UniqueFd fd(::open(resolved.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Error::from_errno("open workspace " + resolved.string());
  return Workspace(std::move(fd), std::move(resolved), confinement);
}

Result<UniqueFd> Workspace::open_beneath(const std::string& rel, int flags, mode_t mode) const {
  if (confinement_ != Confinement::realpath_check) {
    struct open_how how {};
    how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
    how.mode = (flags & (O_CREAT | O_TMPFILE)) != 0 ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    long fd = ::syscall(SYS_openat2, fd_.get(), rel.empty() ? "." : rel.c_str(), &how, sizeof how);
    if (fd >= 0) return UniqueFd(static_cast<int>(fd));
    if (errno != ENOSYS || confinement_ == Confinement::beneath) return open_error(rel, errno);
  }
  return open_checked(rel, flags, mode);
}

// Without openat2: the parent directory and then the entry itself are opened
// as O_PATH, checked against the root through /proc/self/fd, and only then
// reopened with the real flags. Creating a file happens in the checked parent
// with O_NOFOLLOW, so a dangling symlink cannot make it land outside.
Result<UniqueFd> Workspace::open_checked(const std::string& rel, int flags, mode_t mode) const {
  auto inside = [this](int fd) -> Result<bool> {
    std::string link = "/proc/self/fd/" + std::to_string(fd);
    std::error_code ec;
    std::filesystem::path real = std::filesystem::read_symlink(link, ec);
    if (ec) return Error(ec.value(), "resolve " + link);
    const std::string r = real.string();
    const std::string root = root_.string();
    return r == root || root == "/" || r.starts_with(root + "/");
  };
  auto checked = [&](UniqueFd fd) -> Result<UniqueFd> {
    auto ok = inside(fd.get());
    if (!ok) return ok.error();
    if (!*ok) return open_error(rel, EXDEV);
    return fd;
  };

  const std::size_t slash = rel.rfind('/');
  const std::string parent = slash == std::string::npos ? "" : rel.substr(0, slash);
  const std::string name = slash == std::string::npos ? rel : rel.substr(slash + 1);
  UniqueFd dir(::openat(fd_.get(), parent.empty() ? "." : parent.c_str(),
                        O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return open_error(parent, errno);
  auto dir_ok = checked(std::move(dir));
  if (!dir_ok) return dir_ok.error();
  if (name.empty()) {
    if ((flags & O_PATH) != 0) return std::move(*dir_ok);
    UniqueFd fd(::openat(dir_ok->get(), ".", flags | O_CLOEXEC));
    if (!fd) return open_error(rel, errno);
    return fd;
  }

  UniqueFd entry(::openat(dir_ok->get(), name.c_str(), O_PATH | O_CLOEXEC | (flags & O_NOFOLLOW)));
  if (!entry) {
    if (errno == ENOENT && (flags & O_CREAT) != 0) {
      UniqueFd fd(::openat(dir_ok->get(), name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode));
      if (!fd) return open_error(rel, errno);
      return fd;
    }
    return open_error(rel, errno);
  }
  auto entry_ok = checked(std::move(entry));
  if (!entry_ok) return entry_ok.error();
  if ((flags & O_PATH) != 0) return std::move(*entry_ok);
  // Reopening through /proc opens the inode that was checked, not whatever
  // the name points at by now.
  std::string proc = "/proc/self/fd/" + std::to_string(entry_ok->get());
  UniqueFd fd(::open(proc.c_str(), (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CLOEXEC));
  if (!fd) return open_error(rel, errno);
  return fd;
}

// --- operations ----------------------------------------------------------------

Result<Listing> list(const Workspace& workspace, const ListOptions& options) {
  if (options.max_entries == 0) return Error::invalid("max_entries must be at least 1");
  auto rel = check_relative(options.path);
  if (!rel) return rel.error();
  auto fd = workspace.open_beneath(*rel, O_PATH);
  if (!fd) return fd.error();
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return Error::from_errno("stat " + shown(*rel));

  Listing out;
  auto add = [&](const std::string& path, std::string_view name, const struct stat& s) {
    if (!glob_matches(options.pattern, path, name)) return true;
    if (out.entries.size() >= options.max_entries) {
      out.truncated = true;
      return false;
    }
    out.entries.push_back(Entry{path, type_of(s.st_mode),
                                S_ISREG(s.st_mode) ? static_cast<std::uint64_t>(s.st_size) : 0});
    return true;
  };
  if (!S_ISDIR(st.st_mode)) {
    std::string_view name = *rel;
    name = name.substr(name.rfind('/') + 1);
    add(*rel, name, st);
    return out;
  }
  auto dir = workspace.open_beneath(*rel, O_RDONLY | O_DIRECTORY);
  if (!dir) return dir.error();
  auto walked = walk(std::move(*dir), *rel, options.recursive, 0,
                     [&](const std::string& path, std::string_view name, const struct stat& s, int) {
                       return add(path, name, s);
                     });
  if (!walked) return walked.error();
  return out;
}

Result<FileContent> read(const Workspace& workspace, std::string_view path, std::uint64_t max_bytes) {
  auto rel = check_relative(path);
  if (!rel) return rel.error();
  auto fd = workspace.open_beneath(*rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  if (!fd) return fd.error();
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return Error::from_errno("stat " + shown(*rel));
  if (S_ISDIR(st.st_mode)) return Error::described(EISDIR, shown(*rel) + " is a directory");
  if (!S_ISREG(st.st_mode)) {
    return Error::described(EINVAL, shown(*rel) + " is not a regular file");
  }
  auto too_big = [&](std::uint64_t size) {
    return Error::described(EFBIG, shown(*rel) + " is " + std::to_string(size) +
                                       " bytes, over max_bytes (" + std::to_string(max_bytes) + ")");
  };
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) return too_big(st.st_size);
  auto data = read_all(fd->get(), max_bytes, *rel);
  if (!data) return data.error();
  if (data->size() > max_bytes) return too_big(data->size());
  FileContent out;
  out.media_type = guess_media_type(*data);
  out.data = std::move(*data);
  return out;
}

Result<std::uint64_t> write(const Workspace& workspace, const WriteOptions& options) {
  auto rel = check_relative(options.path);
  if (!rel) return rel.error();
  if (rel->empty()) return Error::invalid("path '.' is the workspace itself, not a file");
  const std::size_t slash = rel->rfind('/');
  const std::string parent = slash == std::string::npos ? "" : rel->substr(0, slash);
  const std::string name = slash == std::string::npos ? *rel : rel->substr(slash + 1);

  auto dir = workspace.open_beneath("", O_PATH | O_DIRECTORY);
  if (!dir) return dir.error();
  if (options.create_parents) {
    // One level at a time, each reopened beneath the root: a symlink on the
    // way is resolved under the same confinement as any other path.
    std::string prefix;
    std::size_t start = 0;
    while (start < parent.size()) {
      std::size_t end = parent.find('/', start);
      if (end == std::string::npos) end = parent.size();
      const std::string part = parent.substr(start, end - start);
      prefix = join(prefix, part);
      if (::mkdirat(dir->get(), part.c_str(), 0777) != 0 && errno != EEXIST) {
        return Error::from_errno("create directory " + shown(prefix));
      }
      dir = workspace.open_beneath(prefix, O_PATH | O_DIRECTORY);
      if (!dir) return dir.error();
      start = end + 1;
    }
  } else if (!parent.empty()) {
    dir = workspace.open_beneath(parent, O_PATH | O_DIRECTORY);
    if (!dir && dir.error().code() == ENOENT) {
      return Error::described(ENOENT, "directory " + shown(parent) +
                                          " does not exist (create_parents = true creates it)");
    }
    if (!dir) return dir.error();
  }

  auto write_all = [&](int fd) -> Result<void> {
    std::string_view left = options.content;
    while (!left.empty()) {
      ssize_t n = ::write(fd, left.data(), left.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error::from_errno("write " + shown(*rel));
      left.remove_prefix(static_cast<std::size_t>(n));
    }
    return ok();
  };

  struct stat st {};
  const bool exists = ::fstatat(dir->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
  if (!exists && errno != ENOENT) return Error::from_errno("stat " + shown(*rel));
  if (exists && S_ISDIR(st.st_mode)) return Error::described(EISDIR, shown(*rel) + " is a directory");
  if (exists && S_ISLNK(st.st_mode)) {
    // Written in place through the link, which must resolve inside.
    auto fd = workspace.open_beneath(*rel, O_WRONLY | O_TRUNC | O_NOCTTY);
    if (!fd) return fd.error();
    if (auto w = write_all(fd->get()); !w) return w.error();
    return options.content.size();
  }
  if (exists && !S_ISREG(st.st_mode)) {
    return Error::described(EINVAL, shown(*rel) + " is not a regular file");
  }

  // A temporary file beside the target, renamed over it: readers see the old
  // content or the new, never half of it.
  static std::atomic<unsigned> counter{0};
  const std::string temp = "." + name + ".symphony-" + std::to_string(::getpid()) + "-" +
                           std::to_string(counter.fetch_add(1));
  UniqueFd fd(::openat(dir->get(), temp.c_str(),
                       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666));
  if (!fd) return Error::from_errno("create " + shown(join(parent, temp)));
  auto remove_temp = [&] { ::unlinkat(dir->get(), temp.c_str(), 0); };
  if (exists && ::fchmod(fd.get(), st.st_mode & 07777) != 0) {
    Error e = Error::from_errno("keep the permissions of " + shown(*rel));
    remove_temp();
    return e;
  }
  if (auto w = write_all(fd.get()); !w) {
    remove_temp();
    return w.error();
  }
  if (::renameat(dir->get(), temp.c_str(), dir->get(), name.c_str()) != 0) {
    Error e = Error::from_errno("replace " + shown(*rel));
    remove_temp();
    return e;
  }
  return options.content.size();
}

Result<SearchResult> search(const Workspace& workspace, const SearchOptions& options) {
  if (options.pattern.empty()) return Error::invalid("pattern is empty");
  if (options.max_matches == 0) return Error::invalid("max_matches must be at least 1");
  auto rel = check_relative(options.path);
  if (!rel) return rel.error();

  std::unique_ptr<regex_t, RegexDeleter> re(new regex_t);
  int flags = REG_EXTENDED | REG_NOSUB | (options.ignore_case ? REG_ICASE : 0);
  if (int rc = ::regcomp(re.get(), options.pattern.c_str(), flags); rc != 0) {
    char why[256];
    ::regerror(rc, re.get(), why, sizeof why);
    delete re.release();  // regcomp failed: nothing to regfree
    return Error::invalid("pattern '" + options.pattern + "': " + why);
  }

  SearchResult out;
  auto fd = workspace.open_beneath(*rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  if (!fd) return fd.error();
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return Error::from_errno("stat " + shown(*rel));
  if (!S_ISDIR(st.st_mode)) {
    if (!S_ISREG(st.st_mode)) return Error::described(EINVAL, shown(*rel) + " is not a regular file");
    auto data = searchable(fd->get(), st, *rel, options, out);
    if (!data) return data.error();
    if (*data) search_text(*re, *rel, **data, options, out);
    return out;
  }

  std::optional<Error> failed;
  auto walked = walk(std::move(*fd), *rel, /*recursive=*/true, 0,
                     [&](const std::string& path, std::string_view name, const struct stat& s,
                         int dirfd) {
                       if (!S_ISREG(s.st_mode) || !glob_matches(options.glob, path, name)) return true;
                       UniqueFd file(::openat(dirfd, std::string(name).c_str(),
                                              O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
                       if (!file) {
                         failed = Error::from_errno("open " + shown(path));
                         return false;
                       }
                       auto data = searchable(file.get(), s, path, options, out);
                       if (!data) {
                         failed = data.error();
                         return false;
                       }
                       return !*data || search_text(*re, path, **data, options, out);
                     });
  if (!walked) return walked.error();
  if (failed) return *failed;
  return out;
}

// --- text ----------------------------------------------------------------------

bool is_utf8(std::string_view data) {
  std::size_t i = 0;
  while (i < data.size()) {
    const auto c = static_cast<unsigned char>(data[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= data.size()) return false;  // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(data[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

std::string guess_media_type(std::string_view data) {
  if (data.find('\0') == std::string_view::npos && is_utf8(data)) return "text/plain";
  return "application/octet-stream";
}

}  // namespace symphony::extensions::fs
