// Crash leftovers: what a Symphony process that died mid-work leaves behind,
// found by Symphony's naming conventions only — nothing that does not match
// them is ever touched:
//   temporary files   ".symphony-tmp-<pid>-<n>" in the given directories,
//                     removed when older than a threshold AND <pid> is dead;
//   Unix sockets      "*.sock" in Symphony's runtime directory, removed when
//                     connecting is refused (ECONNREFUSED: no listener);
//   shared memory     "<prefix><pid>-<n>" in /dev/shm (prefix "symphony-"),
//                     removed when <pid> is dead;
//   sandbox cgroups   the sandbox's own CgroupManager::cleanup_stale().
// A pid counts as dead only when kill(pid, 0) says ESRCH: a reused pid keeps
// a leftover a while longer, it never gets a live one removed.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace symphony::sandbox {
class CgroupManager;
}

namespace symphony::pit::stale {

// The name a Symphony process gives its n-th POSIX shared-memory segment
// (shm_open("/" + name)): "<prefix><pid>-<n>", e.g. "symphony-4242-0".
std::string shm_segment_name(std::string_view prefix, int pid, std::uint64_t n);

enum class DryRun : bool { no = false, yes = true };

struct LeftoverOptions {
  // Directories whose Symphony temporary files are swept (not recursively).
  std::vector<std::filesystem::path> temp_dirs;
  std::chrono::seconds temp_min_age{3600};
  // Symphony's runtime directory (its "*.sock" files); empty = skip.
  std::filesystem::path runtime_dir;
  // Shared-memory segments; an empty prefix skips them (never "everything").
  std::filesystem::path shm_dir = "/dev/shm";
  std::string shm_prefix = "symphony-";
  // The sandbox's cgroup manager; null = skip. Not consulted in a dry run
  // (cleanup_stale() has none): the report says so.
  sandbox::CgroupManager* cgroups = nullptr;
  // The clock the temp-file age is measured against (tests move it).
  std::function<std::chrono::system_clock::time_point()> now;
};

struct Leftover {
  enum class Kind { temp_file, socket, shm_segment, archive_file };
  Kind kind;
  std::filesystem::path path;
  std::uint64_t bytes = 0;
};
std::string_view to_string(Leftover::Kind kind);

struct LeftoverReport {
  std::vector<Leftover> removed;  // (or, in a dry run, what would be)
  int cgroups_removed = 0;
  bool cgroups_checked = false;   // false when there is no manager, or in a dry run
  std::vector<std::string> errors;  // what could not be removed, and why; the sweep goes on
};

// Sweeps everything `options` names. Per-item failures land in
// report.errors; an error return means a directory could not be read at all.
Result<LeftoverReport> clean_leftovers(const LeftoverOptions& options, DryRun dry_run);

}  // namespace symphony::pit::stale
