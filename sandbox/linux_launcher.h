// The Linux launcher: every spawn gets its own user, pid, mount, ipc, uts,
// cgroup and (unless network is granted) network namespaces, a fresh root
// with only what it needs, its own cgroup with the spec's limits, no
// capabilities beyond the grantable few, no_new_privs and the seccomp
// allow-list. make_launcher() is the one place a caller picks it (and,
// with a zygote, the pre-forked variant).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <memory>

#include "base/result.h"
#include "sandbox/cgroup.h"
#include "sandbox/launcher.h"
#include "sandbox/syscalls.h"

namespace symphony::sandbox {

struct LauncherOptions {
  CgroupOptions cgroups;
  // Spawns that ask for a cpu/memory/pids limit fail when cgroups cannot be
  // used; without limits a spawn works without a cgroup (the pid namespace
  // still kills the whole sandbox with its init).
  bool cgroups_required = false;
  // Keep this many pre-forked sandbox shells ready (0: no zygote). See zygote.h.
  std::size_t zygote_shells = 0;
  // The system-call seam; tests inject failures through it.
  SysCalls* sys = nullptr;
  // NVML, loaded on the first spawn that sets limits.gpu_memory.
  std::string nvml_library = "libnvidia-ml.so.1";
  // How often a sandbox's GPU memory is sampled against limits.gpu_memory.
  std::chrono::milliseconds gpu_sample_interval{250};
};

Result<std::unique_ptr<Launcher>> make_launcher(const LauncherOptions& options);


}  // namespace symphony::sandbox
