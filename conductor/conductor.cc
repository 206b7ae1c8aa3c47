// The Conductor's run loop (conductor.h).
#include "conductor/conductor.h"

#include <algorithm>
#include <random>
#include <set>

#include <fmt/format.h>

#include "base/log.h"

namespace symphony::conductor {
using Clock = std::chrono::steady_clock;
using pit::dag::StepIndex;
using pit::dag::StepState;

std::string_view to_string(EventKind kind) {
  switch (kind) {
    case EventKind::run_started: return "run_started";
    case EventKind::step_started: return "step_started";
    case EventKind::step_progress: return "step_progress";
    case EventKind::step_log: return "step_log";
    case EventKind::step_succeeded: return "step_succeeded";
    case EventKind::step_retrying: return "step_retrying";
    case EventKind::step_failed: return "step_failed";
    case EventKind::step_skipped: return "step_skipped";
    case EventKind::step_cancelled: return "step_cancelled";
    case EventKind::run_finished: return "run_finished";
  }
  return "?";
}

std::string_view to_string(RunState state) {
  switch (state) {
    case RunState::running: return "running";
    case RunState::succeeded: return "succeeded";
    case RunState::failed: return "failed";
    case RunState::cancelled: return "cancelled";
  }
  return "?";
}

namespace {

// The retry class of an instance failure; `start` (no instance could be had)
// counts as a crash.
FailureClass failure_class(stage::FailureKind kind) {
  switch (kind) {
    case stage::FailureKind::crash:
    case stage::FailureKind::start: return FailureClass::crash;
    case stage::FailureKind::hang: return FailureClass::hang;
    case stage::FailureKind::timeout: return FailureClass::timeout;
    case stage::FailureKind::oom: return FailureClass::oom;
    case stage::FailureKind::syscall: return FailureClass::syscall;
    case stage::FailureKind::protocol: return FailureClass::protocol;
    case stage::FailureKind::failed:
    case stage::FailureKind::cancelled: return FailureClass::failed;
  }
  return FailureClass::failed;
}

// Failures that say something about the extension rather than the step's
// input: these count towards the circuit breaker.
bool infrastructure(stage::FailureKind kind) {
  return kind != stage::FailureKind::failed && kind != stage::FailureKind::cancelled &&
         kind != stage::FailureKind::timeout;
}

// Artifact names allow [A-Za-z0-9._/-]: "analyze[2]" becomes "analyze.2".
std::string artifact_segment(std::string_view step) {
  std::string out;
  for (char c : step) {
    if (c == '[') out += '.';
    else if (c != ']') out += c;
  }
  return out;
}

std::string label(const stage::Manifest& m) { return fmt::format("{}@{}", m.id, to_string(m.version)); }

std::string new_run_id() {
  static std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("run-{:012x}", rng() & 0xffffffffffffull);
}

}  // namespace

struct Conductor::Breaker {
  std::uint32_t consecutive = 0;
  std::optional<Clock::time_point> open_until;
  bool trial_in_flight = false;

  // Whether a step may go to this extension now; a half-open breaker lets
  // one trial through.
  bool refuses(Clock::time_point now) const {
    if (!open_until) return false;
    if (now < *open_until) return true;
    return trial_in_flight;
  }
};

struct Conductor::Attempt {
  std::string run;
  StepIndex step = 0;
  std::uint32_t attempt = 1;
  std::shared_ptr<const stage::Manifest> provider;
  stage::CancelToken cancel;
  bool trial = false;  // a half-open breaker's trial step
};

struct Conductor::Run {
  std::string id;
  Plan plan;
  RunOptions options;
  pit::dag::Workflow* wf = nullptr;  // null once finished and removed from the tracker
  StepIndex first = 0;
  RunState state = RunState::running;
  std::chrono::system_clock::time_point started, finished;
  std::string error;
  std::map<StepIndex, std::shared_ptr<Attempt>> active;
  std::vector<std::set<std::string>> failed_on;  // per step: extension ids an attempt failed on
  std::vector<std::string> provider;             // per step: the last provider
  std::vector<bool> consumed;                    // per step: another step uses its outputs
  std::vector<Event> events;
  std::uint64_t seq = 0;
  std::uint32_t done = 0;
  std::vector<StepStatus> final_steps;
  std::vector<std::string> outputs;
};

Conductor::Conductor(ipc::EventLoop& loop, pit::dag::DagTracker& dag, ProviderSource& providers,
                     StepExecutor& executor, ArtifactIo& artifacts, std::unique_ptr<Strategy> strategy,
                     ConductorOptions options)
    : loop_(loop),
      dag_(dag),
      providers_(providers),
      executor_(executor),
      artifacts_(artifacts),
      strategy_(std::move(strategy)),
      options_(options) {}

Result<std::unique_ptr<Conductor>> Conductor::create(ipc::EventLoop& loop, pit::dag::DagTracker& dag,
                                                     ProviderSource& providers, StepExecutor& executor,
                                                     ArtifactIo& artifacts, std::unique_ptr<Strategy> strategy,
                                                     ConductorOptions options) {
  if (options.max_parallel == 0) return Error::invalid("conductor: max_parallel must be at least 1");
  std::unique_ptr<Conductor> c(new Conductor(loop, dag, providers, executor, artifacts, std::move(strategy), options));
  auto workers = ipc::WorkerPool::create(loop, options.max_parallel);
  if (!workers) return std::move(workers).error().wrap("conductor workers");
  c->workers_ = std::move(*workers);
  // Runs the journal brought back from before a restart cannot be resumed:
  // their plans lived in the daemon that died. They end as failed.
  for (const auto& id : dag.workflow_ids()) {
    if (id.rfind("run-", 0) != 0) continue;
    pit::dag::Workflow* wf = dag.workflow(id);
    auto run = std::make_unique<Run>();
    run->id = id;
    run->plan.name = "(unknown)";
    run->state = wf && wf->state() == pit::dag::WorkflowState::succeeded ? RunState::succeeded : RunState::failed;
    run->error = run->state == RunState::failed ? "interrupted by a daemon restart" : "";
    run->started = run->finished = std::chrono::system_clock::now();
    if (wf && wf->state() == pit::dag::WorkflowState::running) (void)wf->cancel();
    (void)dag.remove_workflow(id);
    c->finished_order_.push_back(id);
    c->runs_[id] = std::move(run);
    spdlog::warn("conductor: run {} was interrupted by a daemon restart; marked failed", id);
  }
  c->flush_dag();
  return c;
}

Conductor::~Conductor() {
  for (auto& [id, run] : runs_) {
    for (auto& [step, attempt] : run->active) attempt->cancel.cancel();
  }
  workers_.reset();  // joins the threads; undelivered completions are dropped
}

Conductor::Run* Conductor::find(std::string_view id) {
  auto it = runs_.find(id);
  return it == runs_.end() ? nullptr : it->second.get();
}

const Conductor::Run* Conductor::find(std::string_view id) const {
  auto it = runs_.find(id);
  return it == runs_.end() ? nullptr : it->second.get();
}

void Conductor::flush_dag() {
  if (auto r = dag_.flush(); !r) spdlog::error("conductor: workflow journal: {}", r.error().message());
}

Result<std::string> Conductor::submit(Plan plan, RunOptions options) {
  if (plan.steps.empty()) return Error::invalid(fmt::format("{}: the workflow has no steps", options.source));
  const std::uint32_t uid = options.as.uid.value_or(0);
  // A fan-out repeats one capability thousands of times: check each
  // (capability, pin) once.
  std::set<std::string> checked;
  for (const auto& step : plan.steps) {
    if (!checked.insert(step.capability + '\n' + step.extension + '\n' +
                        (step.extension_range ? step.extension_range->text() : std::string()))
             .second) {
      continue;
    }
    auto found = providers_.providers(step.capability, uid);
    std::erase_if(found, [&](const auto& m) {
      return (!step.extension.empty() && m->id != step.extension) ||
             (step.extension_range && !step.extension_range->contains(m->version));
    });
    if (found.empty()) {
      std::string pin = step.extension.empty() ? std::string()
                                               : fmt::format(" from {}{}", step.extension,
                                                             step.extension_range ? " " + step.extension_range->text() : "");
      return Error::described(ENOENT, fmt::format("{}:{}: step '{}': no enabled extension provides capability '{}'{} "
                                                  "(see symphonyctl ext ls)",
                                                  options.source, step.line, step.id, step.capability, pin));
    }
  }
  std::string id = new_run_id();
  while (runs_.count(id) || dag_.workflow(id)) id = new_run_id();
  auto wf = dag_.create_workflow(id, plan.failure);
  if (!wf) return std::move(wf).error();
  auto first = (*wf)->add_steps(dag_specs(plan));
  if (!first) {
    (void)dag_.remove_workflow(id);
    return std::move(first).error().wrap(options.source);
  }
  auto run = std::make_unique<Run>();
  run->id = id;
  run->wf = *wf;
  run->first = *first;
  run->started = std::chrono::system_clock::now();
  const std::size_t n = plan.steps.size();
  run->failed_on.resize(n);
  run->provider.resize(n);
  run->consumed.assign(n, false);
  for (const auto& step : plan.steps) {
    for (const auto& in : step.inputs) {
      for (const auto& from : in.from_steps) {
        if (auto idx = run->wf->find(from)) run->consumed[*idx - run->first] = true;
      }
    }
  }
  run->plan = std::move(plan);
  run->options = std::move(options);
  Run& r = *run;
  runs_[id] = std::move(run);
  ++stats_.runs_started;
  Event e;
  e.kind = EventKind::run_started;
  e.message = fmt::format("{} ({} steps) from {}", r.plan.name, n, r.options.source);
  emit(r, std::move(e));
  flush_dag();
  pump();
  check_finished(r);  // a plan whose steps were all memoized or skipped
  return id;
}

Result<void> Conductor::cancel(std::string_view id) {
  Run* run = find(id);
  if (run == nullptr) return Error::described(ENOENT, fmt::format("no run '{}'", id));
  if (run->state != RunState::running || run->wf == nullptr) {
    return Error::invalid(fmt::format("run {} has already {}", id, to_string(run->state)));
  }
  auto running = run->wf->cancel();
  if (!running) return std::move(running).error();
  for (StepIndex s : *running) {
    auto it = run->active.find(s);
    if (it != run->active.end()) it->second->cancel.cancel();
    Event e;
    e.kind = EventKind::step_cancelled;
    e.step = run->wf->spec(s).id;
    e.message = "cancelled";
    emit(*run, std::move(e));
  }
  flush_dag();
  check_finished(*run);
  return ok();
}

void Conductor::pump() {
  if (pumping_) return;
  pumping_ = true;
  for (;;) {
    std::size_t ready = 0;
    std::vector<Run*> live;
    for (auto& [id, run] : runs_) {
      if (run->state == RunState::running && run->wf && run->wf->ready_count() > 0) {
        live.push_back(run.get());
        ready += run->wf->ready_count();
      }
    }
    if (live.empty()) break;
    std::size_t n = strategy_->admit(running_, ready, options_.max_parallel);
    if (n == 0) break;
    bool started = false;
    for (std::size_t i = 0; i < n && !live.empty(); ++i) {
      Run* run = live[rr_++ % live.size()];
      if (run->wf && run->wf->ready_count() > 0 && start_one(*run)) started = true;
      std::erase_if(live, [](Run* r) { return !r->wf || r->wf->ready_count() == 0 || r->state != RunState::running; });
    }
    if (!started) break;
  }
  pumping_ = false;
  flush_dag();
}

bool Conductor::start_one(Run& run) {
  auto next = run.wf->peek_ready();
  if (!next) return false;
  const StepIndex idx = *next;
  const PlannedStep& ps = run.plan.steps[idx - run.first];
  if (auto r = run.wf->start(idx); !r) {
    spdlog::error("conductor: run {}: cannot start step {}: {}", run.id, ps.id, r.error().message());
    return false;
  }
  ++stats_.steps_started;
  auto attempt = std::make_shared<Attempt>();
  attempt->run = run.id;
  attempt->step = idx;
  attempt->attempt = run.wf->attempts(idx);
  run.active[idx] = attempt;
  ++running_;

  auto fail_now = [&](stage::FailureKind kind, std::string message, bool retryable) {
    // Decided before any worker ran: report through the same path.
    loop_.defer([this, attempt, kind, message = std::move(message), retryable, alive = std::weak_ptr<int>(alive_)] {
      if (alive.expired()) return;
      finish_attempt(attempt, stage::StepFailure{kind, message, retryable}, {}, {});
    });
    return true;
  };

  // Providers: the registry's, narrowed by the step's pin, ordered by the
  // strategy over what the breakers and earlier attempts say.
  auto found = providers_.providers(ps.capability, run.options.as.uid.value_or(0));
  std::erase_if(found, [&](const auto& m) {
    return (!ps.extension.empty() && m->id != ps.extension) ||
           (ps.extension_range && !ps.extension_range->contains(m->version));
  });
  if (found.empty()) {
    return fail_now(stage::FailureKind::start,
                    fmt::format("no enabled extension provides capability '{}' any more", ps.capability), true);
  }
  const auto now = Clock::now();
  std::vector<CandidateView> views;
  for (const auto& m : found) {
    CandidateView v;
    v.extension = m->id;
    v.version = to_string(m->version);
    if (auto b = breakers_.find(m->id); b != breakers_.end()) {
      v.breaker_open = b->second->refuses(now);
      v.recent_failures = b->second->consecutive;
    }
    if (auto f = in_flight_.find(m->id); f != in_flight_.end()) v.in_flight = f->second;
    v.failed_this_step = run.failed_on[idx - run.first].count(m->id) > 0;
    views.push_back(std::move(v));
  }
  StepView sv{run.id, ps.id, ps.capability, run.wf->critical_path(idx), attempt->attempt};
  std::size_t choice = std::min(strategy_->choose_provider(sv, views), views.size() - 1);
  if (views[choice].breaker_open) {
    auto b = breakers_.find(views[choice].extension);
    auto left = std::chrono::ceil<std::chrono::seconds>(*b->second->open_until - now).count();
    return fail_now(stage::FailureKind::start,
                    fmt::format("circuit breaker open for {} after {} consecutive failures ({} s left); no other "
                                "provider of '{}'",
                                views[choice].extension, b->second->consecutive, std::max<std::int64_t>(left, 0),
                                ps.capability),
                    true);
  }
  if (attempt->attempt > 1 && !run.provider[idx - run.first].empty() &&
      run.provider[idx - run.first].rfind(views[choice].extension + "@", 0) != 0) {
    ++stats_.reroutes;
  }
  attempt->provider = found[choice];
  auto& breaker = breakers_[attempt->provider->id];
  if (!breaker) breaker = std::make_unique<Breaker>();
  if (breaker->open_until && now >= *breaker->open_until) {
    breaker->trial_in_flight = true;
    attempt->trial = true;
  }
  ++in_flight_[attempt->provider->id];
  run.provider[idx - run.first] = label(*attempt->provider);

  Event e;
  e.kind = EventKind::step_started;
  e.step = ps.id;
  e.attempt = attempt->attempt;
  e.provider = label(*attempt->provider);
  emit(run, std::move(e));

  // Parameters against the provider's schema (defaults filled in).
  const stage::Capability* cap = attempt->provider->find_capability(ps.capability);
  if (cap == nullptr) {
    return fail_now(stage::FailureKind::start,
                    fmt::format("{} does not provide '{}'", label(*attempt->provider), ps.capability), false);
  }
  std::vector<std::string> input_names;
  for (const auto& in : ps.inputs) input_names.push_back(in.name);
  auto params = stage::check_params(*cap, ps.params, input_names);
  if (!params) {
    return fail_now(stage::FailureKind::failed,
                    fmt::format("{}:{}: step '{}': {}", run.options.source, ps.line, ps.id, params.error().message()),
                    false);
  }

  // Inputs: the artifacts upstream steps stored, or named ones.
  struct InputPlan {
    std::string name;
    bool fan_out = false;
    std::vector<pit::ArtifactRef> refs;
  };
  std::vector<InputPlan> inputs;
  for (const auto& in : ps.inputs) {
    InputPlan ip;
    ip.name = in.name;
    if (in.ref.kind == InputRef::Kind::artifact) {
      ip.refs.push_back({in.ref.artifact, in.ref.version.value_or(0)});
    } else {
      ip.fan_out = in.from_steps.size() != 1 || in.from_steps.front() != in.ref.step;
      for (const auto& from : in.from_steps) {
        auto src = run.wf->find(from);
        const pit::dag::OutputRef* hit = nullptr;
        std::string produced;
        if (src) {
          for (const auto& o : run.wf->outputs(*src)) {
            std::string_view leaf = std::string_view(o.name).substr(o.name.rfind('/') + 1);
            if (leaf == in.ref.output) hit = &o;
            produced += (produced.empty() ? "" : ", ") + std::string(leaf);
          }
        }
        if (hit == nullptr) {
          return fail_now(stage::FailureKind::failed,
                          fmt::format("{}:{}: step '{}': input '{}': step '{}' produced no output '{}' (it produced: {})",
                                      run.options.source, ps.line, ps.id, in.name, from, in.ref.output,
                                      produced.empty() ? "none" : produced),
                          false);
        }
        ip.refs.push_back({hit->name, hit->version});
      }
    }
    inputs.push_back(std::move(ip));
  }

  stage::StepCall call;
  call.step = fmt::format("{}/{}#{}", run.id, ps.id, attempt->attempt);
  call.capability = ps.capability;
  call.params = std::move(*params);
  call.workspace = run.options.as.workspace.string();
  call.timeout = ps.timeout ? ps.timeout : attempt->provider->limits.timeout;
  const stage::RunAs as = run.options.as;
  const std::string prefix = fmt::format("run/{}/{}/", run.id, artifact_segment(ps.id));
  const std::string step_id = ps.id;
  std::weak_ptr<int> alive = alive_;

  workers_->submit([this, attempt, call = std::move(call), inputs = std::move(inputs), as, prefix, step_id,
                    alive]() mutable -> ipc::Task {
    std::vector<pit::ArtifactRef> lineage;
    for (const auto& ip : inputs) {
      stage::StepInput si;
      si.name = ip.name;
      si.fan_out = ip.fan_out;
      for (const auto& ref : ip.refs) {
        auto data = artifacts_.read(ref);
        if (!data) {
          std::string why = fmt::format("input '{}': {}", ip.name, data.error().message());
          return [this, attempt, why, alive] {
            if (!alive.expired()) finish_attempt(attempt, stage::StepFailure{stage::FailureKind::failed, why, false}, {}, {});
          };
        }
        lineage.push_back({ref.name, ref.version});
        si.items.push_back(std::move(*data));
      }
      call.inputs.push_back(std::move(si));
    }
    stage::StepEvents events;
    const std::string run_id = attempt->run;
    events.progress = [this, run_id, step_id, alive](double fraction, std::string_view message) {
      workers_->post([this, run_id, step_id, fraction, message = std::string(message), alive] {
        if (alive.expired()) return;
        if (Run* r = find(run_id)) {
          Event e;
          e.kind = EventKind::step_progress;
          e.step = step_id;
          e.fraction = fraction;
          e.message = message;
          emit(*r, std::move(e));
        }
      });
    };
    events.log = [this, run_id, step_id, alive](std::string_view level, std::string_view message) {
      workers_->post([this, run_id, step_id, level = std::string(level), message = std::string(message), alive] {
        if (alive.expired()) return;
        if (Run* r = find(run_id)) {
          Event e;
          e.kind = EventKind::step_log;
          e.step = step_id;
          e.level = level;
          e.message = message;
          emit(*r, std::move(e));
        }
      });
    };
    stage::StepOutcome outcome = executor_.execute(*attempt->provider, as, call, events, attempt->cancel);
    std::vector<pit::VersionInfo> stored;
    if (auto* result = std::get_if<stage::StepResult>(&outcome)) {
      for (const auto& o : result->outputs) {
        pit::PutOptions put;
        put.name = prefix + o.name;
        put.media_type = o.media_type;
        put.kind = "run-output";
        put.producer = {attempt->run, step_id, label(*attempt->provider)};
        put.inputs = lineage;
        auto v = artifacts_.write(o, put);
        if (!v) {
          outcome = stage::StepFailure{stage::FailureKind::failed,
                                       fmt::format("storing output '{}': {}", o.name, v.error().message()), true};
          stored.clear();
          break;
        }
        stored.push_back(std::move(*v));
      }
    }
    return [this, attempt, outcome = std::move(outcome), stored = std::move(stored), alive]() mutable {
      if (!alive.expired()) finish_attempt(attempt, std::move(outcome), std::move(stored), {});
    };
  });
  return true;
}

void Conductor::finish_attempt(std::shared_ptr<Attempt> attempt, stage::StepOutcome outcome,
                               std::vector<pit::VersionInfo> stored, std::string) {
  --running_;
  if (attempt->provider) {
    auto f = in_flight_.find(attempt->provider->id);
    if (f != in_flight_.end() && f->second > 0) --f->second;
  }
  Run* run = find(attempt->run);
  if (run == nullptr) {
    pump();
    return;
  }
  run->active.erase(attempt->step);
  const std::string provider_id = attempt->provider ? attempt->provider->id : std::string();
  Breaker* breaker = nullptr;
  if (!provider_id.empty()) {
    auto& b = breakers_[provider_id];
    if (!b) b = std::make_unique<Breaker>();
    breaker = b.get();
    if (attempt->trial) breaker->trial_in_flight = false;
  }
  if (run->wf == nullptr || run->wf->state(attempt->step) != StepState::running) {
    // Cancelled (or the run ended) while it ran: the outcome no longer matters.
    pump();
    return;
  }
  const StepIndex idx = attempt->step;
  const PlannedStep& ps = run->plan.steps[idx - run->first];
  if (auto* result = std::get_if<stage::StepResult>(&outcome)) {
    if (breaker) {
      breaker->consecutive = 0;
      breaker->open_until.reset();
    }
    std::vector<pit::dag::OutputRef> outs;
    Event e;
    e.kind = EventKind::step_succeeded;
    e.step = ps.id;
    e.attempt = attempt->attempt;
    e.provider = run->provider[idx - run->first];
    for (const auto& v : stored) {
      outs.push_back({v.name, v.version, v.digest});
      e.outputs.push_back(fmt::format("{}@{}", v.name, v.version));
    }
    if (!result->summary.is_null()) {
      e.message = result->summary.dump();
      if (e.message.size() > 2000) e.message = e.message.substr(0, 2000) + "…";
    }
    if (auto r = run->wf->succeed(idx, std::move(outs)); !r) {
      spdlog::error("conductor: run {}: step {}: {}", run->id, ps.id, r.error().message());
    }
    ++stats_.steps_succeeded;
    ++run->done;
    emit(*run, std::move(e));
  } else {
    auto& f = std::get<stage::StepFailure>(outcome);
    FailureClass cls = failure_class(f.kind);
    if (breaker && infrastructure(f.kind)) {
      ++breaker->consecutive;
      if (breaker->consecutive >= options_.breaker_threshold &&
          (!breaker->open_until || Clock::now() >= *breaker->open_until)) {
        breaker->open_until = Clock::now() + options_.breaker_cooldown;
        ++stats_.breaker_trips;
        spdlog::warn("conductor: circuit breaker open for {} after {} consecutive failures (last: {})", provider_id,
                     breaker->consecutive, f.message);
      }
    } else if (breaker && f.kind == stage::FailureKind::failed) {
      breaker->consecutive = 0;  // it answered: the extension itself works
    }
    if (!provider_id.empty()) run->failed_on[idx - run->first].insert(provider_id);
    const bool retry = f.retryable && f.kind != stage::FailureKind::cancelled && ps.retry.retries(cls);
    std::string kind_name = f.kind == stage::FailureKind::start ? "start" : std::string(to_string(cls));
    auto fo = run->wf->fail(idx, f.message, !retry);
    if (!fo) {
      spdlog::error("conductor: run {}: step {}: {}", run->id, ps.id, fo.error().message());
    } else if (fo->state == StepState::retrying) {
      ++stats_.retries;
      auto delay = strategy_->backoff(ps.retry, attempt->attempt, cls);
      Event e;
      e.kind = EventKind::step_retrying;
      e.step = ps.id;
      e.attempt = attempt->attempt;
      e.provider = run->provider[idx - run->first];
      e.failure = kind_name;
      e.message = f.message;
      e.delay_ms = static_cast<std::uint64_t>(delay.count());
      emit(*run, std::move(e));
      std::string run_id = run->id;
      std::weak_ptr<int> alive = alive_;
      loop_.add_timer(delay, [this, run_id, idx, alive] {
        if (alive.expired()) return;
        Run* r = find(run_id);
        if (r == nullptr || r->wf == nullptr || r->wf->state(idx) != StepState::retrying) return;
        if (auto rr = r->wf->retry(idx); !rr) spdlog::error("conductor: retry: {}", rr.error().message());
        pump();
      });
    } else {
      ++stats_.steps_failed;
      ++run->done;
      Event e;
      e.kind = EventKind::step_failed;
      e.step = ps.id;
      e.attempt = attempt->attempt;
      e.provider = run->provider[idx - run->first];
      e.failure = kind_name;
      e.message = f.message;
      if (run->error.empty()) {
        run->error = fmt::format("step '{}' failed after {} attempt{}: {}", ps.id, attempt->attempt,
                                 attempt->attempt == 1 ? "" : "s", f.message);
      }
      emit(*run, std::move(e));
      for (StepIndex s : fo->cancelled_running) {
        auto it = run->active.find(s);
        if (it != run->active.end()) it->second->cancel.cancel();
      }
    }
  }
  check_finished(*run);
  pump();
}

void Conductor::emit(Run& run, Event event) {
  event.seq = ++run.seq;
  event.time = std::chrono::system_clock::now();
  event.run = run.id;
  event.done = run.done;
  event.total = static_cast<std::uint32_t>(run.plan.steps.size());
  if (run.events.size() >= options_.max_events) {
    // Keep the record of what happened; drop the oldest progress ticks.
    auto it = std::find_if(run.events.begin(), run.events.end(),
                           [](const Event& e) { return e.kind == EventKind::step_progress; });
    run.events.erase(it == run.events.end() ? run.events.begin() : it);
  }
  run.events.push_back(event);
  const bool last = event.kind == EventKind::run_finished;
  std::vector<std::uint64_t> done;
  // A sink may unwatch (or watch) while we iterate: copy the handles first.
  std::vector<std::uint64_t> handles;
  for (const auto& [h, w] : watchers_) {
    if (w.first == run.id) handles.push_back(h);
  }
  for (auto h : handles) {
    auto it = watchers_.find(h);
    if (it == watchers_.end()) continue;
    auto sink = it->second.second;
    sink(event);
    if (last) watchers_.erase(h);
  }
}

void Conductor::check_finished(Run& run) {
  if (run.state != RunState::running || run.wf == nullptr) return;
  auto ws = run.wf->state();
  if (ws == pit::dag::WorkflowState::running) return;
  run.state = ws == pit::dag::WorkflowState::succeeded ? RunState::succeeded
              : ws == pit::dag::WorkflowState::cancelled ? RunState::cancelled
                                                         : RunState::failed;
  run.finished = std::chrono::system_clock::now();
  run.final_steps = status_of(run, true).steps;
  for (std::size_t i = 0; i < run.plan.steps.size(); ++i) {
    const StepIndex idx = run.first + static_cast<StepIndex>(i);
    if (run.wf->state(idx) == StepState::skipped) {
      Event e;
      e.kind = EventKind::step_skipped;
      e.step = run.plan.steps[i].id;
      e.message = std::string(pit::dag::to_string(run.wf->skip_reason(idx)));
      emit(run, std::move(e));
    }
    if (run.consumed[i]) continue;
    for (const auto& o : run.wf->outputs(idx)) run.outputs.push_back(fmt::format("{}@{}", o.name, o.version));
  }
  switch (run.state) {
    case RunState::succeeded: ++stats_.runs_succeeded; break;
    case RunState::failed: ++stats_.runs_failed; break;
    case RunState::cancelled: ++stats_.runs_cancelled; break;
    case RunState::running: break;
  }
  if (run.state == RunState::cancelled && run.error.empty()) run.error = "cancelled";
  run.wf = nullptr;
  if (auto r = dag_.remove_workflow(run.id); !r) spdlog::error("conductor: {}", r.error().message());
  Event e;
  e.kind = EventKind::run_finished;
  e.state = std::string(to_string(run.state));
  e.message = run.error;
  e.outputs = run.outputs;
  emit(run, std::move(e));
  finished_order_.push_back(run.id);
  while (finished_order_.size() > options_.keep_finished) {
    Run* old = find(finished_order_.front());
    if (old && !old->active.empty()) break;  // its workers still report back
    runs_.erase(finished_order_.front());
    finished_order_.pop_front();
  }
  flush_dag();
}

RunStatus Conductor::status_of(const Run& run, bool with_steps) const {
  RunStatus s;
  s.id = run.id;
  s.workflow = run.plan.name;
  s.source = run.options.source;
  s.submitter = run.options.submitter;
  s.workspace = run.options.as.workspace.string();
  s.state = run.state;
  s.started = run.started;
  s.finished = run.finished;
  s.done = run.done;
  s.total = static_cast<std::uint32_t>(run.plan.steps.size());
  s.error = run.error;
  s.outputs = run.outputs;
  if (!with_steps) return s;
  if (run.wf == nullptr) {
    s.steps = run.final_steps;
    return s;
  }
  for (std::size_t i = 0; i < run.plan.steps.size(); ++i) {
    const StepIndex idx = run.first + static_cast<StepIndex>(i);
    StepStatus st;
    st.id = run.plan.steps[i].id;
    st.capability = run.plan.steps[i].capability;
    st.state = std::string(pit::dag::to_string(run.wf->state(idx)));
    st.attempts = run.wf->attempts(idx);
    st.provider = run.provider[i];
    st.error = run.wf->last_error(idx);
    for (const auto& o : run.wf->outputs(idx)) st.outputs.push_back(fmt::format("{}@{}", o.name, o.version));
    s.steps.push_back(std::move(st));
  }
  return s;
}

std::vector<RunStatus> Conductor::runs() const {
  std::vector<RunStatus> out;
  for (const auto& [id, run] : runs_) out.push_back(status_of(*run, false));
  std::sort(out.begin(), out.end(), [](const RunStatus& a, const RunStatus& b) { return a.started > b.started; });
  return out;
}

std::optional<RunStatus> Conductor::status(std::string_view id) const {
  const Run* run = find(id);
  if (run == nullptr) return std::nullopt;
  return status_of(*run, true);
}

Result<std::vector<Event>> Conductor::events(std::string_view id, std::uint64_t after) const {
  const Run* run = find(id);
  if (run == nullptr) return Error::described(ENOENT, fmt::format("no run '{}'", id));
  std::vector<Event> out;
  for (const auto& e : run->events) {
    if (e.seq > after) out.push_back(e);
  }
  return out;
}

Result<std::uint64_t> Conductor::watch(std::string_view id, std::function<void(const Event&)> sink) {
  const Run* run = find(id);
  if (run == nullptr) return Error::described(ENOENT, fmt::format("no run '{}'", id));
  std::uint64_t h = next_watch_++;
  watchers_[h] = {std::string(id), std::move(sink)};
  return h;
}

void Conductor::unwatch(std::uint64_t handle) { watchers_.erase(handle); }

ConductorStats Conductor::stats() const {
  ConductorStats s = stats_;
  s.running_steps = running_;
  return s;
}

}  // namespace symphony::conductor
