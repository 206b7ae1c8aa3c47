// The extension host: pooled sandboxed instances (see host.h).
#include "stage/host.h"

#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "sandbox/process_tree.h"

namespace symphony::stage {
using Clock = std::chrono::steady_clock;

struct ExtensionHost::Entry {
  Manifest manifest;
  RunAs as;
  std::string name;
  pit::pool::ModelId model;
  std::atomic<bool> retired{false};
};

class ExtensionHost::Loader final : public pit::pool::Loader {
 public:
  explicit Loader(ExtensionHost& host) : host_(host) {}

  Result<pit::pool::Loaded> load(const pit::pool::ModelSpec& model, const std::string& device) override {
    if (device != "host") return Error::described(ENODEV, "extensions run on the host device only");
    std::shared_ptr<Entry> entry;
    InstanceOptions options;
    {
      std::lock_guard lock(host_.mu_);
      auto it = host_.entries_.find(model.name);
      if (it == host_.entries_.end()) return Error::described(ENOENT, "no extension entry " + model.name);
      entry = it->second;
      options = host_.options_.instance;
      options.instance_id = host_.next_instance_++;
    }
    if (host_.launcher_ == nullptr) {
      return Error::described(ENOSYS, fmt::format("{}: the sandbox is unavailable (see symphonyctl status)",
                                                  entry->manifest.id));
    }
    options.uid = entry->as.uid;
    options.gid = entry->as.gid;
    std::string label = fmt::format("{}@{}", entry->manifest.id, to_string(entry->manifest.version));
    options.on_output = [label](std::string_view line) { spdlog::info("extension {}: {}", label, line); };
    auto instance = Instance::start(*host_.launcher_, entry->manifest, entry->as.workspace, std::move(options));
    std::lock_guard lock(host_.mu_);
    if (!instance) {
      ++host_.stats_.start_failures;
      return std::move(instance).error();
    }
    ++host_.stats_.started;
    std::uint64_t id = (*instance)->id();
    int pid = (*instance)->pid();
    host_.instances_[id] = std::shared_ptr<Instance>(std::move(*instance));
    host_.instance_model_[id] = model.name;
    spdlog::info("extension {}: instance {} started (pid {})", label, id, pid);
    return pit::pool::Loaded{pit::pool::InstanceId{id}, pit::pool::Bytes{sandbox::tree_rss(pid)}};
  }

  Result<void> unload(pit::pool::InstanceId id) override {
    std::shared_ptr<Instance> instance;
    {
      std::lock_guard lock(host_.mu_);
      auto it = host_.instances_.find(id.value);
      if (it == host_.instances_.end()) return Error::described(ENOENT, fmt::format("no extension instance {}", id.value));
      instance = std::move(it->second);
      host_.instances_.erase(it);
      host_.instance_model_.erase(id.value);
      ++host_.stats_.stopped;
    }
    instance->shutdown();
    return ok();
  }

  Result<void> health(pit::pool::InstanceId id) override {
    auto instance = host_.instance(id);
    if (!instance) return Error::described(ENOENT, fmt::format("no extension instance {}", id.value));
    return instance->health();
  }

  Result<pit::pool::Bytes> measure_memory(const std::string& device) override {
    if (device != "host") return Error::described(ENODEV, "no memory measurement for device '" + device + "'");
    std::vector<int> pids;
    {
      std::lock_guard lock(host_.mu_);
      for (const auto& [id, inst] : host_.instances_) pids.push_back(inst->pid());
    }
    std::uint64_t total = 0;
    for (int pid : pids) total += sandbox::tree_rss(pid);
    return pit::pool::Bytes{total};
  }

 private:
  ExtensionHost& host_;
};

ExtensionHost::ExtensionHost(sandbox::Launcher* launcher, HostOptions options)
    : launcher_(launcher), options_(std::move(options)), loader_(std::make_unique<Loader>(*this)) {}

Result<std::unique_ptr<ExtensionHost>> ExtensionHost::create(sandbox::Launcher* launcher, HostOptions options) {
  std::uint64_t budget = options.memory_budget;
  if (budget == 0) {
    long pages = ::sysconf(_SC_PHYS_PAGES);
    long size = ::sysconf(_SC_PAGESIZE);
    budget = pages > 0 && size > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(size) / 2
                                   : 4ull << 30;
  }
  std::unique_ptr<ExtensionHost> host(new ExtensionHost(launcher, std::move(options)));
  pit::pool::PoolConfig config;
  config.devices = {{"host", pit::pool::Bytes{budget}}};
  // Workflows name their extensions step by step; the Conductor starts what
  // the plan needs, so history-based prewarming would only guess.
  config.prediction.enabled = false;
  config.backoff.initial = std::chrono::milliseconds(200);
  config.backoff.max = std::chrono::milliseconds(10'000);
  auto pool = pit::pool::Pool::create(std::move(config), *host->loader_);
  if (!pool) return std::move(pool).error().wrap("extension pool");
  host->pool_ = std::move(*pool);
  return host;
}

ExtensionHost::~ExtensionHost() {
  pool_.reset();
  std::map<std::uint64_t, std::shared_ptr<Instance>> left;
  {
    std::lock_guard lock(mu_);
    left.swap(instances_);
  }
  for (auto& [id, inst] : left) inst->shutdown();
}

std::shared_ptr<Instance> ExtensionHost::instance(pit::pool::InstanceId id) {
  std::lock_guard lock(mu_);
  auto it = instances_.find(id.value);
  return it == instances_.end() ? nullptr : it->second;
}

Result<pit::pool::ModelId> ExtensionHost::model_for(const Manifest& manifest, const RunAs& as) {
  std::string name = fmt::format("{}@{}|{}|{}:{}", manifest.id, to_string(manifest.version), as.workspace.string(),
                                 as.uid ? std::to_string(*as.uid) : "-", as.gid ? std::to_string(*as.gid) : "-");
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(name);
    if (it != entries_.end()) {
      // The same version installed again (--force) from another directory.
      if (it->second->manifest.directory == manifest.directory) return it->second->model;
    }
  }
  auto entry = std::make_shared<Entry>();
  entry->manifest = manifest;
  entry->as = as;
  pit::pool::ModelSpec spec;
  spec.name = name;
  spec.device = "host";
  spec.expected_memory = manifest.limits.memory.value_or(sandbox::Bytes{64ull << 20});
  spec.max_instances = options_.max_instances;
  spec.max_users_per_instance = 1;
  std::lock_guard lock(mu_);
  auto it = entries_.find(name);
  if (it != entries_.end() && it->second->manifest.directory == manifest.directory) return it->second->model;
  if (it != entries_.end()) {
    // Reinstalled in place: the old entry's instances retire; the pool keeps
    // one model per name, so the new directory gets a distinct name.
    it->second->retired = true;
    spec.name = name + "|" + manifest.directory.string();
    entry->name = spec.name;
    if (auto again = entries_.find(spec.name); again != entries_.end()) return again->second->model;
  }
  entry->name = spec.name;
  entries_[spec.name] = entry;
  auto id = pool_->find(spec.name);
  if (!id) {
    auto added = pool_->add_model(spec);
    if (!added) {
      entries_.erase(spec.name);
      return std::move(added).error();
    }
    id = *added;
  }
  entry->model = *id;
  return *id;
}

void ExtensionHost::count_failure(FailureKind kind) {
  std::lock_guard lock(mu_);
  ++stats_.failures[std::string(to_string(kind))];
}

StepOutcome ExtensionHost::run(const Manifest& manifest, const RunAs& as, const StepCall& call,
                               const StepEvents& events, const CancelToken* cancel) {
  {
    std::lock_guard lock(mu_);
    ++stats_.steps;
  }
  auto model = model_for(manifest, as);
  if (!model) {
    count_failure(FailureKind::start);
    return StepFailure{FailureKind::start, model.error().message(), false};
  }
  pit::pool::Request request;
  request.wait = options_.acquire_wait;
  auto lease = pool_->allocate(*model, request);
  if (!lease) {
    count_failure(FailureKind::start);
    std::string message = lease.error().message();
    // A refused handshake will be refused again; a failed start may not be.
    bool retryable = message.find("handshake refused") == std::string::npos;
    return StepFailure{FailureKind::start, message, retryable};
  }
  auto inst = instance(lease->instance());
  if (!inst) {
    count_failure(FailureKind::crash);
    return StepFailure{FailureKind::crash, "the instance ended before the step could start", true};
  }
  StepOutcome outcome = inst->run(call, events, cancel);
  if (auto* f = std::get_if<StepFailure>(&outcome)) {
    count_failure(f->kind);
    // A dead instance goes to `failed` in the pool now, not at the next
    // health check, so no other step is handed to it.
    if (!inst->alive()) pool_->check_health();
  }
  return outcome;
}

void ExtensionHost::retire_other_versions(const std::string& id, const Version& current) {
  {
    std::lock_guard lock(mu_);
    for (auto& [name, entry] : entries_) {
      if (entry->manifest.id == id && !(entry->manifest.version == current)) entry->retired = true;
    }
  }
  maintain();
}

std::set<std::string> ExtensionHost::versions_in_use(const std::string& id) const {
  std::set<std::string> out;
  std::lock_guard lock(mu_);
  for (const auto& [inst, model] : instance_model_) {
    auto it = entries_.find(model);
    if (it != entries_.end() && it->second->manifest.id == id) out.insert(to_string(it->second->manifest.version));
  }
  return out;
}

void ExtensionHost::maintain() {
  pool_->check_health();
  const auto now = Clock::now();
  pool_->unload_idle([&](pit::pool::ModelId, pit::pool::InstanceId id) {
    std::lock_guard lock(mu_);
    auto m = instance_model_.find(id.value);
    if (m == instance_model_.end()) return false;
    auto e = entries_.find(m->second);
    if (e != entries_.end() && e->second->retired) return true;
    if (options_.idle_timeout.count() == 0) return false;
    auto it = instances_.find(id.value);
    return it != instances_.end() && now - it->second->last_used() >= options_.idle_timeout;
  });
}

void ExtensionHost::activate(const Manifest& manifest, const RunAs& as) {
  auto model = model_for(manifest, as);
  if (!model) {
    spdlog::warn("extension {}: not activated at start: {}", manifest.id, model.error().message());
    return;
  }
  std::vector<pit::pool::ModelId> ids{*model};
  if (auto r = pool_->prewarm(ids); !r) {
    spdlog::warn("extension {}: not activated at start: {}", manifest.id, r.error().message());
  }
}

HostStats ExtensionHost::stats() const {
  std::lock_guard lock(mu_);
  HostStats s = stats_;
  s.live = instances_.size();
  return s;
}

}  // namespace symphony::stage
