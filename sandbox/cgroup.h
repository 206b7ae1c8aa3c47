// cgroups for sandboxes: Symphony creates and owns one subtree and puts each
// sandbox in its own group under it, with CPU, memory, swap, pids and device
// limits, a group kill, and the OOM count the exit report needs. Hosts differ:
// pure cgroup v2 (unified), hybrid (v1 controllers plus a v2 hierarchy without
// them, like the development machines) and pure v1 (legacy). detect_cgroup_host()
// reads the layout once; CgroupManager hides which files implement a limit
// (cgroup_v2.cc, cgroup_v1.cc). Nothing outside the subtree is ever written.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "sandbox/spec.h"

namespace symphony::sandbox {

enum class CgroupLayout { unified, hybrid, legacy, none };
std::string_view to_string(CgroupLayout layout);

struct CgroupHost {
  CgroupLayout layout = CgroupLayout::none;
  std::string unified_mount;                   // "" when there is no v2 hierarchy
  std::vector<std::string> unified_controllers;  // from cgroup.controllers of the root
  std::map<std::string, std::string> v1_mounts;  // controller -> mount point ("memory" -> "/sys/fs/cgroup/memory")
  // Our own cgroup path relative to each hierarchy ("" key = v2), from /proc/self/cgroup.
  std::map<std::string, std::string> self_paths;
};

// Reads /proc/self/mountinfo and /proc/self/cgroup (paths injectable for tests).
Result<CgroupHost> detect_cgroup_host(const std::string& mountinfo = "/proc/self/mountinfo",
                                      const std::string& self_cgroup = "/proc/self/cgroup");

// A device the sandbox may open: type 'c' or 'b', major, minor (-1 = any),
// access a subset of "rwm".
struct DeviceRule {
  char type = 'c';
  int major = 0;
  int minor = -1;
  std::string access = "rwm";
  friend bool operator==(const DeviceRule&, const DeviceRule&) = default;
};

struct CgroupLimits {
  std::optional<double> cpu;  // CPUs; period 100 ms
  std::optional<Bytes> memory;
  std::optional<Bytes> swap;
  std::optional<std::uint64_t> pids;
  // Allowed devices; everything else denied. Empty vector with
  // restrict_devices = false leaves the device controller alone.
  bool restrict_devices = true;
  std::vector<DeviceRule> devices;
  // Create the group in every v1 hierarchy, limited or not, so that
  // set_limits() can add any limit later (zygote shells). Otherwise a v1
  // hierarchy is joined only for a limit it enforces: on hybrid hosts each
  // v1 join costs the kernel an RCU grace period (milliseconds), while the
  // v2 group is joined for free by clone3(CLONE_INTO_CGROUP).
  bool prepare_all = false;
};

// One sandbox's cgroup (a directory in each hierarchy in use). Destroying it
// kills what is left inside and removes the directories.
class Cgroup {
 public:
  virtual ~Cgroup() = default;
  // Replaces the group's cpu, memory, swap and pids limits (a zygote shell's
  // group is made in advance and gets the spawn's limits when it is used).
  virtual Result<void> set_limits(const CgroupLimits& limits) {
    (void)limits;
    return Error(ENOTSUP, "changing the limits of an existing cgroup");
  }
  // Moves `pid` into the group in every hierarchy.
  virtual Result<void> add_process(int pid) = 0;
  // An O_DIRECTORY fd of the v2 directory for clone3(CLONE_INTO_CGROUP),
  // or -1 when there is no v2 directory.
  virtual int v2_dir_fd() const = 0;
  // Kills every process in the group (cgroup.kill, or freeze + SIGKILL + thaw on v1).
  virtual Result<void> kill() = 0;
  // How many times the OOM killer killed a process in the group.
  virtual std::uint64_t oom_kills() const = 0;
  // CPU time used by the group so far.
  virtual std::chrono::microseconds cpu_usage() const = 0;
  // Whether any process is left in the group.
  virtual bool populated() const = 0;
  // Pids in the group (host view).
  virtual std::vector<int> pids() const = 0;
  // The directories, for status and logs ("memory:/sys/fs/cgroup/memory/symphony/sbx-…").
  virtual std::vector<std::string> paths() const = 0;
  // Kills, waits for the group to empty, removes the directories. Idempotent.
  virtual Result<void> remove() = 0;
};

struct CgroupOptions {
  // The subtree Symphony owns, relative to our own cgroup in each hierarchy.
  std::string subtree = "symphony";
  // Absolute override of the subtree's location per hierarchy ("" key = v2):
  // tests point it at a scratch directory they own.
  std::map<std::string, std::string> base_override;
  // v2 only: move this process into "<own>/supervisor" so the subtree may
  // enable controllers (the no-internal-processes rule under Delegate=yes).
  bool move_self_to_leaf = false;
  // Force a layout's code path (tests): unified uses only the v2 hierarchy,
  // legacy only v1 controllers. nullopt: as detected.
  std::optional<CgroupLayout> force_layout;
};

class CgroupManager {
 public:
  virtual ~CgroupManager() = default;
  // Creates "<subtree>/sbx-NAME-PID-N" with `limits`. Errors name the file
  // written ("memory.max: Permission denied").
  virtual Result<std::unique_ptr<Cgroup>> create(std::string_view name,
                                                 const CgroupLimits& limits) = 0;
  // Removes groups left by launchers that are no longer running (their pid
  // is in the name): kills what is inside, then rmdir. Returns how many.
  virtual Result<int> cleanup_stale() = 0;
  // "cgroup v1 (hybrid): cpu,memory,pids,devices; v2 core at /sys/fs/cgroup/unified"
  virtual std::string describe() const = 0;
  virtual CgroupLayout layout() const = 0;
  // Limits this host cannot enforce (e.g. "swap: memory.memsw.* absent"), for status.
  virtual std::vector<std::string> unsupported() const = 0;
};

Result<std::unique_ptr<CgroupManager>> open_cgroup_manager(const CgroupOptions& options);

// The v2 device controller is a BPF program (BPF_PROG_TYPE_CGROUP_DEVICE):
// builds one that allows exactly `rules` and attaches it to `cgroup_dir_fd`.
// Returns the program fd (the attachment lives as long as the cgroup).
Result<UniqueFd> attach_device_filter(int cgroup_dir_fd, const std::vector<DeviceRule>& rules);

}  // namespace symphony::sandbox
