// open_cgroup_manager: the one place that picks the cgroup backend(s) for the
// host's layout. Each limit is given to the hierarchy whose controller can
// enforce it (v2 on unified hosts, v1 on legacy ones, v1 for limits and v2 for
// membership, cgroup.kill and counters on hybrid ones), and one Cgroup per
// sandbox hides which directories that took.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <atomic>
#include <cmath>
#include <set>

#include "sandbox/cgroup.h"
#include "sandbox/cgroup_fs.h"
#include "sandbox/cgroup_v1.h"
#include "sandbox/cgroup_v2.h"

namespace symphony::sandbox {
namespace {

using cgroupfs::join;

// Which hierarchy enforces a limit.
enum class Owner { none, v1, v2 };

struct Plan {
  Owner cpu = Owner::none;
  Owner memory = Owner::none;
  Owner swap = Owner::none;
  Owner pids = Owner::none;
  Owner devices = Owner::none;
  // Hybrid: the v1 devices controller restricts, and the BPF filter on the
  // v2 group does too where the kernel lets us attach it.
  bool bpf_as_well = false;
};

// Process-wide, so that two managers in one launcher never pick the same name.
std::atomic<std::uint64_t> next_group_number{1};

class SandboxCgroup final : public Cgroup {
 public:
  using Relimit = std::function<Result<void>(const V1Group*, const V2Group*, const CgroupLimits&)>;
  SandboxCgroup(std::unique_ptr<V1Group> v1, std::unique_ptr<V2Group> v2, Owner memory,
                Relimit relimit)
      : v1_(std::move(v1)), v2_(std::move(v2)), memory_(memory), relimit_(std::move(relimit)) {}
  ~SandboxCgroup() override { (void)remove(); }

  Result<void> set_limits(const CgroupLimits& limits) override {
    if (!relimit_) return Error(ENOTSUP, "re-limiting a stale group");
    return relimit_(v1_.get(), v2_.get(), limits);
  }

  Result<void> add_process(int pid) override {
    // A write to cgroup.procs takes the kernel's cgroup/fork lock for an RCU
    // grace period even when the process is already there (born there by
    // CLONE_INTO_CGROUP): skip it then.
    if (v2_ && !in_v2_group(pid)) {
      if (auto r = v2_->add_process(pid); !r) return r;
    }
    if (v1_) return v1_->add_process(pid);
    return ok();
  }

  int v2_dir_fd() const override { return v2_ ? v2_->dir_fd() : -1; }

  bool in_v2_group(int pid) const {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("0::", 0) != 0) continue;
      std::string relative = line.substr(3);
      const std::string& path = v2_->path();
      return relative.size() > 1 && path.size() >= relative.size() &&
             path.compare(path.size() - relative.size(), relative.size(), relative) == 0;
    }
    return false;
  }

  Result<void> kill() override {
    if (v2_) {
      auto r = v2_->kill();
      if (r || !v1_) return r;
    }
    return v1_ ? v1_->kill() : ok();
  }

  std::uint64_t oom_kills() const override {
    std::optional<std::uint64_t> n;
    if (memory_ == Owner::v2 && v2_) n = v2_->oom_kills();
    if (memory_ == Owner::v1 && v1_) n = v1_->oom_kills();
    return n.value_or(0);
  }

  std::chrono::microseconds cpu_usage() const override {
    // v2's cpu.stat counts in every group, with or without the cpu
    // controller; cpuacct is the v1 equivalent.
    std::optional<std::chrono::microseconds> usage;
    if (v2_) usage = v2_->cpu_usage();
    if (!usage && v1_) usage = v1_->cpu_usage();
    return usage.value_or(std::chrono::microseconds(0));
  }

  bool populated() const override { return v2_ ? v2_->populated() : v1_ && v1_->populated(); }

  std::vector<int> pids() const override {
    if (v2_) return v2_->pids();
    return v1_ ? v1_->pids() : std::vector<int>{};
  }

  std::vector<std::string> paths() const override {
    std::vector<std::string> out;
    if (v1_) out = v1_->paths();
    if (v2_) out.push_back("v2:" + v2_->path());
    return out;
  }

  Result<void> remove() override {
    Result<void> first = ok();
    if (v2_) first = v2_->remove();
    if (v1_) {
      auto r = v1_->remove();
      if (first) first = std::move(r);
    }
    return first;
  }

 private:
  std::unique_ptr<V1Group> v1_;
  std::unique_ptr<V2Group> v2_;
  Owner memory_;
  Relimit relimit_;
};

class Manager final : public CgroupManager {
 public:
  static Result<std::unique_ptr<CgroupManager>> open(const CgroupHost& host,
                                                     const CgroupOptions& options);

  Result<std::unique_ptr<Cgroup>> create(std::string_view name,
                                         const CgroupLimits& limits) override;
  Result<int> cleanup_stale() override;
  std::string describe() const override { return description_; }
  CgroupLayout layout() const override { return layout_; }
  std::vector<std::string> unsupported() const override { return unsupported_; }

 private:
  CgroupLimits only(const CgroupLimits& limits, Owner owner) const;
  void make_plan();
  void describe_self(const CgroupHost& host);

  CgroupLayout layout_ = CgroupLayout::none;
  std::optional<V1Subtree> v1_;
  std::optional<V2Subtree> v2_;
  std::vector<std::string> v1_controllers_;  // the controllers each v1 group is made in
  Plan plan_;
  std::vector<std::string> unsupported_;
  std::string description_;
};

Result<void> check_subtree(const std::string& subtree) {
  if (subtree.empty() || subtree.front() == '/') {
    return Error::invalid("cgroup subtree '" + subtree +
                          "': want a relative path such as \"symphony\"");
  }
  std::string_view rest = subtree;
  while (!rest.empty()) {
    auto slash = rest.find('/');
    std::string_view part = rest.substr(0, slash);
    if (part == "." || part == "..") {
      return Error::invalid("cgroup subtree '" + subtree + "': '.' and '..' are not allowed");
    }
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  }
  return ok();
}

// Where our subtree goes in one hierarchy: the override, or below our own
// group. Directories are created only below our own group, or (for an
// override elsewhere) only the override's last component.
struct Place {
  std::string own;
  std::string base;
  std::string anchor;
};

Result<Place> place(const std::string& mount, const std::string& self_path,
                    const CgroupOptions& options, const std::vector<std::string>& keys) {
  Place p;
  p.own = join(mount, self_path);
  p.base = join(p.own, options.subtree);
  for (const std::string& key : keys) {
    auto it = options.base_override.find(key);
    if (it == options.base_override.end()) continue;
    if (it->second.empty() || it->second.front() != '/') {
      return Error::invalid("cgroup base override '" + it->second + "' for '" + key +
                            "': want an absolute path");
    }
    p.base = it->second;
    break;
  }
  if (!cgroupfs::is_within(p.base, mount) || p.base == mount) {
    return Error::invalid("cgroup subtree " + p.base + " is not inside the hierarchy at " + mount);
  }
  bool below_own = cgroupfs::is_within(p.base, p.own) && p.base != p.own;
  p.anchor = below_own ? p.own : cgroupfs::parent_of(p.base);
  return p;
}

Result<std::unique_ptr<CgroupManager>> Manager::open(const CgroupHost& host,
                                                     const CgroupOptions& options) {
  if (auto r = check_subtree(options.subtree); !r) return std::move(r).error();
  auto manager = std::make_unique<Manager>();
  manager->layout_ = options.force_layout.value_or(host.layout);
  const CgroupLayout layout = manager->layout_;
  if (layout == CgroupLayout::none) {
    return Error::described(ENOTSUP, "no cgroup hierarchy is mounted that this process is in");
  }
  const bool use_v2 = layout == CgroupLayout::unified || layout == CgroupLayout::hybrid;
  const bool use_v1 = layout == CgroupLayout::hybrid || layout == CgroupLayout::legacy;
  if (use_v2 && (host.unified_mount.empty() || !host.self_paths.count(""))) {
    return Error::described(ENOTSUP, "cgroup layout " + std::string(to_string(layout)) +
                                         " needs a cgroup v2 hierarchy; none is mounted");
  }
  if (use_v1 && host.v1_mounts.empty()) {
    return Error::described(ENOTSUP, "cgroup layout " + std::string(to_string(layout)) +
                                         " needs cgroup v1 controllers; none is mounted");
  }

  if (use_v1) {
    std::vector<std::string> used = {"cpu", "cpuacct", "memory", "pids", "devices"};
    // Without cgroup.kill only the freezer stops a fork bomb between the
    // read of cgroup.procs and the SIGKILLs.
    if (!use_v2) used.push_back("freezer");
    std::map<std::string, std::vector<std::string>> by_mount;
    for (const auto& [controller, mount] : host.v1_mounts) by_mount[mount].push_back(controller);
    std::vector<V1Hierarchy> hierarchies;
    for (auto& [mount, controllers] : by_mount) {
      // A new cpuset group has no CPUs until configured, so a task could
      // not join it; we leave cpuset hierarchies (and what shares them) alone.
      if (std::count(controllers.begin(), controllers.end(), "cpuset")) continue;
      bool wanted = std::any_of(controllers.begin(), controllers.end(), [&](const std::string& c) {
        return std::count(used.begin(), used.end(), c) != 0;
      });
      if (!wanted) continue;
      auto p = place(mount, host.self_paths.at(controllers.front()), options, controllers);
      if (!p) return std::move(p).error();
      hierarchies.push_back({controllers, p->own, p->anchor, p->base});
      for (const auto& c : controllers) {
        if (std::count(used.begin(), used.end(), c)) manager->v1_controllers_.push_back(c);
      }
    }
    auto tree = V1Subtree::open(std::move(hierarchies));
    if (!tree) return std::move(tree).error();
    manager->v1_ = std::move(*tree);
  }

  if (use_v2) {
    std::vector<std::string> wanted;
    for (const char* c : {"cpu", "memory", "pids"}) {
      if (!(manager->v1_ && manager->v1_->has(c))) wanted.push_back(c);
    }
    auto p = place(host.unified_mount, host.self_paths.at(""), options, {""});
    if (!p) return std::move(p).error();
    // Only the real root group lacks cgroup.events; the root of a cgroup
    // namespace is an ordinary group, bound by the no-internal-processes rule.
    bool own_is_root = !cgroupfs::exists(join(p->own, "cgroup.events"));
    V2Subtree::Location where{p->own, own_is_root, p->anchor, p->base};
    auto tree = V2Subtree::open(where, wanted, options.move_self_to_leaf);
    if (!tree) return std::move(tree).error();
    manager->v2_ = std::move(*tree);
  }

  manager->make_plan();
  manager->describe_self(host);
  return std::unique_ptr<CgroupManager>(std::move(manager));
}

void Manager::make_plan() {
  auto owner = [&](const char* c) {
    if (v1_ && v1_->has(c)) return Owner::v1;
    if (v2_ && v2_->has(c)) return Owner::v2;
    return Owner::none;
  };
  auto missing = [&](const std::string& c) {
    if (v2_) {
      for (const std::string& note : v2_->notes()) {
        if (note.rfind(c + ":", 0) == 0) return note;
      }
    }
    return c + ": no " + c + " controller in the hierarchies in use";
  };
  plan_.cpu = owner("cpu");
  plan_.memory = owner("memory");
  plan_.pids = owner("pids");
  if (plan_.memory == Owner::v1 && v1_->has_memsw()) plan_.swap = Owner::v1;
  if (plan_.memory == Owner::v2 && v2_->has_swap()) plan_.swap = Owner::v2;
  if (v1_ && v1_->has("devices")) {
    plan_.devices = Owner::v1;
    plan_.bpf_as_well = v2_.has_value();
  } else if (v2_) {
    plan_.devices = Owner::v2;
  }

  if (plan_.cpu == Owner::none) unsupported_.push_back(missing("cpu"));
  if (plan_.memory == Owner::none) unsupported_.push_back(missing("memory"));
  if (plan_.swap == Owner::none) {
    if (plan_.memory == Owner::none) {
      unsupported_.push_back("swap: needs the memory controller");
    } else if (plan_.memory == Owner::v1) {
      unsupported_.push_back("swap: memory.memsw.* absent (the kernel does not account swap)");
    } else {
      unsupported_.push_back("swap: memory.swap.max absent (the kernel does not account swap)");
    }
  }
  if (plan_.pids == Owner::none) unsupported_.push_back(missing("pids"));
  if (plan_.devices == Owner::none) {
    unsupported_.push_back(
        "devices: no v1 devices controller and no v2 hierarchy for the BPF filter");
  }
  // Anything else that went wrong preparing v2 (our own group's
  // cgroup.subtree_control, the move to a leaf) is worth a line too.
  if (v2_) {
    for (const std::string& note : v2_->notes()) {
      if (std::find(unsupported_.begin(), unsupported_.end(), note) == unsupported_.end()) {
        unsupported_.push_back(note);
      }
    }
  }
}

void Manager::describe_self(const CgroupHost& host) {
  auto joined = [](const std::vector<std::string>& words) {
    std::string out;
    for (const auto& w : words) out += (out.empty() ? "" : ",") + w;
    return out.empty() ? std::string("no controllers") : out;
  };
  std::string v1_part;
  if (v1_) {
    // "/sys/fs/cgroup/<c>" when every hierarchy is mounted under its own name.
    std::set<std::string> parents;
    bool by_name = true;
    std::vector<std::string> where;
    for (const V1Hierarchy& h : v1_->hierarchies()) {
      std::string mount = host.v1_mounts.at(h.controllers.front());
      std::string name;
      for (const auto& c : h.controllers) name += (name.empty() ? "" : ",") + c;
      parents.insert(cgroupfs::parent_of(mount));
      by_name = by_name && mount == join(cgroupfs::parent_of(mount), name);
      where.push_back(name + " at " + mount);
    }
    v1_part = joined(v1_controllers_);
    if (by_name && parents.size() == 1) {
      v1_part += " at " + join(*parents.begin(), "<c>");
    } else {
      v1_part += " (";
      for (std::size_t i = 0; i < where.size(); ++i) v1_part += (i ? ", " : "") + where[i];
      v1_part += ")";
    }
  }
  switch (layout_) {
    case CgroupLayout::unified:
      description_ = "cgroup v2: " + joined(v2_->controllers()) + " at " + v2_->base();
      break;
    case CgroupLayout::hybrid:
      description_ = "cgroup v1 (hybrid): " + v1_part + "; v2 core at " + host.unified_mount;
      if (!v2_->controllers().empty()) description_ += " with " + joined(v2_->controllers());
      break;
    case CgroupLayout::legacy:
      description_ = "cgroup v1 (legacy): " + v1_part;
      break;
    case CgroupLayout::none:
      description_ = "no cgroups";
      break;
  }
}

CgroupLimits Manager::only(const CgroupLimits& limits, Owner owner) const {
  CgroupLimits out;
  out.restrict_devices = limits.restrict_devices;
  out.devices = limits.devices;
  if (plan_.cpu == owner) out.cpu = limits.cpu;
  if (plan_.memory == owner) out.memory = limits.memory;
  if (plan_.swap == owner) out.swap = limits.swap;
  if (plan_.pids == owner) out.pids = limits.pids;
  return out;
}

Result<std::unique_ptr<Cgroup>> Manager::create(std::string_view name, const CgroupLimits& limits) {
  if (limits.cpu && !(std::isfinite(*limits.cpu) && *limits.cpu > 0)) {
    return Error::invalid("cgroup cpu limit " + std::to_string(*limits.cpu) +
                          ": want a positive number of CPUs");
  }
  const CgroupLimits v1_limits = only(limits, Owner::v1);
  const CgroupLimits v2_limits = only(limits, Owner::v2);
  // With a v2 hierarchy beside them (hybrid), v1 hierarchies are joined
  // only for the limits they enforce: membership, kill, CPU usage and the
  // device filter live on the v2 group, which clone3 joins for free.
  // Without one (legacy), every v1 hierarchy is needed for kill and usage.
  const bool v1_devices_needed = limits.restrict_devices && plan_.devices == Owner::v1 &&
                                 (!v2_ || ::geteuid() != 0);
  std::vector<std::string> v1_controllers;
  for (const std::string& c : v1_controllers_) {
    bool needed = limits.prepare_all || !v2_ || (c == "cpu" && v1_limits.cpu) ||
                  (c == "memory" && (v1_limits.memory || v1_limits.swap)) ||
                  (c == "pids" && v1_limits.pids) || (c == "devices" && v1_devices_needed);
    if (c == "devices" && !limits.restrict_devices) needed = false;
    if (needed) v1_controllers.push_back(c);
  }
  DeviceFilter filter = DeviceFilter::none;
  // Loading a BPF program needs CAP_BPF (or CAP_SYS_ADMIN) in the host's
  // user namespace: an unprivileged daemon (User=symphony, no capabilities)
  // attaches it where it can and otherwise relies on the mount namespace,
  // where only the granted device nodes exist, on nodev mounts and on
  // having no CAP_MKNOD (docs/sandbox.md).
  if (limits.restrict_devices && plan_.devices == Owner::v2) {
    filter = ::geteuid() == 0 ? DeviceFilter::required : DeviceFilter::best_effort;
  }
  if (limits.restrict_devices && plan_.bpf_as_well) {
    bool v1_devices_joined =
        std::find(v1_controllers.begin(), v1_controllers.end(), "devices") != v1_controllers.end();
    filter = v1_devices_joined ? DeviceFilter::best_effort : DeviceFilter::required;
  }

  // A name can be taken only by a launcher that had our pid before us and
  // left its groups behind: move on to the next number.
  for (int attempt = 0;; ++attempt) {
    std::string dir = cgroupfs::group_name(name, ::getpid(), next_group_number++);
    auto taken = [&](const Error& e) { return e.code() == EEXIST && attempt < 100; };
    std::unique_ptr<V2Group> v2_group;
    if (v2_) {
      auto g = v2_->create(dir, v2_limits, filter);
      if (!g && taken(g.error())) continue;
      if (!g) return std::move(g).error();
      v2_group = std::move(*g);
    }
    std::unique_ptr<V1Group> v1_group;
    if (v1_) {
      auto g = v1_->create(dir, v1_controllers, v1_limits);
      if (!g && taken(g.error())) continue;
      if (!g) return std::move(g).error();
      v1_group = std::move(*g);
    }
    // Re-limiting needs the subtrees and the plan after the manager may be
    // gone (a Child outlives its launcher): the closure holds copies.
    SandboxCgroup::Relimit relimit = [v1 = v1_, v2 = v2_, plan = plan_](
                                         const V1Group* g1, const V2Group* g2,
                                         const CgroupLimits& l) -> Result<void> {
      auto pick = [&](Owner owner) {
        CgroupLimits out;
        if (plan.cpu == owner) out.cpu = l.cpu;
        if (plan.memory == owner) out.memory = l.memory;
        if (plan.swap == owner) out.swap = l.swap;
        if (plan.pids == owner) out.pids = l.pids;
        return out;
      };
      if (g2 && v2) {
        if (auto r = v2->apply_limits(*g2, pick(Owner::v2)); !r) return r;
      }
      if (g1 && v1) {
        if (auto r = v1->apply_limits(*g1, pick(Owner::v1)); !r) return r;
      }
      return ok();
    };
    return std::unique_ptr<Cgroup>(std::make_unique<SandboxCgroup>(
        std::move(v1_group), std::move(v2_group), plan_.memory, std::move(relimit)));
  }
}

Result<int> Manager::cleanup_stale() {
  std::set<std::string> names;
  auto collect = [&](const std::string& base) {
    for (const std::string& d : cgroupfs::subdirs(base)) {
      if (cgroupfs::group_owner(d)) names.insert(d);
    }
  };
  if (v2_) collect(v2_->base());
  if (v1_) {
    for (const V1Hierarchy& h : v1_->hierarchies()) collect(h.base);
  }

  int removed = 0;
  std::optional<Error> first_error;
  for (const std::string& name : names) {
    int owner = *cgroupfs::group_owner(name);
    // EPERM means alive too (someone else's process): only ESRCH is dead.
    if (owner == ::getpid() || ::kill(owner, 0) == 0 || errno != ESRCH) continue;
    std::unique_ptr<V2Group> v2_group;
    if (v2_ && cgroupfs::exists(join(v2_->base(), name))) {
      auto g = V2Group::open(join(v2_->base(), name));
      if (!g) {
        if (!first_error) first_error = std::move(g).error();
        continue;
      }
      v2_group = std::move(*g);
    }
    std::unique_ptr<V1Group> v1_group = v1_ ? v1_->adopt(name) : nullptr;
    SandboxCgroup stale(std::move(v1_group), std::move(v2_group), plan_.memory, nullptr);
    if (auto r = stale.remove(); r) {
      ++removed;
    } else if (!first_error) {
      first_error = std::move(r).error().wrap("remove stale cgroup " + name);
    }
  }
  if (first_error) return std::move(*first_error);
  return removed;
}

}  // namespace

Result<std::unique_ptr<CgroupManager>> open_cgroup_manager(const CgroupOptions& options) {
  auto host = detect_cgroup_host();
  if (!host) return std::move(host).error().wrap("detect cgroup hierarchies");
  return Manager::open(*host, options);
}

}  // namespace symphony::sandbox
