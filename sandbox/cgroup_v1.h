// Private to the cgroup layer: the cgroup v1 backend. Each v1 hierarchy
// (one controller, or a few mounted together such as "cpu,cpuacct") holds a
// Symphony subtree of its own; V1Group is one sandbox's directory in each of
// the hierarchies it uses. Used on legacy hosts, and for the limits on
// hybrid hosts where the controllers live in v1.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "sandbox/cgroup.h"

namespace symphony::sandbox {

struct V1Hierarchy {
  std::vector<std::string> controllers;  // mounted together: {"cpu", "cpuacct"}
  std::string own;                       // our own cgroup directory in it
  std::string anchor;                    // the directory creation starts below (exists)
  std::string base;                      // Symphony's subtree
};

class V1Group {
 public:
  struct Dir {
    std::vector<std::string> controllers;
    std::string path;
  };
  explicit V1Group(std::vector<Dir> dirs) : dirs_(std::move(dirs)) {}
  ~V1Group();  // remove(), errors ignored
  V1Group(const V1Group&) = delete;
  V1Group& operator=(const V1Group&) = delete;

  // The directory of the hierarchy holding `controller`, or nullptr.
  const std::string* dir_of(std::string_view controller) const;
  // "cpu,cpuacct:/sys/fs/cgroup/cpu,cpuacct/symphony/sbx-…", one per hierarchy.
  std::vector<std::string> paths() const;

  Result<void> add_process(int pid);
  // With the freezer: freeze, SIGKILL every pid, thaw, until empty, so that
  // nothing can fork between the read of cgroup.procs and the kill.
  // Without it: SIGKILL every pid until empty.
  Result<void> kill();
  bool populated() const;
  std::vector<int> pids() const;
  std::optional<std::chrono::microseconds> cpu_usage() const;  // cpuacct.usage
  std::optional<std::uint64_t> oom_kills() const;              // memory.oom_control oom_kill
  Result<void> remove();

 private:
  friend class V1Subtree;
  Result<void> freeze_and_kill(const std::string& freezer_dir);
  std::vector<Dir> dirs_;
  bool removed_ = false;
};

class V1Subtree {
 public:
  // Creates the subtree in each hierarchy.
  static Result<V1Subtree> open(std::vector<V1Hierarchy> hierarchies);

  const std::vector<V1Hierarchy>& hierarchies() const { return hierarchies_; }
  bool has(std::string_view controller) const;
  // memory.memsw.* exists (the kernel accounts swap): the swap limit works.
  bool has_memsw() const { return has_memsw_; }

  // mkdir "<base>/<name>" in every hierarchy that holds one of
  // `controllers`, then applies `limits` (callers pass only limits whose
  // controller is in `controllers`). An EEXIST error means the name is taken.
  // Writes the cpu, memory (+swap) and pids limits of `group`; an absent
  // limit is written as unlimited, so a group can be re-limited (zygote).
  Result<void> apply_limits(const V1Group& group, const CgroupLimits& limits) const;
  Result<std::unique_ptr<V1Group>> create(const std::string& name,
                                          const std::vector<std::string>& controllers,
                                          const CgroupLimits& limits) const;
  // The group `name` as it is left in each hierarchy (for cleanup_stale);
  // nullptr when no hierarchy has it.
  std::unique_ptr<V1Group> adopt(const std::string& name) const;

 private:
  std::vector<V1Hierarchy> hierarchies_;
  bool has_memsw_ = false;
};

}  // namespace symphony::sandbox
