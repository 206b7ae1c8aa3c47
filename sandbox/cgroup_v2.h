// Private to the cgroup layer: the cgroup v2 backend. V2Subtree is Symphony's
// subtree in the unified hierarchy (which controllers its groups get);
// V2Group is one sandbox's directory there. On a hybrid host the manager
// uses it without controllers, for membership, cgroup.kill and the counters.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "sandbox/cgroup.h"

namespace symphony::sandbox {

class V2Group {
 public:
  // Takes over the existing group directory `path` (a new one from
  // V2Subtree::create, or a stale one for cleanup_stale).
  static Result<std::unique_ptr<V2Group>> open(std::string path);
  ~V2Group();  // remove(), errors ignored
  V2Group(const V2Group&) = delete;
  V2Group& operator=(const V2Group&) = delete;

  const std::string& path() const { return path_; }
  int dir_fd() const { return dir_.get(); }
  Result<void> add_process(int pid);
  // cgroup.kill where the kernel has it (5.14), else SIGKILL to each pid
  // until the group is empty.
  Result<void> kill();
  bool populated() const;
  std::vector<int> pids() const;
  std::optional<std::chrono::microseconds> cpu_usage() const;  // cpu.stat usage_usec
  std::optional<std::uint64_t> oom_kills() const;              // memory.events oom_kill
  Result<void> remove();

 private:
  V2Group(std::string path, UniqueFd dir) : path_(std::move(path)), dir_(std::move(dir)) {}
  std::string path_;
  UniqueFd dir_;
  bool removed_ = false;
};

// Whether a group gets the BPF device filter, and whether failing to
// attach it fails the group (it does unless v1 devices also restricts).
enum class DeviceFilter { none, required, best_effort };

class V2Subtree {
 public:
  struct Location {
    std::string own;  // our own cgroup directory
    // `own` is the hierarchy's root, exempt from the no-internal-processes rule.
    bool own_is_root = false;
    std::string anchor;  // the directory creation starts below (exists)
    std::string base;    // the subtree
  };
  // Creates the subtree and enables there those of `wanted` ("cpu",
  // "memory", "pids") that it can; notes() says why the others are missing.
  static Result<V2Subtree> open(const Location& where, const std::vector<std::string>& wanted,
                                bool move_self_to_leaf);

  const std::string& base() const { return base_; }
  // Controllers the sandbox groups get.
  const std::vector<std::string>& controllers() const { return enabled_; }
  bool has(std::string_view controller) const;
  bool has_swap() const { return has_swap_; }
  const std::vector<std::string>& notes() const { return notes_; }

  // mkdir "<base>/<name>", then applies `limits` (callers pass only limits
  // this subtree has controllers for). An EEXIST error means the name is taken.
  // Writes cpu.max, memory.max/swap.max and pids.max of `group` for the
  // controllers enabled here; an absent limit is written as "max".
  Result<void> apply_limits(const V2Group& group, const CgroupLimits& limits) const;
  Result<std::unique_ptr<V2Group>> create(const std::string& name, const CgroupLimits& limits,
                                          DeviceFilter devices) const;

 private:
  std::string base_;
  std::vector<std::string> enabled_;
  std::vector<std::string> notes_;
  bool has_swap_ = false;
};

}  // namespace symphony::sandbox
