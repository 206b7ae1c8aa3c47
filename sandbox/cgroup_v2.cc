// The cgroup v2 backend (cgroup_v2.h): one directory per sandbox in the
// unified hierarchy, limits in cpu.max / memory.max / memory.swap.max /
// pids.max, devices through the BPF filter (device_filter_bpf.cc), and the
// v2 core files every non-root group has: cgroup.kill, cgroup.events,
// cpu.stat.
#include "sandbox/cgroup_v2.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "sandbox/cgroup_fs.h"

namespace symphony::sandbox {

using cgroupfs::join;

namespace {

bool contains(const std::vector<std::string>& words, std::string_view word) {
  return std::find(words.begin(), words.end(), word) != words.end();
}

// Enables `controllers` from our own cgroup down to the subtree's parent, so
// that the subtree itself may hand them on; failures go to `notes`.
void enable_above(const V2Subtree::Location& where, const std::vector<std::string>& controllers,
                  std::vector<std::string>& notes) {
  std::vector<std::string> available = cgroupfs::read_words(join(where.own, "cgroup.controllers"));
  std::vector<std::string> wanted;
  for (const auto& c : controllers) {
    if (contains(available, c)) wanted.push_back(c);
  }
  if (wanted.empty()) return;

  // Move ourselves into another group to avoid the "no internal processes"
  // rule: a non-root group that holds processes cannot give controllers to
  // its children.
  if (!where.own_is_root && !cgroupfs::read_words(join(where.own, "cgroup.procs")).empty()) {
    std::string leaf = join(where.own, "supervisor");
    if (::mkdir(leaf.c_str(), 0755) != 0 && errno != EEXIST) {
      notes.push_back(Error::from_errno("mkdir " + leaf).message());
      return;
    }
    if (auto r = cgroupfs::write_file(join(leaf, "cgroup.procs"), std::to_string(::getpid())); !r) {
      notes.push_back(r.error().message());
      return;
    }
  }

  std::vector<std::string> chain;  // own, own/a, ... the subtree's parent
  for (std::string dir = cgroupfs::parent_of(where.base);; dir = cgroupfs::parent_of(dir)) {
    chain.insert(chain.begin(), dir);
    if (dir == where.own || dir == "/" || dir == ".") break;
  }
  for (const std::string& dir : chain) {
    for (auto it = wanted.begin(); it != wanted.end();) {
      if (auto r = cgroupfs::write_file(join(dir, "cgroup.subtree_control"), "+" + *it); !r) {
        notes.push_back(*it + ": " + r.error().message());
        it = wanted.erase(it);
      } else {
        ++it;
      }
    }
  }
}

}  // namespace

Result<std::unique_ptr<V2Group>> V2Group::open(std::string path) {
  UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return Error::from_errno("open " + path);
  return std::unique_ptr<V2Group>(new V2Group(std::move(path), std::move(dir)));
}

V2Group::~V2Group() { (void)remove(); }

Result<void> V2Group::add_process(int pid) {
  return cgroupfs::write_file(join(path_, "cgroup.procs"), std::to_string(pid));
}

Result<void> V2Group::kill() {
  if (removed_) return ok();
  std::string kill_file = join(path_, "cgroup.kill");
  if (cgroupfs::exists(kill_file)) return cgroupfs::write_file(kill_file, "1");
  return cgroupfs::kill_until_empty(path_, cgroupfs::kEmptyWait);
}

bool V2Group::populated() const {
  if (removed_) return false;
  if (auto v = cgroupfs::read_key(join(path_, "cgroup.events"), "populated")) return *v != 0;
  return !pids().empty();
}

std::vector<int> V2Group::pids() const {
  if (removed_) return {};
  return cgroupfs::subtree_pids(path_);
}

std::optional<std::chrono::microseconds> V2Group::cpu_usage() const {
  auto usec = cgroupfs::read_key(join(path_, "cpu.stat"), "usage_usec");
  if (!usec) return std::nullopt;
  return std::chrono::microseconds(static_cast<std::int64_t>(*usec));
}

std::optional<std::uint64_t> V2Group::oom_kills() const {
  return cgroupfs::read_key(join(path_, "memory.events"), "oom_kill");
}

Result<void> V2Group::remove() {
  if (removed_) return ok();
  if (!cgroupfs::exists(path_)) {
    removed_ = true;
    dir_.reset();
    return ok();
  }
  Result<void> killed = kill();
  bool empty = cgroupfs::poll_until([&] { return !populated(); }, cgroupfs::kEmptyWait);
  if (!empty && !killed) return killed;
  if (auto r = cgroupfs::remove_dirs(path_); !r) return r;
  removed_ = true;
  dir_.reset();
  return ok();
}

bool V2Subtree::has(std::string_view controller) const { return contains(enabled_, controller); }

Result<V2Subtree> V2Subtree::open(const Location& where, const std::vector<std::string>& wanted,
                                  bool move_self_to_leaf) {
  if (auto r = cgroupfs::make_dirs(where.anchor, where.base); !r) return std::move(r).error();
  V2Subtree tree;
  tree.base_ = where.base;
  const std::string controllers_file = join(where.base, "cgroup.controllers");
  const std::string subtree_control = join(where.base, "cgroup.subtree_control");

  std::vector<std::string> available = cgroupfs::read_words(controllers_file);
  std::vector<std::string> missing;
  for (const auto& c : wanted) {
    if (!contains(available, c)) missing.push_back(c);
  }
  // Our own group's cgroup.subtree_control is written only when the caller
  // said the group is ours to rearrange (systemd's Delegate=yes).
  bool below_own = cgroupfs::is_within(where.base, where.own) && where.base != where.own;
  if (!missing.empty() && move_self_to_leaf && below_own) {
    enable_above(where, missing, tree.notes_);
    available = cgroupfs::read_words(controllers_file);
  }

  std::vector<std::string> enabled = cgroupfs::read_words(subtree_control);
  for (const auto& c : wanted) {
    if (contains(enabled, c)) {
      tree.enabled_.push_back(c);
    } else if (!contains(available, c)) {
      tree.notes_.push_back(c + ": controller not available in " + where.base +
                            " (cgroup.controllers)");
    } else if (auto r = cgroupfs::write_file(subtree_control, "+" + c); !r) {
      tree.notes_.push_back(c + ": " + r.error().message());
    } else {
      tree.enabled_.push_back(c);
    }
  }
  tree.has_swap_ = tree.has("memory") && cgroupfs::exists(join(where.base, "memory.swap.max"));
  return tree;
}

Result<void> V2Subtree::apply_limits(const V2Group& group, const CgroupLimits& limits) const {
  const std::string& path = group.path();
  auto write = [&](const char* file, const std::string& value) {
    return cgroupfs::write_file(join(path, file), value);
  };
  if (has("cpu")) {
    // The kernel refuses quotas under 1 ms per period.
    std::string quota = limits.cpu
                            ? std::to_string(std::max<long long>(1000, std::llround(*limits.cpu * 100000.0)))
                            : "max";
    if (auto r = write("cpu.max", quota + " 100000"); !r) return r;
  }
  if (has("memory")) {
    if (auto r = write("memory.max", limits.memory ? std::to_string(limits.memory->value) : "max"); !r) {
      return r;
    }
    if (limits.memory && cgroupfs::exists(join(path, "memory.oom.group"))) {
      // A sandbox is one unit: when the OOM killer picks one of its
      // processes, it takes all of them rather than leave a half-run job.
      if (auto r = write("memory.oom.group", "1"); !r) return r;
    }
    if (has_swap_) {
      // No swap unless asked: memory.max alone would let the group page out.
      std::string swap = limits.memory ? std::to_string(limits.swap ? limits.swap->value : 0) : "max";
      if (auto r = write("memory.swap.max", swap); !r) return r;
    }
  }
  if (has("pids")) {
    if (auto r = write("pids.max", limits.pids ? std::to_string(*limits.pids) : "max"); !r) return r;
  }
  return ok();
}

Result<std::unique_ptr<V2Group>> V2Subtree::create(const std::string& name,
                                                   const CgroupLimits& limits,
                                                   DeviceFilter devices) const {
  std::string path = join(base_, name);
  if (::mkdir(path.c_str(), 0755) != 0) return Error::from_errno("mkdir " + path);
  auto opened = V2Group::open(path);
  if (!opened) {
    ::rmdir(path.c_str());
    return opened;
  }
  // From here on, a failed step destroys the group, which removes the directory.
  std::unique_ptr<V2Group> group = std::move(*opened);

  if (limits.cpu || limits.memory || limits.swap || limits.pids) {
    if (auto r = apply_limits(*group, limits); !r) return std::move(r).error();
  }
  if (devices != DeviceFilter::none) {
    auto filter = attach_device_filter(group->dir_fd(), limits.devices);
    if (!filter && devices == DeviceFilter::required) {
      return std::move(filter).error().wrap("device filter for " + path);
    }
    // The attachment holds the program for as long as the cgroup exists.
  }
  return group;
}

}  // namespace symphony::sandbox
