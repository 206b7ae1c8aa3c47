// Private to the cgroup layer: reading and writing cgroup filesystem files,
// killing what a group holds, and the "sbx-NAME-PID-N" group names, shared by
// the v1 and v2 backends and the manager. Implemented in cgroup_host.cc,
// beside the code that finds the hierarchies.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace symphony::sandbox::cgroupfs {

// How long remove() and cleanup_stale() wait for a killed group to empty.
inline constexpr std::chrono::milliseconds kEmptyWait{2000};

// "a" + "/" + "b", without doubling the slash when `a` ends in one or `b` is "/".
std::string join(std::string_view a, std::string_view b);
// The directory above `path` ("/a/b" -> "/a").
std::string parent_of(std::string_view path);
// Whether `path` is `dir` or lies below it.
bool is_within(std::string_view path, std::string_view dir);

// The whole file. Errors name it: "read /sys/fs/cgroup/.../cgroup.events".
Result<std::string> read_file(const std::string& path);
// One write(2) of `value`, the way the kernel wants cgroup files written.
// Errors name the file: "write /sys/fs/cgroup/memory/.../memory.limit_in_bytes".
Result<void> write_file(const std::string& path, std::string_view value);
bool exists(const std::string& path);
// The value of `key` in a flat-keyed file ("key N" lines: memory.events,
// cpu.stat, cgroup.events, memory.oom_control); nullopt when either is absent.
std::optional<std::uint64_t> read_key(const std::string& path, std::string_view key);
// Whitespace-separated words (cgroup.controllers, cgroup.subtree_control);
// empty when the file cannot be read.
std::vector<std::string> read_words(const std::string& path);

// Names of the directories in `dir` (none when it cannot be read).
std::vector<std::string> subdirs(const std::string& dir);
// mkdir of every missing directory from `anchor` (which must exist) down to
// `path`; nothing above `anchor` is created.
Result<void> make_dirs(const std::string& anchor, const std::string& path);
// rmdir of `dir` after its sub-groups, deepest first. A missing `dir` is
// not an error (remove() is idempotent).
Result<void> remove_dirs(const std::string& dir);

// Pids in cgroup.procs of `dir` and of every group below it. Pids that are
// not visible in our pid namespace read as 0 and are left out.
std::vector<int> subtree_pids(const std::string& dir);
// SIGKILL to each pid, never to ourselves; a pid already gone is not an error.
void kill_pids(const std::vector<int>& pids);
// SIGKILL to every pid in the subtree, repeated (a process may fork between
// the read and the kill) until it is empty or `limit` passes.
Result<void> kill_until_empty(const std::string& dir, std::chrono::milliseconds limit);
// Calls `done` every few milliseconds until it returns true or `limit`
// passes; returns its last answer.
bool poll_until(const std::function<bool()>& done, std::chrono::milliseconds limit);

// "sbx-<name>-<launcher_pid>-<n>", `name` reduced to [A-Za-z0-9_.-] and 40
// characters so that it is a safe single path component.
std::string group_name(std::string_view name, int launcher_pid, std::uint64_t n);
// The launcher pid in a group name, or nullopt for a name Symphony did not
// make (those are never touched).
std::optional<int> group_owner(std::string_view dir_name);

}  // namespace symphony::sandbox::cgroupfs
