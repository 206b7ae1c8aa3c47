// The cgroup v1 backend (cgroup_v1.h): one directory per sandbox in each v1
// hierarchy it uses, limits in cpu.cfs_quota_us / memory.limit_in_bytes /
// memory.memsw.limit_in_bytes / pids.max / devices.{deny,allow}, and the
// freezer for a kill nothing escapes on hosts without cgroup.kill.
#include "sandbox/cgroup_v1.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "sandbox/cgroup_fs.h"

namespace symphony::sandbox {

using cgroupfs::join;

namespace {

bool contains(const std::vector<std::string>& words, std::string_view word) {
  return std::find(words.begin(), words.end(), word) != words.end();
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// DeviceRule -> devices.allow lines ("c 1:3 rwm", "c 136:* rw").
Result<std::vector<std::string>> allow_lines(const DeviceRule& rule) {
  auto number = [](int n) { return n == -1 ? std::string("*") : std::to_string(n); };
  std::string numbers = number(rule.major) + ":" + number(rule.minor);
  std::string where =
      "device rule '" + std::string(1, rule.type) + " " + numbers + " " + rule.access + "'";
  if (rule.major < -1 || rule.minor < -1) {
    return Error::invalid(where + ": major and minor are numbers, or -1 for any");
  }
  if (rule.access.empty() || rule.access.find_first_not_of("rwm") != std::string::npos) {
    return Error::invalid(where + ": access must be a non-empty subset of \"rwm\"");
  }
  switch (rule.type) {
    case 'c':
    case 'b':
      return std::vector<std::string>{std::string(1, rule.type) + " " + numbers + " " +
                                      rule.access};
    case 'a':
      // v1 reads "a" as "everything" and ignores the rest of the line, so a
      // narrower rule for both types is written once per type.
      return std::vector<std::string>{"c " + numbers + " " + rule.access,
                                      "b " + numbers + " " + rule.access};
    default:
      return Error::invalid(where + ": type must be 'c', 'b' or 'a'");
  }
}

}  // namespace

V1Group::~V1Group() { (void)remove(); }

const std::string* V1Group::dir_of(std::string_view controller) const {
  for (const Dir& d : dirs_) {
    if (contains(d.controllers, controller)) return &d.path;
  }
  return nullptr;
}

std::vector<std::string> V1Group::paths() const {
  std::vector<std::string> out;
  for (const Dir& d : dirs_) {
    std::string names;
    for (const auto& c : d.controllers) names += (names.empty() ? "" : ",") + c;
    out.push_back(names + ":" + d.path);
  }
  return out;
}

Result<void> V1Group::add_process(int pid) {
  for (const Dir& d : dirs_) {
    if (auto r = cgroupfs::write_file(join(d.path, "cgroup.procs"), std::to_string(pid)); !r) {
      return r;
    }
  }
  return ok();
}

std::vector<int> V1Group::pids() const {
  std::vector<int> all;
  if (removed_) return all;
  for (const Dir& d : dirs_) {
    auto some = cgroupfs::subtree_pids(d.path);
    all.insert(all.end(), some.begin(), some.end());
  }
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  return all;
}

bool V1Group::populated() const { return !pids().empty(); }

Result<void> V1Group::freeze_and_kill(const std::string& freezer_dir) {
  const std::string state = join(freezer_dir, "freezer.state");
  Result<void> failed = ok();
  bool empty = cgroupfs::poll_until(
      [&] {
        if (auto r = cgroupfs::write_file(state, "FROZEN"); !r) {
          failed = std::move(r);
          return true;
        }
        // A task in the middle of a system call may take a moment; the
        // bound keeps a task stuck in the kernel from stalling us.
        cgroupfs::poll_until(
            [&] { return trimmed(cgroupfs::read_file(state).value_or("")) == "FROZEN"; },
            std::chrono::milliseconds(500));
        auto victims = pids();
        cgroupfs::kill_pids(victims);
        // Frozen tasks die of the SIGKILL only once thawed.
        if (auto r = cgroupfs::write_file(state, "THAWED"); !r) {
          failed = std::move(r);
          return true;
        }
        return victims.empty();
      },
      cgroupfs::kEmptyWait);
  if (!failed) return failed;
  if (!empty) return Error(EBUSY, "kill processes in " + freezer_dir + ": some are still there");
  return ok();
}

Result<void> V1Group::kill() {
  if (removed_ || dirs_.empty()) return ok();
  if (const std::string* freezer = dir_of("freezer"); freezer && cgroupfs::exists(*freezer)) {
    auto r = freeze_and_kill(*freezer);
    if (r || r.error().code() == EBUSY) return r;
    // The freezer refused (a dying group): plain SIGKILL below still works.
  }
  bool empty = cgroupfs::poll_until(
      [&] {
        auto victims = pids();
        cgroupfs::kill_pids(victims);
        return victims.empty();
      },
      cgroupfs::kEmptyWait);
  if (!empty)
    return Error(EBUSY, "kill processes in " + paths().front() + ": some are still there");
  return ok();
}

std::optional<std::chrono::microseconds> V1Group::cpu_usage() const {
  const std::string* dir = dir_of("cpuacct");
  if (dir == nullptr) return std::nullopt;
  auto text = cgroupfs::read_file(join(*dir, "cpuacct.usage"));
  if (!text) return std::nullopt;
  std::string value = trimmed(std::move(*text));
  char* end = nullptr;
  unsigned long long ns = std::strtoull(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0') return std::nullopt;
  return std::chrono::microseconds(static_cast<std::int64_t>(ns / 1000));
}

std::optional<std::uint64_t> V1Group::oom_kills() const {
  const std::string* dir = dir_of("memory");
  if (dir == nullptr) return std::nullopt;
  return cgroupfs::read_key(join(*dir, "memory.oom_control"), "oom_kill");
}

Result<void> V1Group::remove() {
  if (removed_) return ok();
  Result<void> killed = kill();
  bool empty = cgroupfs::poll_until([&] { return !populated(); }, cgroupfs::kEmptyWait);
  if (!empty && !killed) return killed;
  for (const Dir& d : dirs_) {
    if (auto r = cgroupfs::remove_dirs(d.path); !r) return r;
  }
  removed_ = true;
  return ok();
}

bool V1Subtree::has(std::string_view controller) const {
  return std::any_of(hierarchies_.begin(), hierarchies_.end(),
                     [&](const V1Hierarchy& h) { return contains(h.controllers, controller); });
}

Result<V1Subtree> V1Subtree::open(std::vector<V1Hierarchy> hierarchies) {
  V1Subtree tree;
  for (const V1Hierarchy& h : hierarchies) {
    if (auto r = cgroupfs::make_dirs(h.anchor, h.base); !r) return std::move(r).error();
    if (contains(h.controllers, "memory")) {
      tree.has_memsw_ = cgroupfs::exists(join(h.base, "memory.memsw.limit_in_bytes"));
    }
  }
  tree.hierarchies_ = std::move(hierarchies);
  return tree;
}

Result<void> V1Subtree::apply_limits(const V1Group& group, const CgroupLimits& limits) const {
  auto write = [&](std::string_view controller, const char* file, const std::string& value) {
    const std::string* dir = group.dir_of(controller);
    if (dir == nullptr) {
      return Result<void>(Error(ENOENT, "no v1 " + std::string(controller) + " hierarchy"));
    }
    return cgroupfs::write_file(join(*dir, file), value);
  };
  if (group.dir_of("cpu")) {
    auto quota = limits.cpu ? std::max<long long>(1000, std::llround(*limits.cpu * 100000.0)) : -1;
    if (auto r = write("cpu", "cpu.cfs_period_us", "100000"); !r) return r;
    if (auto r = write("cpu", "cpu.cfs_quota_us", std::to_string(quota)); !r) return r;
  }
  if (group.dir_of("memory")) {
    // memsw (memory plus swap) may never be below the memory limit: when
    // lifting limits, memsw goes first; when setting them, memory goes first.
    std::string memory = limits.memory ? std::to_string(limits.memory->value) : "-1";
    std::string memsw = limits.memory
                            ? std::to_string(limits.memory->value + (limits.swap ? limits.swap->value : 0))
                            : "-1";
    if (!limits.memory && has_memsw_) {
      if (auto r = write("memory", "memory.memsw.limit_in_bytes", memsw); !r) return r;
    }
    if (auto r = write("memory", "memory.limit_in_bytes", memory); !r) return r;
    if (limits.memory && has_memsw_) {
      if (auto r = write("memory", "memory.memsw.limit_in_bytes", memsw); !r) return r;
    }
  }
  if (group.dir_of("pids")) {
    if (auto r = write("pids", "pids.max", limits.pids ? std::to_string(*limits.pids) : "max"); !r) {
      return r;
    }
  }
  return ok();
}

Result<std::unique_ptr<V1Group>> V1Subtree::create(const std::string& name,
                                                   const std::vector<std::string>& controllers,
                                                   const CgroupLimits& limits) const {
  // Each directory joins the group as soon as it exists, so that a failed
  // step (mkdir or limit) removes what was made.
  auto group = std::make_unique<V1Group>(std::vector<V1Group::Dir>{});
  for (const V1Hierarchy& h : hierarchies_) {
    bool used = std::any_of(h.controllers.begin(), h.controllers.end(),
                            [&](const std::string& c) { return contains(controllers, c); });
    if (!used) continue;
    std::string path = join(h.base, name);
    if (::mkdir(path.c_str(), 0755) != 0) return Error::from_errno("mkdir " + path);
    group->dirs_.push_back({h.controllers, std::move(path)});
  }
  auto write = [&](std::string_view controller, const char* file, const std::string& value) {
    const std::string* dir = group->dir_of(controller);
    if (dir == nullptr) {
      return Result<void>(Error(ENOENT, "no v1 " + std::string(controller) + " hierarchy"));
    }
    return cgroupfs::write_file(join(*dir, file), value);
  };
  if (limits.cpu || limits.memory || limits.pids) {
    if (auto r = apply_limits(*group, limits); !r) return std::move(r).error();
  }
  if (contains(controllers, "devices")) {
    std::vector<std::string> lines;
    for (const DeviceRule& rule : limits.devices) {
      auto more = allow_lines(rule);
      if (!more) return std::move(more).error();
      lines.insert(lines.end(), more->begin(), more->end());
    }
    // "a" in devices.deny: deny by default and drop the exceptions the
    // group inherited; then the allow list, one rule per write.
    if (auto r = write("devices", "devices.deny", "a"); !r) return std::move(r).error();
    for (const std::string& line : lines) {
      if (auto r = write("devices", "devices.allow", line); !r) return std::move(r).error();
    }
  }
  return group;
}

std::unique_ptr<V1Group> V1Subtree::adopt(const std::string& name) const {
  std::vector<V1Group::Dir> dirs;
  for (const V1Hierarchy& h : hierarchies_) {
    std::string path = join(h.base, name);
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
      dirs.push_back({h.controllers, path});
  }
  if (dirs.empty()) return nullptr;
  return std::make_unique<V1Group>(std::move(dirs));
}

}  // namespace symphony::sandbox
