// Pieces the direct launcher and the zygote share: building a ChildPlan from
// a Spec, the parent's half of the child handshake, and the running Child.
// Private to sandbox/.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "sandbox/cgroup.h"
#include "sandbox/gpu.h"
#include "sandbox/launcher.h"
#include "sandbox/linux_launcher.h"
#include "sandbox/plan.h"
#include "sandbox/syscalls.h"

namespace symphony::sandbox {

// What a sandbox's namespaces and generic root depend on: shells built for
// one shape serve every spec of that shape.
struct Shape {
  uid_t uid = 0;
  gid_t gid = 0;
  bool network_namespace = true;
  bool operator==(const Shape&) const = default;
};

// The ids a spec runs as, checked against what this process may map.
Result<Shape> shape_of(const Spec& spec);

// Phase A of a plan (the generic root) for `shape`, plus devices the spec
// needs visible (GPU nodes, granted devices). `plan` lives in `arena`.
Result<void> build_phase_a(Arena& arena, ChildPlan& plan, const Shape& shape,
                           const std::vector<std::string>& device_nodes);
// Phase B (this spawn): grants, identity, limits, seccomp, fds, argv/env.
Result<void> build_phase_b(Arena& arena, ChildPlan& plan, const Spec& spec,
                           const std::vector<std::string>& extra_env);

// Writes uid_map/gid_map (and setgroups) for `pid`.
Result<void> write_id_maps(SysCalls& sys, pid_t pid, const Shape& shape);

// Reads the child's messages until it reports started (collecting the
// seccomp listener) or a step failure. Returns the started message.
Result<ChildMessage> await_started(const ChildPlan& plan, int status_fd, UniqueFd& listener);

// The cgroup limits for a spec, devices included.
CgroupLimits cgroup_limits(const Spec& spec, const std::vector<DeviceRule>& gpu_rules);

struct ChildParts {
  pid_t pid = -1;
  UniqueFd pidfd;
  UniqueFd status;    // parent's end of the status socket
  UniqueFd listener;  // seccomp notifications
  std::unique_ptr<Cgroup> cgroup;
  SeccompMode seccomp = SeccompMode::enforce;
  std::chrono::steady_clock::time_point started_at;
  std::optional<std::chrono::milliseconds> timeout;
  std::string name;
  // GPU memory limit, enforced by sampling NVML for the group's pids.
  std::shared_ptr<const Nvml> nvml;
  std::optional<Bytes> gpu_memory;
  std::chrono::milliseconds gpu_sample_interval{250};
};
Result<std::unique_ptr<Child>> make_linux_child(ChildParts parts);

// The direct launcher (no zygote).
Result<std::unique_ptr<Launcher>> make_linux_launcher(const LauncherOptions& options);

// Appends the child's per-step times from a started message.
void append_child_timings(const ChildMessage& started, std::vector<StepTiming>& out);

}  // namespace symphony::sandbox
