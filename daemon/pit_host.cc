// Opening, wiring and periodic work of the Pit's components in the daemon.
#include "daemon/pit_host.h"

#include <array>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/paths.h"
#include "daemon/rpc_util.h"

namespace symphony::daemon {

using ipc::rpc::Packer;

namespace {
constexpr std::uint32_t kConflictStatKeys = pit::kConflictPolicyCount + 3;
}  // namespace

PitHost::PitHost(ipc::Server& server, PitConfig config, std::filesystem::path dir, std::filesystem::path runtime_dir)
    : server_(server), config_(std::move(config)), dir_(std::move(dir)), runtime_dir_(std::move(runtime_dir)) {}

PitHost::~PitHost() {
  server_.loop().cancel_timer(gc_timer_);
  server_.loop().cancel_timer(stale_timer_);
  // Waits for jobs in flight (a put being made durable) before the store
  // and the resolver they use go.
  workers_.reset();
  pool_.reset();  // unloads every model instance
  claims_.reset();
  arbiter_.reset();
  dag_.reset();  // flushes its journal; uses the memo cache
  memo_.reset();
  artifacts_.reset();
  stale_.reset();
}

Result<std::unique_ptr<PitHost>> PitHost::open(ipc::Server& server, const PitConfig& config,
                                               const std::filesystem::path& dir,
                                               const std::filesystem::path& runtime_dir,
                                               sandbox::Launcher* launcher) {
  std::unique_ptr<PitHost> host(new PitHost(server, config, dir, runtime_dir));
  host->launcher_ = launcher;
  if (auto r = host->start(); !r) return std::move(r).error();
  return host;
}

Result<void> PitHost::start() {
  if (auto r = ensure_directory(dir_, 0750); !r) return std::move(r).error().wrap("pit directory");
  auto workers = ipc::WorkerPool::create(server_.loop(), config_.workers);
  if (!workers) return std::move(workers).error().wrap("pit worker pool");
  workers_ = std::move(*workers);

  pit::StoreOptions options;
  options.root = dir_ / "artifacts";
  options.max_batch = config_.max_batch;
  options.max_batch_delay = config_.batch_delay;
  options.gc_grace = config_.gc_grace;
  options.max_artifact_size = config_.max_artifact_size;
  auto store = pit::ArtifactStore::open(options);
  if (!store) return std::move(store).error().wrap("artifact store");
  store_ = std::move(*store);
  auto log = pit::FileDecisionLog::open(dir_ / "decisions.log");
  if (!log) return std::move(log).error().wrap("decision log");
  decisions_ = std::move(*log);
  pit::ResolverOptions resolver_options;
  // Both names were checked against the schema's choices.
  resolver_options.policy = *pit::parse_conflict_policy(config_.conflict_policy);
  resolver_options.merge_fallback = *pit::parse_conflict_policy(config_.conflict_fallback);
  auto resolver = pit::ConflictResolver::create(resolver_options, *decisions_);
  if (!resolver) return std::move(resolver).error().wrap("conflict resolver");
  resolver_ = std::move(*resolver);

  ArtifactServiceOptions service;
  service.max_chunk = config_.max_chunk;
  artifacts_ = std::make_unique<ArtifactService>(server_, *workers_, store_, resolver_.get(), service);
  auto st = store_->stats();
  spdlog::info("artifact store at {}: {} artifacts, {} versions, {} blobs ({} bytes)", options.root.string(),
               st.names, st.versions, st.blobs, st.blob_bytes);
  if (auto r = open_stale(); !r) return r;
  // Workflows the Conductor was running when the daemon stopped resume from
  // their journal; steps that were running are retried or failed per policy.
  pit::ArbiterOptions arbiter_options;
  arbiter_options.on_preempted = [](const pit::Preemption& p) {
    spdlog::info("claim {} on {} preempted (priority {} < {})", p.claim.value, p.resource, p.holder_priority.value,
                 p.preemptor_priority.value);
  };
  arbiter_ = std::make_unique<pit::Arbiter>(arbiter_options);
  claims_ = std::make_unique<ClaimService>(server_, *arbiter_);
  auto pool = PoolService::create(server_, launcher_, config_.pool);
  if (!pool) return std::move(pool).error();
  pool_ = std::move(*pool);
  memo_ = std::make_unique<ArtifactMemoCache>(store_, *workers_);
  pit::dag::TrackerOptions dag_options;
  dag_options.memo = memo_.get();
  // The Conductor flushes after each turn of changes (group commit): a
  // 10 000-step workflow must not cost three fsyncs per step.
  dag_options.durability = pit::dag::Durability::batched;
  auto dag = pit::dag::DagTracker::open(dir_ / "workflows.journal", dag_options);
  if (!dag) return std::move(dag).error().wrap("workflow journal");
  dag_ = std::move(*dag);
  interrupted_at_start_ = dag_->interrupted().size();
  spdlog::info("workflow journal: {} workflows resumed, {} steps that were running when the daemon stopped",
               dag_->workflow_ids().size(), interrupted_at_start_);
  schedule_gc();
  if (config_.stale_interval.count() > 0) schedule_stale(std::chrono::seconds(5));
  return ok();
}

Result<void> PitHost::open_stale() {
  pit::stale::StaleOptions options;
  options.policies = config_.retention;
  options.archive_dir = config_.stale.archive_dir.empty() ? dir_ / "archive"
                                                         : std::filesystem::path(config_.stale.archive_dir);
  if (!config_.stale.remote_dir.empty()) {
    auto remote = pit::stale::open_directory_tier(config_.stale.remote_dir);
    if (!remote) return std::move(remote).error().wrap("remote tier");
    options.remote = std::move(*remote);
    stale_remote_ = config_.stale.remote_dir;
  }
  auto stale = pit::stale::StaleManager::open(*store_, std::move(options));
  if (!stale) return std::move(stale).error().wrap("stale manager");
  stale_ = std::move(*stale);
  // What a crash left behind. Done now, before the daemon listens, so a
  // socket being bound cannot be mistaken for a dead one. The sandbox's
  // cgroups were swept when the launcher opened.
  pit::stale::LeftoverOptions leftovers;
  leftovers.temp_dirs = {stale_->archive_dir()};
  if (!stale_remote_.empty()) leftovers.temp_dirs.push_back(stale_remote_);
  leftovers.temp_min_age = config_.stale.leftover_min_age;
  leftovers.runtime_dir = runtime_dir_;
  auto report = stale_->clean_leftovers(leftovers, pit::stale::DryRun::no);
  if (!report) {
    spdlog::warn("crash leftovers: {}", report.error().message());
  } else {
    for (const auto& l : report->removed) {
      spdlog::info("removed crash leftover {} ({})", l.path.string(), pit::stale::to_string(l.kind));
    }
    for (const auto& e : report->errors) spdlog::warn("crash leftovers: {}", e);
    leftovers_at_start_ = std::move(*report);
  }
  return ok();
}

void PitHost::schedule_stale(std::chrono::nanoseconds delay) {
  stale_timer_ = server_.loop().add_timer(delay, [this] {
    if (stale_running_) return schedule_stale(config_.stale_interval);
    stale_running_ = true;
    std::weak_ptr<int> alive = alive_;
    pit::stale::SliceBudget budget{config_.stale.slice_items, config_.stale.slice_time};
    workers_->submit([this, alive, budget]() -> ipc::Task {
      auto report = stale_->run_slice(budget);
      return [this, alive, report = std::move(report)] {
        if (alive.expired()) return;
        stale_running_ = false;
        if (!report) {
          spdlog::warn("stale manager: {}", report.error().message());
        } else {
          for (const auto& m : report->moved) spdlog::info("stale manager: {}", pit::stale::to_string(m));
          for (const auto& f : report->failed) {
            spdlog::warn("stale manager: {}: {}", pit::stale::to_string(f.move), f.error);
          }
        }
        // More due: the next slice soon, after whatever else the loop has.
        bool more = report && report->more;
        schedule_stale(more ? std::chrono::nanoseconds(std::chrono::milliseconds(10))
                            : std::chrono::nanoseconds(config_.stale_interval));
      };
    });
  });
}

void PitHost::stale_method(const ipc::CallContext& call, ipc::Responder& r) {
  Params p(call);
  if (p.size() > 0 && !p.opt_bool(0)) {
    return r.fail(ipc::rpc::ErrorCode::invalid_params, p.bad(0, "dry_run", "a boolean").message());
  }
  bool dry_run = p.opt_bool(0).value_or(false);
  auto responder = hold(r);
  pit::stale::SliceBudget budget{config_.stale.slice_items, config_.stale.slice_time};
  workers_->submit([stale = stale_.get(), dry_run, budget, responder]() -> ipc::Task {
    auto pack_moves = [](Packer& pk, const std::vector<pit::stale::Move>& moves) {
      pk.pack_array(static_cast<std::uint32_t>(moves.size()));
      for (const auto& m : moves) {
        pk.pack_map(5);
        pk.pack(std::string_view("ref"));
        pk.pack(m.ref.to_string());
        pk.pack(std::string_view("kind"));
        pk.pack(m.kind);
        pk.pack(std::string_view("from"));
        pk.pack(pit::stale::to_string(m.from));
        pk.pack(std::string_view("to"));
        pk.pack(pit::stale::to_string(m.to));
        pk.pack(std::string_view("bytes"));
        pk.pack(m.bytes);
      }
    };
    if (dry_run) {
      auto moves = stale->dry_run(1000);
      return [moves = std::move(moves), responder, pack_moves] {
        if (!moves) return responder->fail(ipc::rpc::ErrorCode::failed, moves.error().message());
        responder->reply_with([&](Packer& pk) {
          pk.pack_map(3);
          pk.pack(std::string_view("dry_run"));
          pk.pack(true);
          pk.pack(std::string_view("moves"));
          pack_moves(pk, *moves);
          pk.pack(std::string_view("failed"));
          pk.pack_array(0);
        });
      };
    }
    auto report = stale->run_slice(budget);
    return [report = std::move(report), responder, pack_moves] {
      if (!report) return responder->fail(ipc::rpc::ErrorCode::failed, report.error().message());
      responder->reply_with([&](Packer& pk) {
        pk.pack_map(5);
        pk.pack(std::string_view("dry_run"));
        pk.pack(false);
        pk.pack(std::string_view("moves"));
        pack_moves(pk, report->moved);
        pk.pack(std::string_view("failed"));
        pk.pack_array(static_cast<std::uint32_t>(report->failed.size()));
        for (const auto& f : report->failed) pk.pack(pit::stale::to_string(f.move) + ": " + f.error);
        pk.pack(std::string_view("skipped"));
        pk.pack(static_cast<std::uint64_t>(report->skipped));
        pk.pack(std::string_view("more"));
        pk.pack(report->more);
      });
    };
  });
}

void PitHost::restore_method(const ipc::CallContext& call, ipc::Responder& r) {
  auto ref = parse_ref(Params(call), 0);
  if (!ref) return r.fail(ipc::rpc::ErrorCode::invalid_params, ref.error().message());
  auto responder = hold(r);
  workers_->submit([stale = stale_.get(), store = store_, ref = std::move(*ref), responder]() -> ipc::Task {
    Result<pit::VersionInfo> v = store->get(ref);
    if (v && v->tier != pit::Tier::active) v = stale->restore({v->name, v->version});
    return [v = std::move(v), responder] {
      if (!v) {
        return responder->fail(v.error().code() == ENOENT ? ipc::rpc::ErrorCode::not_found
                                                           : ipc::rpc::ErrorCode::failed,
                               v.error().message());
      }
      responder->reply_with([&](Packer& pk) { pack_version(pk, *v); });
    };
  });
}

void PitHost::schedule_gc() {
  if (config_.gc_interval.count() == 0) return;
  gc_timer_ = server_.loop().add_timer(config_.gc_interval, [this] {
    if (!gc_running_) {
      gc_running_ = true;
      std::weak_ptr<int> alive = alive_;
      workers_->submit([this, alive, store = store_]() -> ipc::Task {
        auto report = store->gc(false);
        return [this, alive, report = std::move(report)] {
          if (alive.expired()) return;
          gc_running_ = false;
          if (!report) {
            spdlog::warn("artifact gc: {}", report.error().message());
          } else if (report->blobs_removed > 0) {
            spdlog::info("artifact gc: removed {} blobs ({} bytes)", report->blobs_removed, report->bytes_removed);
          }
        };
      });
    }
    schedule_gc();
  });
}

void PitHost::register_methods() {
  artifacts_->register_methods();
  claims_->register_methods();
  pool_->register_methods();
  server_.add_method("pit.stats", [this](const ipc::CallContext&, ipc::Responder& r) {
    r.reply_with([this](Packer& pk) { pack_stats(pk); });
  });
  server_.add_method("pit.stale", [this](const ipc::CallContext& c, ipc::Responder& r) { stale_method(c, r); });
  server_.add_method("artifact.restore",
                     [this](const ipc::CallContext& c, ipc::Responder& r) { restore_method(c, r); });
}

std::string PitHost::summary() const {
  auto st = store_->stats();
  return fmt::format("{} ({} artifacts, {} versions)", dir_.string(), st.names, st.versions);
}

void PitHost::pack_stats(Packer& pk) const {
  auto kv = [&](std::string_view k, auto v) {
    pk.pack(k);
    pk.pack(v);
  };
  pk.pack_map(7);

  pk.pack(std::string_view("pool"));
  pool_->pack_stats(pk);

  auto as = arbiter_->stats();
  pk.pack(std::string_view("arbiter"));
  pk.pack_map(8 + 2 * pit::kResourceKindCount);
  kv("claims_held", as.claims_held);
  kv("requests_queued", as.requests_queued);
  kv("granted_immediately", as.granted_immediately);
  kv("granted_after_wait", as.granted_after_wait);
  kv("preemptions", as.preemptions);
  kv("deadlocks_resolved", as.deadlocks_resolved);
  kv("timeouts", as.timeouts);
  kv("cancellations", as.cancellations);
  for (std::size_t i = 0; i < pit::kResourceKindCount; ++i) {
    std::string kind(pit::to_string(static_cast<pit::ResourceKind>(i)));
    kv("held_" + kind, as.held_by_kind[i]);
    kv("queued_" + kind, as.queued_by_kind[i]);
  }

  std::array<std::uint64_t, pit::dag::kStepStateCount> steps{};
  std::uint64_t running_workflows = 0;
  auto ids = dag_->workflow_ids();
  for (const auto& id : ids) {
    const auto* wf = dag_->workflow(id);
    if (wf == nullptr) continue;
    running_workflows += wf->state() == pit::dag::WorkflowState::running;
    for (std::size_t i = 0; i < wf->size(); ++i) ++steps[static_cast<std::size_t>(wf->state(i))];
  }
  pk.pack(std::string_view("dag"));
  pk.pack_map(4 + pit::dag::kStepStateCount);
  kv("workflows", static_cast<std::uint64_t>(ids.size()));
  kv("workflows_running", running_workflows);
  kv("interrupted_at_start", static_cast<std::uint64_t>(interrupted_at_start_));
  kv("journal", (dir_ / "workflows.journal").string());
  for (int i = 0; i < pit::dag::kStepStateCount; ++i) {
    kv("steps_" + std::string(pit::dag::to_string(static_cast<pit::dag::StepState>(i))), steps[i]);
  }

  auto st = store_->stats();
  auto svc = artifacts_->stats();
  pk.pack(std::string_view("artifacts"));
  pk.pack_map(13);
  kv("names", st.names);
  kv("versions", st.versions);
  kv("blobs", st.blobs);
  kv("blob_bytes", st.blob_bytes);
  kv("puts", st.puts);
  kv("dedup_hits", st.dedup_hits);
  kv("commit_batches", st.commit_batches);
  kv("puts_per_batch",
     st.commit_batches ? static_cast<double>(st.puts) / static_cast<double>(st.commit_batches) : 0.0);
  kv("pinned_versions", st.pinned_versions);
  kv("held_blobs", st.held_blobs);
  kv("uploads_open", svc.uploads_open);
  kv("uploads_expired", svc.uploads_expired);
  kv("worker_queue", static_cast<std::uint64_t>(workers_->queued()));

  auto ss = stale_->stats();
  auto census = stale_->census();
  pk.pack(std::string_view("stale"));
  pk.pack_map(16);
  kv("active_versions", census ? census->active_versions : 0);
  kv("archived_versions", census ? census->archived_versions : 0);
  kv("archived_bytes", census ? census->archived_bytes : 0);
  kv("remote_versions", census ? census->remote_versions : 0);
  kv("remote_bytes", census ? census->remote_bytes : 0);
  kv("remote_tier", stale_remote_.empty() ? std::string("none") : stale_remote_);
  kv("slices", ss.slices);
  kv("archived", ss.archived);
  kv("sent_remote", ss.sent_remote);
  kv("deleted", ss.deleted);
  kv("restored", ss.restored);
  kv("failures", ss.failures);
  kv("races", ss.races);
  kv("leftovers_removed", ss.leftovers_removed);
  kv("leftovers_removed_at_start", static_cast<std::uint64_t>(leftovers_at_start_.removed.size()));
  kv("last_slice_moved", ss.last_slice ? static_cast<std::uint64_t>(ss.last_slice->moved) : 0);

  auto cs = resolver_->stats();
  pk.pack(std::string_view("conflicts"));
  pk.pack_map(kConflictStatKeys);
  for (std::size_t i = 0; i < pit::kConflictPolicyCount; ++i) {
    kv(std::string("resolved_by_") + std::string(pit::to_string(static_cast<pit::ConflictPolicy>(i))),
       cs.resolved_by_policy[i]);
  }
  kv("merge_fallbacks", cs.merge_fallbacks);
  kv("log_failures", cs.log_failures);
  kv("policy", config_.conflict_policy);

  kv("dir", dir_.string());
}

}  // namespace symphony::daemon
