// Finding the host's cgroup hierarchies (detect_cgroup_host: which are
// mounted where, and where this process sits in each) and the file-level
// helpers the backends share (cgroup_fs.h): both are about the cgroup
// filesystems themselves, before any policy of ours.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <set>
#include <thread>

#include "base/unique_fd.h"
#include "sandbox/cgroup.h"
#include "sandbox/cgroup_fs.h"

namespace symphony::sandbox {

std::string_view to_string(CgroupLayout layout) {
  switch (layout) {
    case CgroupLayout::unified:
      return "unified";
    case CgroupLayout::hybrid:
      return "hybrid";
    case CgroupLayout::legacy:
      return "legacy";
    case CgroupLayout::none:
      return "none";
  }
  return "unknown";
}

namespace cgroupfs {

std::string join(std::string_view a, std::string_view b) {
  while (!b.empty() && b.front() == '/') b.remove_prefix(1);
  std::string out(a);
  if (b.empty()) return out.empty() ? "/" : out;
  if (out.empty() || out.back() != '/') out += '/';
  out += b;
  return out;
}

std::string parent_of(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  auto slash = path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

bool is_within(std::string_view path, std::string_view dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.remove_suffix(1);
  if (dir == "/") return !path.empty() && path.front() == '/';
  if (path.substr(0, dir.size()) != dir) return false;
  return path.size() == dir.size() || path[dir.size()] == '/';
}

Result<std::string> read_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno("open " + path);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

Result<void> write_file(const std::string& path, std::string_view value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno("open " + path);
  ssize_t n;
  do {
    n = ::write(fd.get(), value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Error::from_errno("write " + path);
  if (static_cast<std::size_t>(n) != value.size()) {
    return Error(EIO, "write " + path + ": short write");
  }
  return ok();
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

namespace {

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    auto pos = text.find(sep);
    out.push_back(text.substr(0, pos));
    if (pos == std::string_view::npos) break;
    text.remove_prefix(pos + 1);
  }
  return out;
}

}  // namespace

std::optional<std::uint64_t> read_key(const std::string& path, std::string_view key) {
  auto text = read_file(path);
  if (!text) return std::nullopt;
  for (std::string_view line : split(*text, '\n')) {
    auto space = line.find(' ');
    if (space == std::string_view::npos || line.substr(0, space) != key) continue;
    return parse_u64(line.substr(space + 1));
  }
  return std::nullopt;
}

std::vector<std::string> read_words(const std::string& path) {
  std::vector<std::string> out;
  auto text = read_file(path);
  if (!text) return out;
  std::string word;
  for (char c : *text) {
    if (c == ' ' || c == '\n' || c == '\t') {
      if (!word.empty()) out.push_back(std::move(word));
      word.clear();
    } else {
      word += c;
    }
  }
  if (!word.empty()) out.push_back(std::move(word));
  return out;
}

std::vector<std::string> subdirs(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    bool is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st {};
      is_dir = ::stat(join(dir, name).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    }
    if (is_dir) out.emplace_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

Result<void> make_dirs(const std::string& anchor, const std::string& path) {
  if (!is_within(path, anchor)) {
    return Error::invalid("cgroup directory " + path + " is not below " + anchor);
  }
  struct stat st {};
  if (::stat(anchor.c_str(), &st) != 0) return Error::from_errno("stat " + anchor);
  std::string current = anchor;
  std::string_view rest = std::string_view(path).substr(anchor.size());
  for (std::string_view part : split(rest, '/')) {
    if (part.empty()) continue;
    current = join(current, part);
    if (::mkdir(current.c_str(), 0755) != 0 && errno != EEXIST) {
      return Error::from_errno("mkdir " + current);
    }
  }
  return ok();
}

Result<void> remove_dirs(const std::string& dir) {
  for (const std::string& child : subdirs(dir)) {
    if (auto r = remove_dirs(join(dir, child)); !r) return r;
  }
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) return Error::from_errno("rmdir " + dir);
  return ok();
}

std::vector<int> subtree_pids(const std::string& dir) {
  std::vector<int> out;
  if (auto text = read_file(join(dir, "cgroup.procs"))) {
    for (std::string_view line : split(*text, '\n')) {
      auto v = parse_u64(line);
      if (v && *v > 0 && *v <= static_cast<std::uint64_t>(INT32_MAX)) {
        out.push_back(static_cast<int>(*v));
      }
    }
  }
  for (const std::string& child : subdirs(dir)) {
    auto more = subtree_pids(join(dir, child));
    out.insert(out.end(), more.begin(), more.end());
  }
  return out;
}

void kill_pids(const std::vector<int>& pids) {
  const int self = ::getpid();
  for (int pid : pids) {
    // kill(0) or kill(-1) would reach our own process group or every
    // process we may signal: only real, foreign pids are sent SIGKILL.
    if (pid <= 0 || pid == self) continue;
    ::kill(pid, SIGKILL);
  }
}

bool poll_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

Result<void> kill_until_empty(const std::string& dir, std::chrono::milliseconds limit) {
  bool empty = poll_until(
      [&] {
        auto pids = subtree_pids(dir);
        kill_pids(pids);
        return pids.empty();
      },
      limit);
  if (!empty) return Error(EBUSY, "kill processes in " + dir + ": some are still there");
  return ok();
}

std::string group_name(std::string_view name, int launcher_pid, std::uint64_t n) {
  std::string clean;
  for (char c : name.substr(0, 40)) {
    bool safe = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '.' || c == '-';
    clean += safe ? c : '_';
  }
  // "." and ".." are not names a directory can have.
  if (clean.empty() || clean == "." || clean == "..") clean = "sandbox";
  return "sbx-" + clean + "-" + std::to_string(launcher_pid) + "-" + std::to_string(n);
}

std::optional<int> group_owner(std::string_view dir_name) {
  if (dir_name.substr(0, 4) != "sbx-") return std::nullopt;
  std::string_view rest = dir_name.substr(4);
  auto last = rest.rfind('-');
  if (last == std::string_view::npos || last == 0) return std::nullopt;
  auto counter = parse_u64(rest.substr(last + 1));
  auto prev = rest.rfind('-', last - 1);
  if (!counter || prev == std::string_view::npos) return std::nullopt;
  auto pid = parse_u64(rest.substr(prev + 1, last - prev - 1));
  if (!pid || *pid == 0 || *pid > static_cast<std::uint64_t>(INT32_MAX)) return std::nullopt;
  return static_cast<int>(*pid);
}

}  // namespace cgroupfs

namespace {

using cgroupfs::split;

// Mount options of cgroup v1 super blocks that are not controllers.
bool is_v1_option(std::string_view word) {
  static const std::set<std::string_view> options = {
      "rw", "ro", "none", "noprefix", "clone_children", "xattr", "cpuset_v2_mode", "favordynmods"};
  return options.count(word) != 0 || word.find('=') != std::string_view::npos;
}

// mountinfo escapes blanks and backslashes in paths as octal ("\040").
std::string unescape(std::string_view text) {
  auto octal = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size() && octal(text[i + 1]) && octal(text[i + 2]) &&
        octal(text[i + 3])) {
      out += static_cast<char>((text[i + 1] - '0') * 64 + (text[i + 2] - '0') * 8 +
                               (text[i + 3] - '0'));
      i += 3;
      continue;
    }
    out += text[i];
  }
  return out;
}

struct CgroupMount {
  std::string mount_point;
  std::string root;  // the part of the hierarchy the mount shows ("/" usually)
};

struct Mounts {
  std::optional<CgroupMount> v2;
  std::map<std::string, CgroupMount> v1;  // controller -> mount
};

Result<std::vector<std::string>> read_lines(const std::string& path) {
  auto text = cgroupfs::read_file(path);
  if (!text) return std::move(text).error();
  std::vector<std::string> lines;
  for (std::string_view line : split(*text, '\n')) lines.emplace_back(line);
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

// /proc/self/mountinfo: "36 35 98:0 /root /mount/point rw,relatime shared:1 - fstype source
// super,options".
Result<Mounts> parse_mountinfo(const std::string& path) {
  auto lines = read_lines(path);
  if (!lines) return std::move(lines).error();
  Mounts mounts;
  for (std::size_t i = 0; i < lines->size(); ++i) {
    std::string_view line = (*lines)[i];
    if (line.empty()) continue;
    std::vector<std::string_view> fields;
    for (std::string_view f : split(line, ' ')) {
      if (!f.empty()) fields.push_back(f);
    }
    auto sep = std::find(fields.begin(), fields.end(), "-");
    std::size_t sep_index = static_cast<std::size_t>(sep - fields.begin());
    if (sep == fields.end() || sep_index < 6 || fields.size() < sep_index + 4) {
      return Error::invalid(path + ":" + std::to_string(i + 1) +
                            ": malformed mountinfo line (want 'ID PARENT MAJ:MIN ROOT MOUNT "
                            "OPTIONS ... - FSTYPE SOURCE SUPER-OPTIONS')");
    }
    std::string_view fstype = fields[sep_index + 1];
    CgroupMount mount{unescape(fields[4]), unescape(fields[3])};
    if (fstype == "cgroup2") {
      if (!mounts.v2) mounts.v2 = std::move(mount);
    } else if (fstype == "cgroup") {
      for (std::string_view word : split(fields[sep_index + 3], ',')) {
        if (word.empty() || is_v1_option(word)) continue;
        mounts.v1.emplace(std::string(word), mount);  // the first mount of a hierarchy wins
      }
    }
  }
  return mounts;
}

// /proc/self/cgroup: "4:memory:/process_api/x", "1:cpu,cpuacct:/", "0::/user.slice".
Result<std::map<std::string, std::string>> parse_self_cgroup(const std::string& path) {
  auto lines = read_lines(path);
  if (!lines) return std::move(lines).error();
  std::map<std::string, std::string> paths;
  for (std::size_t i = 0; i < lines->size(); ++i) {
    std::string_view line = (*lines)[i];
    if (line.empty()) continue;
    auto first = line.find(':');
    auto second = first == std::string_view::npos ? first : line.find(':', first + 1);
    std::string_view id = line.substr(0, first);
    bool id_ok = !id.empty() &&
                 std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (second == std::string_view::npos || !id_ok || line.size() == second + 1 ||
        line[second + 1] != '/') {
      return Error::invalid(path + ":" + std::to_string(i + 1) +
                            ": malformed cgroup line (want 'ID:CONTROLLERS:/PATH')");
    }
    std::string_view controllers = line.substr(first + 1, second - first - 1);
    std::string cgroup_path(line.substr(second + 1));
    if (id == "0" && controllers.empty()) {
      paths[""] = cgroup_path;
      continue;
    }
    for (std::string_view c : split(controllers, ',')) {
      if (!c.empty() && c.find('=') == std::string_view::npos) paths[std::string(c)] = cgroup_path;
    }
  }
  return paths;
}

// Our path as seen inside a mount that shows only `root` of the hierarchy
// (containers bind-mount their own part); nullopt when we are outside it.
std::optional<std::string> path_in_mount(const std::string& self, const std::string& root) {
  if (root == "/" || root.empty()) return self;
  if (!cgroupfs::is_within(self, root)) return std::nullopt;
  std::string rest = self.substr(root.size());
  return rest.empty() ? "/" : rest;
}

}  // namespace

Result<CgroupHost> detect_cgroup_host(const std::string& mountinfo,
                                      const std::string& self_cgroup) {
  auto mounts = parse_mountinfo(mountinfo);
  if (!mounts) return std::move(mounts).error();
  auto self = parse_self_cgroup(self_cgroup);
  if (!self) return std::move(self).error();

  // A hierarchy we cannot place ourselves in is left out: without our own
  // path we could not tell our subtree from somebody else's.
  CgroupHost host;
  if (mounts->v2 && self->count("")) {
    if (auto p = path_in_mount(self->at(""), mounts->v2->root)) {
      host.unified_mount = mounts->v2->mount_point;
      host.self_paths[""] = *p;
      host.unified_controllers =
          cgroupfs::read_words(cgroupfs::join(host.unified_mount, "cgroup.controllers"));
    }
  }
  for (const auto& [controller, mount] : mounts->v1) {
    auto it = self->find(controller);
    if (it == self->end()) continue;
    if (auto p = path_in_mount(it->second, mount.root)) {
      host.v1_mounts[controller] = mount.mount_point;
      host.self_paths[controller] = *p;
    }
  }

  bool v1 = !host.v1_mounts.empty();
  bool v2 = !host.unified_mount.empty();
  host.layout = v1 ? (v2 ? CgroupLayout::hybrid : CgroupLayout::legacy)
                   : (v2 ? CgroupLayout::unified : CgroupLayout::none);
  return host;
}

}  // namespace symphony::sandbox
