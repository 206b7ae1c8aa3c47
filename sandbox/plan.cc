// Arena and the naming of child steps and their failures.
#include "sandbox/plan.h"

#include <sys/mman.h>

#include <cstring>
#include <map>

#include "sandbox/launcher.h"

namespace symphony::sandbox {

std::string_view step_name(Step step) {
  static constexpr std::array<std::string_view, kStepCount> kNames = {
      "loopback", "wait_for_parent", "switch_ids", "mount_private", "root_tmpfs", "stage_pivot", "runtime_mounts",
      "dev", "proc", "tmp", "wait_for_request", "cgroup_namespace",
      "grant_mounts", "read_only_root", "hostname", "pivot_root", "chdir", "rlimits",
      "capabilities", "no_new_privs", "seccomp", "fork_program", "fds", "exec",
  };
  auto i = static_cast<std::size_t>(step);
  return i < kNames.size() ? kNames[i] : "unknown";
}

Result<Arena> Arena::create(std::size_t size, bool shared) {
  auto m = Mapping::map(-1, size, PROT_READ | PROT_WRITE,
                        (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS);
  if (!m) return std::move(m).error().wrap("sandbox plan arena");
  Arena arena;
  arena.mapping_ = std::move(m).value();
  return arena;
}

void* Arena::allocate(std::size_t size, std::size_t align) {
  std::size_t start = (used_ + align - 1) & ~(align - 1);
  if (start + size > mapping_.size()) {
    overflowed_ = true;
    return nullptr;
  }
  used_ = start + size;
  return mapping_.data() + start;
}

const char* Arena::copy(std::string_view s) {
  char* p = static_cast<char*>(allocate(s.size() + 1, 1));
  if (!p) return "";
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

namespace {

std::string describe_op(const MountOp& op) {
  std::string what = op.what ? op.what : (op.target ? op.target : "?");
  switch (op.kind) {
    case MountOp::mkdir: return "create directory " + what;
    case MountOp::touch: return "create mount point " + what;
    case MountOp::symlink: return "create symlink " + what;
    case MountOp::bind:
      return "bind " + what + (op.read_only ? " read-only" : " read-write");
    case MountOp::tmpfs: return "mount tmpfs on " + what;
    case MountOp::proc: return "mount proc on " + what;
    case MountOp::devpts: return "mount devpts on " + what;
    case MountOp::seal: return "make " + what + " read-only";
  }
  return what;
}

}  // namespace

Error describe_step_failure(const ChildPlan& plan, const ChildMessage& message) {
  auto step = static_cast<Step>(message.step);
  std::string detail;
  auto index = static_cast<std::size_t>(message.detail);
  if (message.detail >= 0) {
    if ((step == Step::runtime_mounts || step == Step::dev || step == Step::proc ||
         step == Step::tmp || step == Step::root_tmpfs || step == Step::stage_pivot) &&
        index < plan.base_op_count) {
      detail = describe_op(plan.base_ops[index]);
    } else if (step == Step::grant_mounts && index < plan.grant_op_count) {
      detail = describe_op(plan.grant_ops[index]);
    } else if (step == Step::rlimits && index < plan.rlimit_count) {
      static const std::map<int, const char*> kNames = {
          {RLIMIT_CORE, "core"},   {RLIMIT_NOFILE, "nofile"}, {RLIMIT_NPROC, "nproc"},
          {RLIMIT_FSIZE, "fsize"}, {RLIMIT_AS, "as"},
      };
      auto name = kNames.find(plan.rlimits[index].resource);
      detail = "RLIMIT_" + std::string(name != kNames.end() ? name->second : "?") + " (" +
               std::to_string(plan.rlimits[index].limit.rlim_cur) + ")";
    } else if (step == Step::exec) {
      detail = std::string("execute ") + plan.program;
    } else if (step == Step::fds && index < plan.fd_count) {
      detail = "fd " + std::to_string(plan.fds[index].to);
    }
  }
  return step_error(step_name(step), message.error, detail);
}

}  // namespace symphony::sandbox
