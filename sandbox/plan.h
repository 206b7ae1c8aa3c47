// The child plan: everything the child half of a spawn needs, computed in the
// parent before clone. The child runs between clone and exec, where only
// async-signal-safe code may run (the parent may have threads holding malloc
// locks), so it must not format, allocate or look anything up: it follows
// the plan. Plans live in an Arena, one mapping whose pointers are valid in
// the child too (a copy-on-write copy after clone, or a shared mapping that a
// pre-forked zygote shell reads when a request arrives).
#pragma once

#include <linux/filter.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/mapping.h"
#include "base/result.h"

namespace symphony::sandbox {

// The child's setup steps, in the order they run. The names are what errors
// and the per-step timing breakdown show.
enum class Step : std::uint8_t {
  loopback,          // a private network namespace with lo up (first: it overlaps
                     // with the parent's id-map and cgroup work)
  wait_for_parent,   // id maps written, cgroup joined (or the parent died)
  switch_ids,        // setgroups, setresgid, setresuid: files created from here on
                     // need an owner mapped in the namespace
  mount_private,     // no propagation back to the host
  root_tmpfs,        // a fresh tmpfs to build the root in
  stage_pivot,       // host root moved aside to /oldroot
  runtime_mounts,    // /usr, the loader, libraries, a minimal /etc, read-only
  dev,               // minimal /dev
  proc,              // /proc of the new pid namespace
  tmp,               // private /tmp
  wait_for_request,  // zygote shells: the spawn request
  cgroup_namespace,  // after joining the sandbox's cgroup
  grant_mounts,      // the granted paths, read-only or read-write
  read_only_root,    // the root tmpfs itself read-only
  hostname,
  pivot_root,        // into the new root; the host root detached
  chdir,
  rlimits,
  capabilities,      // bounding, permitted, effective, inheritable, ambient
  no_new_privs,
  seccomp,
  fork_program,      // the sandbox's init forks the program
  fds,               // passed fds to their numbers, everything else closed
  exec,
  count
};
constexpr std::size_t kStepCount = static_cast<std::size_t>(Step::count);
std::string_view step_name(Step step);

// One mount-table change. Paths are absolute in the child's view at the time
// the op runs (sources under /oldroot, targets under /newroot).
struct MountOp {
  // seal: the mount at target becomes read-only (not recursive), once built.
  enum Kind : std::uint8_t { mkdir, touch, symlink, bind, tmpfs, proc, devpts, seal };
  Kind kind;
  Step step;         // which step it belongs to (runtime_mounts, dev, proc, tmp…)
  bool read_only;    // bind: recursive MOUNT_ATTR_RDONLY
  bool allow_devices;  // bind: keep device nodes usable (the /dev binds)
  bool optional;     // bind: a missing source is skipped, not an error
  const char* source;  // bind: host path; symlink: link target
  const char* target;
  const char* data;    // tmpfs/devpts options
  const char* what;    // for errors: the path as the user named it
};

struct FdMove {
  int from;
  int to;
};

struct RlimitSet {
  int resource;
  rlimit limit;
};

// Messages from the child to the parent on the status socket (SEQPACKET).
struct ChildMessage {
  enum Kind : std::uint32_t {
    step_failed,
    seccomp_listener,
    started,
    program_exited,
    program_signaled,
    shell_ready,  // a zygote shell finished phase A
  };
  Kind kind;
  std::uint8_t step;       // step_failed
  std::int32_t error;      // step_failed: errno
  std::int32_t detail;     // step_failed: index of the MountOp or rlimit; program_*: code/signal
  std::array<std::uint32_t, kStepCount> step_ns;  // started: time per step
};

struct ChildPlan {
  int status_fd;          // child's end of the status socket
  bool zygote_shell;      // stop after phase A and wait for a request
  bool network_namespace; // bring up loopback
  bool clear_groups;      // setgroups([]) is permitted (parent was privileged)

  // Phase A: the generic root.
  const MountOp* base_ops;
  std::size_t base_op_count;

  // Phase B: this spawn.
  bool cgroup_namespace;
  const MountOp* grant_ops;
  std::size_t grant_op_count;
  const char* hostname;
  const char* cwd;
  const RlimitSet* rlimits;
  std::size_t rlimit_count;
  uid_t uid;
  gid_t gid;
  int last_cap;
  std::uint64_t keep_caps;  // bit per capability
  sock_fprog seccomp;
  FdMove* fds;  // `from` is rewritten by a zygote shell for received fds
  std::size_t fd_count;
  int max_target_fd;
  const char* const* path_dirs;  // PATH search when argv[0] has no '/'
  std::size_t path_dir_count;
  const char* program;
  char* const* argv;
  char* const* envp;
};

// A fixed-size bump allocator over one mapping. Everything a ChildPlan
// points at is copied into it.
class Arena {
 public:
  // `shared`: MAP_SHARED, so a process forked earlier sees later writes.
  static Result<Arena> create(std::size_t size, bool shared);
  void reset() { used_ = 0; }
  // Everything allocated after mark() is dropped by rewind(mark): a zygote
  // shell keeps its phase A and gets a new phase B per request.
  std::size_t mark() const { return used_; }
  void rewind(std::size_t mark) {
    used_ = mark;
    overflowed_ = false;
  }
  // nullptr when full.
  void* allocate(std::size_t size, std::size_t align = alignof(std::max_align_t));
  template <class T>
  T* make() {
    void* p = allocate(sizeof(T), alignof(T));
    return p ? new (p) T{} : nullptr;
  }
  template <class T>
  T* array(std::size_t n) {
    void* p = allocate(sizeof(T) * (n ? n : 1), alignof(T));
    return static_cast<T*>(p);
  }
  const char* copy(std::string_view s);
  bool overflowed() const { return overflowed_; }

 private:
  Mapping mapping_;
  std::size_t used_ = 0;
  bool overflowed_ = false;
};

// Formats a step failure for the user: names the step, the mount or rlimit
// that failed, and the errno.
Error describe_step_failure(const ChildPlan& plan, const ChildMessage& message);

}  // namespace symphony::sandbox
