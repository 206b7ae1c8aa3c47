// Workflows in the daemon (workflow_service.h).
#include "daemon/workflow_service.h"

#include <sys/stat.h>

#include <fmt/format.h>

#include "base/accounts.h"
#include "base/log.h"
#include "daemon/rpc_util.h"
#include "ipc/msgpack_json.h"
#include "symphony_build_config.h"

namespace symphony::daemon {
namespace rpc = ipc::rpc;
using conductor::Event;
using conductor::EventKind;

// --- the Conductor's three seams ----------------------------------------------

// Providers from the registry: enabled, not shadowed, providing the
// capability; cached until the registry's generation changes (the hot path
// of a 10 000-step workflow must not list directories).
class WorkflowService::Providers final : public conductor::ProviderSource {
 public:
  explicit Providers(stage::Registry& registry) : registry_(registry) {}
  std::vector<std::shared_ptr<const stage::Manifest>> providers(std::string_view capability,
                                                               std::uint32_t uid) override {
    std::lock_guard lock(mu_);
    if (generation_ != registry_.generation()) {
      cache_.clear();
      generation_ = registry_.generation();
    }
    auto& per_uid = cache_[uid];
    if (!per_uid.loaded) {
      for (auto& e : registry_.list(uid)) {
        if (!e.enabled || e.shadowed) continue;
        per_uid.all.push_back(std::make_shared<const stage::Manifest>(std::move(e.manifest)));
      }
      per_uid.loaded = true;
    }
    std::vector<std::shared_ptr<const stage::Manifest>> out;
    for (const auto& m : per_uid.all) {
      if (m->find_capability(capability)) out.push_back(m);
    }
    return out;
  }

 private:
  struct PerUid {
    bool loaded = false;
    std::vector<std::shared_ptr<const stage::Manifest>> all;
  };
  stage::Registry& registry_;
  std::mutex mu_;
  std::uint64_t generation_ = ~0ull;
  std::map<std::uint32_t, PerUid> cache_;
};

class WorkflowService::StoreIo final : public conductor::ArtifactIo {
 public:
  explicit StoreIo(pit::ArtifactStore& store) : store_(store) {}
  Result<stage::InputData> read(const pit::ArtifactRef& ref) override {
    auto v = store_.get(ref);
    if (!v) return std::move(v).error();
    auto blob = store_.map_blob(v->digest);
    if (!blob) return std::move(blob).error().wrap(ref.to_string());
    auto bytes = blob->bytes();
    return stage::InputData{fmt::format("{}@{}", v->name, v->version), v->digest.to_string(), v->media_type,
                            std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size())};
  }
  Result<pit::VersionInfo> write(const stage::StepOutputData& output, const pit::PutOptions& options) override {
    return store_.put(std::span<const std::byte>(reinterpret_cast<const std::byte*>(output.data.data()),
                                                 output.data.size()),
                      options);
  }

 private:
  pit::ArtifactStore& store_;
};

class WorkflowService::HostExecutor final : public conductor::StepExecutor {
 public:
  explicit HostExecutor(stage::ExtensionHost& host) : host_(host) {}
  stage::StepOutcome execute(const stage::Manifest& provider, const stage::RunAs& as, const stage::StepCall& call,
                             const stage::StepEvents& events, const stage::CancelToken& cancel) override {
    return host_.run(provider, as, call, events, &cancel);
  }

 private:
  stage::ExtensionHost& host_;
};

// --- packing -------------------------------------------------------------------

namespace {

std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

void pack_strings(rpc::Packer& pk, const std::vector<std::string>& v) {
  pk.pack_array(static_cast<std::uint32_t>(v.size()));
  for (const auto& s : v) pk.pack(s);
}

void pack_event(rpc::Packer& pk, const Event& e) {
  pk.pack_map(16);
  pk.pack("seq");
  pk.pack(e.seq);
  pk.pack("time_ms");
  pk.pack(unix_ms(e.time));
  pk.pack("kind");
  pk.pack(conductor::to_string(e.kind));
  pk.pack("run");
  pk.pack(e.run);
  pk.pack("step");
  pk.pack(e.step);
  pk.pack("attempt");
  pk.pack(e.attempt);
  pk.pack("provider");
  pk.pack(e.provider);
  pk.pack("message");
  pk.pack(e.message);
  pk.pack("level");
  pk.pack(e.level);
  pk.pack("failure");
  pk.pack(e.failure);
  pk.pack("fraction");
  pk.pack_double(e.fraction);
  pk.pack("delay_ms");
  pk.pack(e.delay_ms);
  pk.pack("outputs");
  pack_strings(pk, e.outputs);
  pk.pack("state");
  pk.pack(e.state);
  pk.pack("done");
  pk.pack(e.done);
  pk.pack("total");
  pk.pack(e.total);
}

void pack_run(rpc::Packer& pk, const conductor::RunStatus& s, bool with_steps) {
  pk.pack_map(with_steps ? 13 : 12);
  pk.pack("run");
  pk.pack(s.id);
  pk.pack("workflow");
  pk.pack(s.workflow);
  pk.pack("source");
  pk.pack(s.source);
  pk.pack("submitter");
  pk.pack(s.submitter);
  pk.pack("workspace");
  pk.pack(s.workspace);
  pk.pack("state");
  pk.pack(conductor::to_string(s.state));
  pk.pack("started_ms");
  pk.pack(unix_ms(s.started));
  pk.pack("finished_ms");
  pk.pack(s.state == conductor::RunState::running ? 0 : unix_ms(s.finished));
  pk.pack("done");
  pk.pack(s.done);
  pk.pack("total");
  pk.pack(s.total);
  pk.pack("error");
  pk.pack(s.error);
  pk.pack("outputs");
  pack_strings(pk, s.outputs);
  if (!with_steps) return;
  pk.pack("steps");
  pk.pack_array(static_cast<std::uint32_t>(s.steps.size()));
  for (const auto& st : s.steps) {
    pk.pack_map(7);
    pk.pack("id");
    pk.pack(st.id);
    pk.pack("capability");
    pk.pack(st.capability);
    pk.pack("state");
    pk.pack(st.state);
    pk.pack("attempts");
    pk.pack(st.attempts);
    pk.pack("provider");
    pk.pack(st.provider);
    pk.pack("error");
    pk.pack(st.error);
    pk.pack("outputs");
    pack_strings(pk, st.outputs);
  }
}

}  // namespace

// --- the service -----------------------------------------------------------------

WorkflowService::WorkflowService(ipc::Server& server, stage::Registry& registry, StageConfig config)
    : server_(server), registry_(registry), config_(std::move(config)) {}

WorkflowService::~WorkflowService() {
  server_.loop().cancel_timer(maintain_timer_);
  conductor_.reset();    // joins the step workers (running steps are cancelled)
  maintenance_.reset();
  host_.reset();         // shuts the instances down
}

Result<std::unique_ptr<WorkflowService>> WorkflowService::create(ipc::Server& server, sandbox::Launcher* launcher,
                                                                 stage::Registry& registry, pit::ArtifactStore& store,
                                                                 pit::dag::DagTracker& dag, const StageConfig& config,
                                                                 const rpc::DecodeLimits& limits) {
  std::unique_ptr<WorkflowService> s(new WorkflowService(server, registry, config));
  stage::HostOptions host;
  host.instance.symphony_version = SYMPHONY_VERSION;
  host.instance.heartbeat = config.heartbeat;
  host.instance.heartbeat_timeout = config.heartbeat_timeout;
  host.instance.handshake_timeout = config.handshake_timeout;
  host.instance.cancel_grace = config.cancel_grace;
  host.instance.python_sdk_dir = config.python_sdk_dir;
  host.instance.limits = limits;
  host.max_instances = config.max_instances;
  host.idle_timeout = config.idle_timeout;
  host.acquire_wait = std::chrono::milliseconds(10 * 60'000);
  auto h = stage::ExtensionHost::create(launcher, host);
  if (!h) return std::move(h).error();
  s->host_ = std::move(*h);
  s->providers_ = std::make_unique<Providers>(registry);
  s->io_ = std::make_unique<StoreIo>(store);
  s->executor_ = std::make_unique<HostExecutor>(*s->host_);
  auto strategy = conductor::make_strategy(config.strategy);
  if (!strategy) return std::move(strategy).error();
  conductor::ConductorOptions options;
  options.max_parallel = config.max_parallel;
  auto c = conductor::Conductor::create(server.loop(), dag, *s->providers_, *s->executor_, *s->io_,
                                        std::move(*strategy), options);
  if (!c) return std::move(c).error();
  s->conductor_ = std::move(*c);
  auto m = ipc::WorkerPool::create(server.loop(), 1);
  if (!m) return std::move(m).error();
  s->maintenance_ = std::move(*m);
  std::weak_ptr<int> alive = s->alive_;
  WorkflowService* self = s.get();
  registry.on_change([self, alive](const std::string& id) {
    // Called on the thread that changed the registry (the loop's, for the
    // ext.* methods); the retirement itself blocks, so it goes to a worker.
    if (alive.expired()) return;
    self->on_registry_change(id);
  });
  // Extensions that ask to run from the start (without a workspace).
  for (const auto& e : registry.list(0)) {
    if (e.enabled && !e.shadowed && e.manifest.activation == stage::Activation::at_start) {
      auto manifest = e.manifest;
      s->maintenance_->submit([self, manifest]() -> ipc::Task {
        self->host_->activate(manifest, stage::RunAs{});
        return {};
      });
    }
  }
  s->schedule_maintain();
  return s;
}

void WorkflowService::on_registry_change(const std::string& id) {
  auto current = registry_.find(id, 0);
  to_prune_.insert(id);
  std::optional<stage::Version> version;
  if (current && current->enabled) version = current->manifest.version;
  maintenance_->submit([this, id, version]() -> ipc::Task {
    if (version) {
      host_->retire_other_versions(id, *version);
    } else {
      host_->retire_other_versions(id, stage::Version{});  // disabled or removed: retire them all
    }
    return {};
  });
}

void WorkflowService::schedule_maintain() {
  auto period = std::chrono::milliseconds(
      std::clamp<std::int64_t>(config_.heartbeat_timeout.count() / 2, 200, 5000));
  std::weak_ptr<int> alive = alive_;
  maintain_timer_ = server_.loop().add_timer(period, [this, alive] {
    if (alive.expired()) return;
    if (!maintain_running_) {
      maintain_running_ = true;
      std::set<std::string> ids = to_prune_;
      maintenance_->submit([this, ids, alive]() -> ipc::Task {
        host_->maintain();
        std::set<std::string> done;
        for (const auto& id : ids) {
          auto keep = host_->versions_in_use(id);
          bool any_left = false;
          for (auto scope : {stage::Scope::system}) {
            auto removed = registry_.prune(id, scope, 0, keep);
            if (removed && !removed->empty()) {
              spdlog::info("extension {}: removed drained versions {}", id, fmt::join(*removed, ", "));
            }
          }
          // Keep trying while an old version still runs.
          auto cur = registry_.find(id, 0);
          for (const auto& v : keep) {
            if (!cur || to_string(cur->manifest.version) != v) any_left = true;
          }
          if (!any_left) done.insert(id);
        }
        return [this, done, alive] {
          if (alive.expired()) return;
          for (const auto& id : done) to_prune_.erase(id);
          maintain_running_ = false;
        };
      });
    }
    schedule_maintain();
  });
}

void WorkflowService::register_methods() {
  auto bind = [this](void (WorkflowService::*m)(const ipc::CallContext&, ipc::Responder&)) {
    return [this, m](const ipc::CallContext& call, ipc::Responder& r) { (this->*m)(call, r); };
  };
  server_.add_method("workflow.submit", bind(&WorkflowService::submit));
  server_.add_method("workflow.watch", bind(&WorkflowService::watch));
  server_.add_method("workflow.ls", bind(&WorkflowService::list));
  server_.add_method("workflow.show", bind(&WorkflowService::show));
  server_.add_method("workflow.cancel", bind(&WorkflowService::cancel));
  server_.add_method("workflow.logs", bind(&WorkflowService::logs));
  server_.on_disconnect([this](std::uint64_t connection) {
    auto it = watches_.find(connection);
    if (it == watches_.end()) return;
    for (auto h : it->second) conductor_->unwatch(h);
    watches_.erase(it);
  });
}

// workflow.submit [text, source, workspace, [K=V…]] → {run, total}
void WorkflowService::submit(const ipc::CallContext& call, ipc::Responder& r) {
  Params p(call);
  auto text = p.string(0, "workflow text");
  auto source = p.string(1, "source name");
  auto workspace = p.string(2, "workspace directory");
  if (!text || !source || !workspace) {
    return r.fail(rpc::ErrorCode::invalid_params,
                  (!text ? text.error() : !source ? source.error() : workspace.error()).message());
  }
  std::vector<std::string> overrides;
  if (const auto* o = p.at(3); o != nullptr && o->type == msgpack::type::ARRAY) {
    for (std::uint32_t i = 0; i < o->via.array.size; ++i) {
      if (o->via.array.ptr[i].type != msgpack::type::STR) {
        return r.fail(rpc::ErrorCode::invalid_params, "workflow.submit: parameter 4 (params) must be strings K=V");
      }
      overrides.emplace_back(as_str(o->via.array.ptr[i]));
    }
  }
  auto def = conductor::parse_workflow(*text, *source);
  if (!def) return r.fail(rpc::ErrorCode::invalid_params, def.error().message());
  auto plan = conductor::plan_workflow(*def, overrides);
  if (!plan) return r.fail(rpc::ErrorCode::invalid_params, plan.error().message());
  conductor::RunOptions options;
  options.source = std::string(*source);
  if (!workspace->empty()) {
    std::filesystem::path ws(*workspace);
    struct stat st{};
    if (!ws.is_absolute()) {
      return r.fail(rpc::ErrorCode::invalid_params, fmt::format("workspace '{}' must be an absolute path", *workspace));
    }
    if (::stat(ws.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return r.fail(rpc::ErrorCode::invalid_params, fmt::format("workspace '{}' is not a directory", *workspace));
    }
    options.as.workspace = ws.lexically_normal();
  }
  // Steps run as the user who submitted them, so they can touch only what
  // that user can; root's run as nobody (the sandbox's default).
  if (call.peer.uid != 0) {
    options.as.uid = call.peer.uid;
    options.as.gid = call.peer.gid;
  }
  options.submitter = fmt::format("uid {}", call.peer.uid);
  auto id = conductor_->submit(std::move(*plan), std::move(options));
  if (!id) {
    return r.fail(id.error().code() == ENOENT ? rpc::ErrorCode::not_found : rpc::ErrorCode::invalid_params,
                  id.error().message());
  }
  auto st = conductor_->status(*id);
  r.reply_with([&](rpc::Packer& pk) {
    pk.pack_map(2);
    pk.pack("run");
    pk.pack(*id);
    pk.pack("total");
    pk.pack(st ? st->total : 0);
  });
}

// workflow.watch [run, after] → events as workflow.event notifications, then
// the final status when the run has finished.
void WorkflowService::watch(const ipc::CallContext& call, ipc::Responder& r) {
  Params p(call);
  auto run = p.string(0, "run id");
  if (!run) return r.fail(rpc::ErrorCode::invalid_params, run.error().message());
  std::uint64_t after = 0;
  if (p.size() > 1) {
    auto a = p.uint(1, "after (event sequence number)");
    if (!a) return r.fail(rpc::ErrorCode::invalid_params, a.error().message());
    after = *a;
  }
  std::string id(*run);
  auto past = conductor_->events(id, after);
  if (!past) return r.fail(rpc::ErrorCode::not_found, past.error().message());
  auto reply = hold(r);
  auto finish = [this, id, reply] {
    auto st = conductor_->status(id);
    if (!st) return reply->fail(rpc::ErrorCode::not_found, "run " + id + " is gone");
    reply->reply_with([&](rpc::Packer& pk) { pack_run(pk, *st, true); });
  };
  bool ended = false;
  for (const auto& e : *past) {
    reply->notify("workflow.event", [&](rpc::Packer& pk) { pack_event(pk, e); });
    if (e.kind == EventKind::run_finished) ended = true;
  }
  if (ended) return finish();
  auto h = conductor_->watch(id, [reply, finish](const Event& e) {
    reply->notify("workflow.event", [&](rpc::Packer& pk) { pack_event(pk, e); });
    if (e.kind == EventKind::run_finished) finish();
  });
  if (!h) return reply->fail(rpc::ErrorCode::not_found, h.error().message());
  watches_[call.connection_id].push_back(*h);
}

void WorkflowService::list(const ipc::CallContext&, ipc::Responder& r) {
  auto runs = conductor_->runs();
  r.reply_with([&](rpc::Packer& pk) {
    pk.pack_array(static_cast<std::uint32_t>(runs.size()));
    for (const auto& s : runs) pack_run(pk, s, false);
  });
}

void WorkflowService::show(const ipc::CallContext& call, ipc::Responder& r) {
  Params p(call);
  auto run = p.string(0, "run id");
  if (!run) return r.fail(rpc::ErrorCode::invalid_params, run.error().message());
  auto st = conductor_->status(*run);
  if (!st) return r.fail(rpc::ErrorCode::not_found, fmt::format("no run '{}' (see symphonyctl workflow ls)", *run));
  r.reply_with([&](rpc::Packer& pk) { pack_run(pk, *st, true); });
}

void WorkflowService::cancel(const ipc::CallContext& call, ipc::Responder& r) {
  Params p(call);
  auto run = p.string(0, "run id");
  if (!run) return r.fail(rpc::ErrorCode::invalid_params, run.error().message());
  auto c = conductor_->cancel(*run);
  if (!c) {
    return r.fail(c.error().code() == ENOENT ? rpc::ErrorCode::not_found : rpc::ErrorCode::failed,
                  c.error().message());
  }
  auto st = conductor_->status(*run);
  r.reply_with([&](rpc::Packer& pk) { pack_run(pk, *st, false); });
}

void WorkflowService::logs(const ipc::CallContext& call, ipc::Responder& r) {
  Params p(call);
  auto run = p.string(0, "run id");
  if (!run) return r.fail(rpc::ErrorCode::invalid_params, run.error().message());
  std::uint64_t after = 0;
  if (p.size() > 1) {
    auto a = p.uint(1, "after (event sequence number)");
    if (!a) return r.fail(rpc::ErrorCode::invalid_params, a.error().message());
    after = *a;
  }
  auto events = conductor_->events(*run, after);
  if (!events) return r.fail(rpc::ErrorCode::not_found, events.error().message());
  r.reply_with([&](rpc::Packer& pk) {
    pk.pack_array(static_cast<std::uint32_t>(events->size()));
    for (const auto& e : *events) pack_event(pk, e);
  });
}

void WorkflowService::pack_stats(rpc::Packer& pk) const {
  auto c = conductor_->stats();
  auto h = host_->stats();
  pk.pack_map(14);
  pk.pack("strategy");
  pk.pack(conductor_->strategy());
  pk.pack("runs_started");
  pk.pack(c.runs_started);
  pk.pack("runs_succeeded");
  pk.pack(c.runs_succeeded);
  pk.pack("runs_failed");
  pk.pack(c.runs_failed);
  pk.pack("steps_started");
  pk.pack(c.steps_started);
  pk.pack("steps_succeeded");
  pk.pack(c.steps_succeeded);
  pk.pack("steps_failed");
  pk.pack(c.steps_failed);
  pk.pack("retries");
  pk.pack(c.retries);
  pk.pack("reroutes");
  pk.pack(c.reroutes);
  pk.pack("breaker_trips");
  pk.pack(c.breaker_trips);
  pk.pack("running_steps");
  pk.pack(c.running_steps);
  pk.pack("instances_live");
  pk.pack(h.live);
  pk.pack("instances_started");
  pk.pack(h.started);
  pk.pack("instance_failures");
  pk.pack_map(static_cast<std::uint32_t>(h.failures.size()));
  for (const auto& [k, v] : h.failures) {
    pk.pack(k);
    pk.pack(v);
  }
}

std::string WorkflowService::summary() const {
  auto c = conductor_->stats();
  auto h = host_->stats();
  return fmt::format("{} running steps, {} runs ({} succeeded, {} failed), {} extension instances live",
                     c.running_steps, c.runs_started, c.runs_succeeded, c.runs_failed, h.live);
}

}  // namespace symphony::daemon
