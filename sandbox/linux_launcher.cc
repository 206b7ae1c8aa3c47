// The Linux launcher's parent half: turns a Spec into a ChildPlan, clones the
// child into its namespaces (and its cgroup, with CLONE_INTO_CGROUP), writes
// the id maps, lets it run its steps and waits for "started" or the step that
// failed. Each parent step is timed next to the child's, for the benchmark's
// breakdown.
#include "sandbox/linux_launcher.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>

#include <spdlog/spdlog.h>
#include "sandbox/child_setup.h"
#include "sandbox/fd_passing.h"
#include "sandbox/gpu.h"
#include "sandbox/seccomp_policy.h"
#include "sandbox/spawn_internal.h"
#include "sandbox/zygote.h"

namespace symphony::sandbox {

namespace {

constexpr std::size_t kArenaSize = 1u << 20;

using Clock = std::chrono::steady_clock;

// What every program needs to run, bound read-only: the merged /usr, the
// top-level links or directories of the loader and libraries, and a minimal
// /etc. /etc/shadow and the rest of the host's /etc are never visible.
const char* const kRuntimeDirs[] = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
const char* const kEtcEntries[] = {
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
    "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/localtime", "/etc/hosts",
    "/etc/host.conf", "/etc/mime.types", "/etc/gitconfig",
};
// Only with the network permission: name resolution and TLS roots.
const char* const kNetworkEtc[] = {"/etc/resolv.conf", "/etc/gai.conf", "/etc/ssl",
                                   "/etc/ca-certificates"};
const char* const kDevNodes[] = {"null", "zero", "full", "random", "urandom", "tty"};

std::string inside(std::string_view path) { return "/newroot" + std::string(path); }
std::string outside(std::string_view path) { return "/oldroot" + std::string(path); }

class OpList {
 public:
  OpList(Arena& arena) : arena_(arena) {}
  void add(MountOp::Kind kind, Step step, std::string_view target, std::string_view what,
           std::string_view source = {}, std::string_view data = {}, bool read_only = false,
           bool allow_devices = false, bool optional = false) {
    MountOp op{};
    op.kind = kind;
    op.step = step;
    op.read_only = read_only;
    op.allow_devices = allow_devices;
    op.optional = optional;
    op.source = source.empty() ? nullptr : arena_.copy(source);
    op.target = arena_.copy(target);
    op.data = data.empty() ? nullptr : arena_.copy(data);
    op.what = arena_.copy(what);
    ops_.push_back(op);
  }
  // mkdir of every component of `path` below the new root.
  void mkdirs(Step step, std::string_view path) {
    std::string sofar;
    std::size_t start = 1;
    while (start <= path.size()) {
      auto end = path.find('/', start);
      if (end == std::string_view::npos) end = path.size();
      sofar += "/" + std::string(path.substr(start, end - start));
      if (created_.insert(sofar).second) add(MountOp::mkdir, step, inside(sofar), sofar);
      start = end + 1;
    }
  }
  // A bind of host `path` at the same place, as a directory or file mount point.
  void bind(Step step, const std::string& path, bool read_only, bool allow_devices = false) {
    struct stat st {};
    bool is_dir = ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    auto slash = path.rfind('/');
    if (slash > 0) mkdirs(step, path.substr(0, slash));
    if (is_dir) {
      mkdirs(step, path);
    } else {
      add(MountOp::touch, step, inside(path), path);
    }
    // Symlinks in the source resolve against the host root here, not
    // against the staging root the child mounts from.
    char resolved[PATH_MAX];
    std::string source = ::realpath(path.c_str(), resolved) ? resolved : path;
    add(MountOp::bind, step, inside(path), path, outside(source), {}, read_only, allow_devices);
  }
  MountOp* commit(std::size_t* count) {
    *count = ops_.size();
    MountOp* out = arena_.array<MountOp>(ops_.size());
    if (out) std::copy(ops_.begin(), ops_.end(), out);
    return out;
  }

 private:
  Arena& arena_;
  std::vector<MountOp> ops_;
  std::set<std::string> created_;
};

int read_last_cap() {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  int last = CAP_LAST_CAP;
  in >> last;
  return last;
}

int capability_number(Capability cap) {
  switch (cap) {
    case Capability::net_bind_service: return CAP_NET_BIND_SERVICE;
  }
  return -1;
}

char* const* string_array(Arena& arena, const std::vector<std::string>& items) {
  auto** out = arena.array<char*>(items.size() + 1);
  if (!out) return nullptr;
  for (std::size_t i = 0; i < items.size(); ++i) out[i] = const_cast<char*>(arena.copy(items[i]));
  out[items.size()] = nullptr;
  return out;
}

}  // namespace

Result<Shape> shape_of(const Spec& spec) {
  Shape shape;
  shape.network_namespace = !spec.permissions.network;
  uid_t euid = ::geteuid();
  gid_t egid = ::getegid();
  if (euid == 0) {
    shape.uid = spec.uid.value_or(65534);
    shape.gid = spec.gid.value_or(65534);
  } else {
    // An unprivileged launcher can only map its own ids.
    if ((spec.uid && *spec.uid != euid) || (spec.gid && *spec.gid != egid)) {
      return Error::invalid("uid/gid: an unprivileged launcher (uid " + std::to_string(euid) +
                            ") can only run sandboxes as itself");
    }
    shape.uid = euid;
    shape.gid = egid;
  }
  return shape;
}

Result<void> build_phase_a(Arena& arena, ChildPlan& plan, const Shape& shape,
                           const std::vector<std::string>& device_nodes) {
  OpList ops(arena);
  ops.add(MountOp::tmpfs, Step::stage_pivot, "/newroot", "/", {}, "mode=0755,size=1m");
  for (const char* dir : kRuntimeDirs) {
    struct stat st {};
    if (::lstat(dir, &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlink(dir, target, sizeof target - 1);
      if (n <= 0) continue;
      ops.add(MountOp::symlink, Step::runtime_mounts, inside(dir), dir, std::string_view(target, static_cast<std::size_t>(n)));
    } else if (S_ISDIR(st.st_mode)) {
      ops.bind(Step::runtime_mounts, dir, /*read_only=*/true);
    }
  }
  auto bind_etc = [&](const char* path) {
    struct stat st {};
    if (::stat(path, &st) == 0) ops.bind(Step::runtime_mounts, path, /*read_only=*/true);
  };
  for (const char* path : kEtcEntries) bind_etc(path);
  if (!shape.network_namespace) {
    for (const char* path : kNetworkEtc) bind_etc(path);
  }

  ops.mkdirs(Step::dev, "/dev");
  ops.add(MountOp::tmpfs, Step::dev, inside("/dev"), "/dev", {}, "mode=0755,size=64k");
  for (const char* node : kDevNodes) {
    std::string path = std::string("/dev/") + node;
    ops.add(MountOp::touch, Step::dev, inside(path), path);
    ops.add(MountOp::bind, Step::dev, inside(path), path, outside(path), {}, false, true);
  }
  for (const auto& node : device_nodes) {
    auto slash = node.rfind('/');
    if (slash > 4) ops.mkdirs(Step::dev, node.substr(0, slash));
    ops.add(MountOp::touch, Step::dev, inside(node), node);
    ops.add(MountOp::bind, Step::dev, inside(node), node, outside(node), {}, false, true);
  }
  ops.add(MountOp::symlink, Step::dev, inside("/dev/fd"), "/dev/fd", "/proc/self/fd");
  ops.add(MountOp::symlink, Step::dev, inside("/dev/stdin"), "/dev/stdin", "/proc/self/fd/0");
  ops.add(MountOp::symlink, Step::dev, inside("/dev/stdout"), "/dev/stdout", "/proc/self/fd/1");
  ops.add(MountOp::symlink, Step::dev, inside("/dev/stderr"), "/dev/stderr", "/proc/self/fd/2");
  ops.add(MountOp::mkdir, Step::dev, inside("/dev/shm"), "/dev/shm");
  ops.add(MountOp::tmpfs, Step::dev, inside("/dev/shm"), "/dev/shm", {}, "mode=1777");
  ops.add(MountOp::mkdir, Step::dev, inside("/dev/pts"), "/dev/pts");
  ops.add(MountOp::devpts, Step::dev, inside("/dev/pts"), "/dev/pts", {},
          "newinstance,ptmxmode=0666,mode=620");
  ops.add(MountOp::symlink, Step::dev, inside("/dev/ptmx"), "/dev/ptmx", "pts/ptmx");
  // Nothing may be added to /dev afterwards (a planted fake device node
  // would fool the program); /dev/shm and /dev/pts are mounts of their own
  // and stay writable.
  ops.add(MountOp::seal, Step::dev, inside("/dev"), "/dev");

  ops.mkdirs(Step::proc, "/proc");
  ops.add(MountOp::proc, Step::proc, inside("/proc"), "/proc");
  ops.mkdirs(Step::tmp, "/tmp");
  ops.add(MountOp::tmpfs, Step::tmp, inside("/tmp"), "/tmp", {}, "mode=1777");

  plan.base_ops = ops.commit(&plan.base_op_count);
  plan.network_namespace = shape.network_namespace;
  plan.uid = shape.uid;
  plan.gid = shape.gid;
  plan.clear_groups = ::geteuid() == 0;
  plan.last_cap = read_last_cap();
  if (arena.overflowed()) return Error(E2BIG, "sandbox plan does not fit its arena");
  return ok();
}

Result<void> build_phase_b(Arena& arena, ChildPlan& plan, const Spec& spec,
                           const std::vector<std::string>& extra_env) {
  OpList ops(arena);
  auto binds = spec.permissions.binds;
  std::sort(binds.begin(), binds.end(), [](const Bind& a, const Bind& b) { return a.path < b.path; });
  for (std::size_t i = 0; i < binds.size(); ++i) {
    struct stat st {};
    if (::stat(binds[i].path.c_str(), &st) != 0) {
      return Error::from_errno("permissions: granted path " + binds[i].path);
    }
    ops.bind(Step::grant_mounts, binds[i].path, binds[i].access == Access::read_only);
  }
  plan.grant_ops = ops.commit(&plan.grant_op_count);
  plan.cgroup_namespace = true;
  plan.hostname = arena.copy(spec.hostname);
  plan.cwd = arena.copy(spec.cwd);

  std::vector<RlimitSet> limits;
  limits.push_back({RLIMIT_CORE, {0, 0}});
  auto add_limit = [&](int resource, std::optional<std::uint64_t> value) {
    if (value) limits.push_back({resource, {*value, *value}});
  };
  const auto& l = spec.limits;
  add_limit(RLIMIT_NOFILE, l.open_files);
  add_limit(RLIMIT_NPROC, l.processes);
  if (l.file_size) add_limit(RLIMIT_FSIZE, l.file_size->value);
  if (l.address_space) add_limit(RLIMIT_AS, l.address_space->value);
  auto* rl = arena.array<RlimitSet>(limits.size());
  if (rl) std::copy(limits.begin(), limits.end(), rl);
  plan.rlimits = rl;
  plan.rlimit_count = limits.size();

  plan.keep_caps = 0;
  for (auto cap : spec.permissions.capabilities) plan.keep_caps |= 1ull << capability_number(cap);

  SeccompOptions seccomp_options;
  seccomp_options.network = spec.permissions.network;
  auto program = seccomp_program(seccomp_options);
  if (!program) return std::move(program).error().wrap("seccomp policy");
  const auto& filter = (*program)->filter;
  auto* copy = arena.array<sock_filter>(filter.size());
  if (copy) std::copy(filter.begin(), filter.end(), copy);
  plan.seccomp = sock_fprog{static_cast<unsigned short>(filter.size()), copy};

  std::vector<PassFd> fds = spec.fds;
  for (int stdio : {0, 1, 2}) {
    bool given = std::any_of(fds.begin(), fds.end(), [&](const PassFd& f) { return f.target == stdio; });
    if (!given) fds.push_back({stdio, stdio});
  }
  plan.fds = arena.array<FdMove>(fds.size());
  plan.fd_count = fds.size();
  plan.max_target_fd = 0;
  for (std::size_t i = 0; i < fds.size(); ++i) {
    if (plan.fds) plan.fds[i] = {fds[i].fd, fds[i].target};
    plan.max_target_fd = std::max(plan.max_target_fd, fds[i].target);
  }

  std::string path_var = "/usr/local/bin:/usr/bin:/bin";
  std::vector<std::string> env = spec.env;
  for (const auto& e : env) {
    if (e.rfind("PATH=", 0) == 0) path_var = e.substr(5);
  }
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  std::vector<std::string> dirs;
  for (std::size_t start = 0; start <= path_var.size();) {
    auto end = path_var.find(':', start);
    if (end == std::string::npos) end = path_var.size();
    if (end > start) dirs.push_back(path_var.substr(start, end - start));
    start = end + 1;
  }
  plan.path_dirs = string_array(arena, dirs);
  plan.path_dir_count = dirs.size();
  plan.program = arena.copy(spec.argv[0]);
  plan.argv = string_array(arena, spec.argv);
  plan.envp = string_array(arena, env);
  if (arena.overflowed()) return Error(E2BIG, "spec does not fit the sandbox plan arena (1 MiB)");
  return ok();
}

Result<void> write_id_maps(SysCalls& sys, pid_t pid, const Shape& shape) {
  std::string base = "/proc/" + std::to_string(pid);
  std::string uid_map = std::to_string(shape.uid) + " " + std::to_string(shape.uid) + " 1\n";
  std::string gid_map = std::to_string(shape.gid) + " " + std::to_string(shape.gid) + " 1\n";
  if (::geteuid() != 0) {
    // Without CAP_SETGID the kernel only accepts a gid map once setgroups is denied.
    if (long r = sys.write_file((base + "/setgroups").c_str(), "deny", 4); r < 0) {
      return step_error("id_maps", static_cast<int>(-r), "write " + base + "/setgroups");
    }
  }
  if (long r = sys.write_file((base + "/uid_map").c_str(), uid_map.data(), uid_map.size()); r < 0) {
    return step_error("id_maps", static_cast<int>(-r), "write " + base + "/uid_map");
  }
  if (long r = sys.write_file((base + "/gid_map").c_str(), gid_map.data(), gid_map.size()); r < 0) {
    return step_error("id_maps", static_cast<int>(-r), "write " + base + "/gid_map");
  }
  return ok();
}

Result<ChildMessage> await_started(const ChildPlan& plan, int status_fd, UniqueFd& listener) {
  int reset_seen = 0;
  for (;;) {
    ChildMessage m{};
    int fd = -1;
    std::size_t nfds = 0;
    ssize_t n = recv_with_fds(status_fd, &m, sizeof m, &fd, 1, &nfds);
    UniqueFd passed(nfds ? fd : -1);
    // A child that failed before reading the parent's "go" closes its end
    // with unread data: the first read returns ECONNRESET, the next one the
    // report queued before it.
    if (n < 0 && (errno == EINTR || (errno == ECONNRESET && !reset_seen++))) continue;
    if (n < 0) return Error::from_errno("read the sandbox's setup status");
    if (n == 0) {
      return step_error("setup", ECHILD, "the sandbox ended before reporting (killed?)");
    }
    if (static_cast<std::size_t>(n) != sizeof m) {
      return step_error("setup", EBADMSG, "short status message from the sandbox");
    }
    switch (m.kind) {
      case ChildMessage::step_failed: return describe_step_failure(plan, m);
      case ChildMessage::seccomp_listener:
        listener = std::move(passed);
        if (!listener) return step_error("seccomp", EBADMSG, "listener fd missing");
        break;
      case ChildMessage::started: return m;
      default:
        return step_error("setup", EBADMSG, "unexpected status message " + std::to_string(m.kind));
    }
  }
}

CgroupLimits cgroup_limits(const Spec& spec, const std::vector<DeviceRule>& gpu_rules) {
  CgroupLimits limits;
  limits.cpu = spec.limits.cpu;
  limits.memory = spec.limits.memory;
  limits.swap = spec.limits.swap;
  limits.pids = spec.limits.pids;
  limits.restrict_devices = true;
  // What the minimal /dev holds: null, zero, full, random, urandom, tty, and
  // the private devpts instance (ptmx and pts/*).
  for (auto [major_nr, minor_nr] : {std::pair{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0},
                                    {5, 2}, {136, -1}}) {
    DeviceRule rule;
    rule.major = major_nr;
    rule.minor = minor_nr;
    limits.devices.push_back(rule);
  }
  limits.devices.insert(limits.devices.end(), gpu_rules.begin(), gpu_rules.end());
  for (const auto& path : spec.permissions.devices) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
      DeviceRule rule;
      rule.type = S_ISCHR(st.st_mode) ? 'c' : 'b';
      rule.major = static_cast<int>(major(st.st_rdev));
      rule.minor = static_cast<int>(minor(st.st_rdev));
      rule.access = "rw";
      limits.devices.push_back(rule);
    }
  }
  return limits;
}

void append_child_timings(const ChildMessage& started, std::vector<StepTiming>& out) {
  for (std::size_t i = 0; i < kStepCount; ++i) {
    if (started.step_ns[i] == 0) continue;
    out.push_back({std::string(step_name(static_cast<Step>(i))),
                   std::chrono::nanoseconds(started.step_ns[i])});
  }
}

namespace {

class LinuxLauncher final : public Launcher {
 public:
  LinuxLauncher(const LauncherOptions& options, std::unique_ptr<CgroupManager> cgroups,
                std::string cgroup_note, Arena arena)
      : options_(options),
        sys_(options.sys ? *options.sys : real_syscalls()),
        cgroups_(std::move(cgroups)),
        cgroup_note_(std::move(cgroup_note)),
        arena_(std::move(arena)) {}

  Result<std::unique_ptr<Child>> spawn(const Spec& spec) override {
    std::lock_guard lock(mutex_);
    std::vector<StepTiming> timings;
    auto t = Clock::now();
    auto lap = [&](const char* step) {
      auto now = Clock::now();
      timings.push_back({step, now - t});
      t = now;
    };
    auto start = t;

    if (auto r = validate(spec); !r) return step_error("validate", r.error());
    auto shape = shape_of(spec);
    if (!shape) return step_error("validate", shape.error());
    GpuDevices gpu;
    std::vector<std::string> device_nodes = spec.permissions.devices;
    std::vector<std::string> extra_env;
    if (spec.permissions.gpu) {
      gpu = discover_gpu_devices(spec.permissions.gpu_devices);
      if (gpu.nodes.empty()) spdlog::warn("sandbox {}: GPU granted but {}", spec.name, gpu.note);
      device_nodes.insert(device_nodes.end(), gpu.nodes.begin(), gpu.nodes.end());
      extra_env.push_back("CUDA_VISIBLE_DEVICES=" + gpu.cuda_visible_devices);
    }
    lap("validate");

    // A limit this host cannot enforce is an error, never silently dropped.
    if (cgroups_) {
      auto refuse = [&](const char* name, bool wanted) -> std::optional<Error> {
        if (!wanted) return std::nullopt;
        for (const auto& gap : cgroups_->unsupported()) {
          if (gap.rfind(std::string(name) + ":", 0) == 0 || gap.rfind(std::string(name) + " ", 0) == 0) {
            return step_error("validate", ENOTSUP,
                              "limits." + std::string(name) + " cannot be enforced here: " + gap);
          }
        }
        return std::nullopt;
      };
      for (auto e : {refuse("cpu", spec.limits.cpu.has_value()),
                     refuse("memory", spec.limits.memory.has_value()),
                     refuse("swap", spec.limits.swap.has_value() && spec.limits.swap->value > 0),
                     refuse("pids", spec.limits.pids.has_value())}) {
        if (e) return *e;
      }
    }
    if (spec.limits.gpu_memory && !nvml_) {
      auto nvml = load_nvml(options_.nvml_library);
      if (!nvml) {
        return step_error("validate", ENOTSUP,
                          "limits.gpu_memory needs NVML, which is unavailable: " +
                              nvml.error().message());
      }
      nvml_ = std::shared_ptr<const Nvml>(std::move(nvml).value());
    }

    if (pool_ && *shape == pool_->shape() && device_nodes.empty()) {
      if (auto shell = pool_->take()) {
        auto child = spawn_in_shell(std::move(shell), spec, gpu.rules, extra_env, start, timings);
        pool_->refill();
        return child;
      }
    }

    std::unique_ptr<Cgroup> cgroup;
    bool wants_limits = spec.limits.cpu || spec.limits.memory || spec.limits.pids;
    if (cgroups_) {
      auto created = cgroups_->create(spec.name.empty() ? "sandbox" : spec.name,
                                      cgroup_limits(spec, gpu.rules));
      if (!created) return step_error("cgroup", created.error());
      cgroup = std::move(created).value();
    } else if (wants_limits || options_.cgroups_required) {
      return step_error("cgroup", ENOTSUP, "limits need cgroups, which are unavailable: " + cgroup_note_);
    }
    lap("cgroup");

    arena_.reset();
    auto* plan = arena_.make<ChildPlan>();
    if (!plan) return step_error("plan", E2BIG, "arena");
    if (auto r = build_phase_a(arena_, *plan, *shape, device_nodes); !r) {
      return step_error("plan", r.error());
    }
    if (auto r = build_phase_b(arena_, *plan, spec, extra_env); !r) {
      return step_error("plan", r.error());
    }
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
      return step_error("plan", errno, "socketpair");
    }
    UniqueFd parent_end(sv[0]);
    UniqueFd child_end(sv[1]);
    plan->status_fd = child_end.get();
    lap("plan");

    int pidfd = -1;
    clone_args args{};
    args.flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS |
                 CLONE_PIDFD;  // the network namespace: see Step::loopback
    args.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
    args.exit_signal = SIGCHLD;
    if (cgroup && cgroup->v2_dir_fd() >= 0 && into_cgroup_works_) {
      args.flags |= CLONE_INTO_CGROUP;
      args.cgroup = static_cast<std::uint64_t>(cgroup->v2_dir_fd());
    }
    long pid = sys_.clone3(&args, sizeof args);
    if (pid < 0 && (args.flags & CLONE_INTO_CGROUP)) {
      // Some hosts refuse CLONE_INTO_CGROUP (e.g. controllers on v1 only);
      // joining by pid afterwards is equivalent, one write later.
      into_cgroup_works_ = false;
      args.flags &= ~static_cast<std::uint64_t>(CLONE_INTO_CGROUP);
      args.cgroup = 0;
      pid = sys_.clone3(&args, sizeof args);
    }
    if (pid == 0) run_child(plan, sys_);
    if (pid < 0) return step_error("clone", static_cast<int>(-pid), "clone3 into new namespaces");
    UniqueFd pidfd_owner(pidfd);
    child_end.reset();
    // From here a failure must not leave the child behind.
    auto abandon = [&](Error e) -> Error {
      ::syscall(SYS_pidfd_send_signal, pidfd_owner.get(), SIGKILL, nullptr, 0);
      siginfo_t info{};
      ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_owner.get()), &info, WEXITED | __WALL);
      return e;
    };
    lap("clone");

    if (auto r = write_id_maps(sys_, static_cast<pid_t>(pid), *shape); !r) return abandon(r.error());
    lap("id_maps");
    if (cgroup) {
      if (auto r = cgroup->add_process(static_cast<int>(pid)); !r) {
        return abandon(step_error("cgroup", r.error()));
      }
    }
    lap("cgroup_join");
    char go = 1;
    // EPIPE: the child already failed (its first step runs before it waits
    // for us); its report is waiting to be read below.
    if (::send(parent_end.get(), &go, 1, MSG_NOSIGNAL) != 1 && errno != EPIPE) {
      return abandon(step_error("setup", errno, "release the child"));
    }
    UniqueFd listener;
    auto started = await_started(*plan, parent_end.get(), listener);
    if (!started) return abandon(started.error());
    lap("child_setup");
    append_child_timings(*started, timings);

    ChildParts parts;
    parts.pid = static_cast<pid_t>(pid);
    parts.pidfd = std::move(pidfd_owner);
    parts.status = std::move(parent_end);
    parts.listener = std::move(listener);
    parts.cgroup = std::move(cgroup);
    return finish_spawn(std::move(parts), spec, start, std::move(timings));
  }

  // The spec-dependent part of a Child, the same for both spawn paths.
  Result<std::unique_ptr<Child>> finish_spawn(ChildParts parts, const Spec& spec,
                                              Clock::time_point start,
                                              std::vector<StepTiming> timings) {
    parts.seccomp = spec.seccomp;
    parts.started_at = start;
    parts.timeout = spec.limits.timeout;
    parts.name = spec.name;
    if (spec.limits.gpu_memory) {
      parts.nvml = nvml_;
      parts.gpu_memory = spec.limits.gpu_memory;
      parts.gpu_sample_interval = options_.gpu_sample_interval;
    }
    auto child = make_linux_child(std::move(parts));
    if (child) last_timings_ = std::move(timings);
    return child;
  }

  void start_zygote(std::size_t shells) {
    auto shape = shape_of(Spec{});
    if (shape) pool_ = std::make_unique<ShellPool>(sys_, cgroups_.get(), *shape, shells);
  }

  void prewarm() override {
    if (pool_) pool_->wait_until_full();
  }

  std::string describe() const override {
    std::string d = "linux: user, pid, mount, ipc, uts, net, cgroup namespaces; seccomp; ";
    if (pool_) {
      d += "zygote (" + std::to_string(options_.zygote_shells) + " pre-forked shells";
      auto error = pool_->last_error();
      d += error.empty() ? "); " : ", failing: " + error + "); ";
    }
    d += cgroups_ ? cgroups_->describe() : "no cgroups (" + cgroup_note_ + ")";
    return d;
  }

  std::vector<StepTiming> last_timings() const override {
    std::lock_guard lock(mutex_);
    return last_timings_;
  }

 private:
  // Phase B in a pre-forked shell: the request carries only what depends
  // on the spec.
  Result<std::unique_ptr<Child>> spawn_in_shell(std::unique_ptr<Shell> shell, const Spec& spec,
                                                const std::vector<DeviceRule>& gpu_rules,
                                                const std::vector<std::string>& extra_env,
                                                Clock::time_point start,
                                                std::vector<StepTiming>& timings) {
    auto t = Clock::now();
    auto lap = [&](const char* step) {
      auto now = Clock::now();
      timings.push_back({step, now - t});
      t = now;
    };
    // A shell's group starts without cpu, memory or pids limits: a spec
    // without them needs no writes.
    const auto& l = spec.limits;
    if (shell->cgroup && (l.cpu || l.memory || l.swap || l.pids)) {
      if (auto r = shell->cgroup->set_limits(cgroup_limits(spec, gpu_rules)); !r) {
        return step_error("cgroup", r.error());
      }
    }
    lap("cgroup_limits");
    ChildPlan& plan = *shell->plan;
    shell->arena.rewind(shell->phase_b_mark);
    if (auto r = build_phase_b(shell->arena, plan, spec, extra_env); !r) {
      return step_error("plan", r.error());
    }
    lap("plan");
    std::vector<int> fds(plan.fd_count);
    for (std::size_t i = 0; i < plan.fd_count; ++i) fds[i] = plan.fds[i].from;
    char go = 1;
    if (send_with_fds(shell->status.get(), &go, 1, fds.data(), fds.size()) != 1) {
      return step_error("request", errno, "send the spawn request to a zygote shell");
    }
    UniqueFd listener;
    auto started = await_started(plan, shell->status.get(), listener);
    if (!started) return started.error();  // ~Shell kills what is left
    lap("child_setup");
    // The shell built its root before the request: only phase B counts.
    bool after_request = false;
    for (std::size_t i = 0; i < kStepCount; ++i) {
      auto step = static_cast<Step>(i);
      if (step == Step::wait_for_request) {
        after_request = true;
        continue;
      }
      if (after_request && started->step_ns[i]) {
        timings.push_back({std::string(step_name(step)), std::chrono::nanoseconds(started->step_ns[i])});
      }
    }
    ChildParts parts;
    parts.pid = shell->pid;
    parts.pidfd = std::move(shell->pidfd);
    parts.status = std::move(shell->status);
    parts.listener = std::move(listener);
    parts.cgroup = std::move(shell->cgroup);
    return finish_spawn(std::move(parts), spec, start, std::move(timings));
  }

  LauncherOptions options_;
  SysCalls& sys_;
  std::unique_ptr<CgroupManager> cgroups_;
  std::string cgroup_note_;
  mutable std::mutex mutex_;
  Arena arena_;
  bool into_cgroup_works_ = true;
  std::vector<StepTiming> last_timings_;
  std::shared_ptr<const Nvml> nvml_;
  std::unique_ptr<ShellPool> pool_;  // last: its thread stops first
};

}  // namespace

Result<std::unique_ptr<Launcher>> make_linux_launcher(const LauncherOptions& options) {
  std::unique_ptr<CgroupManager> cgroups;
  std::string note;
  auto manager = open_cgroup_manager(options.cgroups);
  if (manager) {
    cgroups = std::move(manager).value();
    if (auto cleaned = cgroups->cleanup_stale(); cleaned && *cleaned > 0) {
      spdlog::info("sandbox: removed {} cgroup(s) left by launchers that are gone", *cleaned);
    }
  } else if (options.cgroups_required) {
    return std::move(manager).error().wrap("sandbox cgroups");
  } else {
    note = manager.error().message();
    spdlog::warn("sandbox: cgroups unavailable, limits cannot be enforced: {}", note);
  }
  auto arena = Arena::create(kArenaSize, /*shared=*/false);
  if (!arena) return arena.error();
  auto launcher = std::make_unique<LinuxLauncher>(options, std::move(cgroups), std::move(note),
                                                  std::move(arena).value());
  if (options.zygote_shells > 0) launcher->start_zygote(options.zygote_shells);
  return std::unique_ptr<Launcher>(std::move(launcher));
}

}  // namespace symphony::sandbox
