// The Conductor: runs planned workflows. Each run is a workflow in the DAG
// tracker (its state survives in the Pit's journal); the Conductor starts
// ready steps — critical path first, at most `max_parallel` at once over all
// runs, as the Strategy admits — on extensions the ProviderSource names,
// through the StepExecutor (the extension host) on worker threads, stores
// their outputs as artifacts and feeds them to the steps that consume them.
// Failures are classified (crash, hang, timeout, oom, syscall, protocol,
// failed): retried per the step's policy with exponential backoff and
// jitter, rerouted to another provider when there is one, never retried when
// the extension said so; a circuit breaker per extension stops sending steps
// to one that keeps failing. Every change is an Event, kept per run (for
// `workflow logs`) and sent to watchers (for `symphonyctl run`).
//
// Threading: every public method runs on the event loop's thread; step
// execution and artifact I/O run on the Conductor's worker threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conductor/strategy.h"
#include "conductor/workflow_file.h"
#include "ipc/event_loop.h"
#include "ipc/worker_pool.h"
#include "pit/artifacts/artifact_store.h"
#include "pit/dag/dag_tracker.h"
#include "stage/host.h"
#include "stage/manifest.h"

namespace symphony::conductor {

// Who can run a capability.
class ProviderSource {
 public:
  virtual ~ProviderSource() = default;
  // Enabled extensions providing `capability` that `uid` may use, in
  // preference order.
  virtual std::vector<std::shared_ptr<const stage::Manifest>> providers(std::string_view capability,
                                                                       std::uint32_t uid) = 0;
};

// Runs one step attempt; blocking, called on a worker thread.
class StepExecutor {
 public:
  virtual ~StepExecutor() = default;
  virtual stage::StepOutcome execute(const stage::Manifest& provider, const stage::RunAs& as,
                                     const stage::StepCall& call, const stage::StepEvents& events,
                                     const stage::CancelToken& cancel) = 0;
};

// Where inputs come from and outputs go; blocking, called on worker threads.
class ArtifactIo {
 public:
  virtual ~ArtifactIo() = default;
  virtual Result<stage::InputData> read(const pit::ArtifactRef& ref) = 0;
  // Stores an output durably; returns the stored version.
  virtual Result<pit::VersionInfo> write(const stage::StepOutputData& output, const pit::PutOptions& options) = 0;
};

enum class EventKind {
  run_started,
  step_started,
  step_progress,
  step_log,
  step_succeeded,
  step_retrying,
  step_failed,
  step_skipped,
  step_cancelled,
  run_finished,
};
std::string_view to_string(EventKind kind);

struct Event {
  std::uint64_t seq = 0;  // per run, from 1
  std::chrono::system_clock::time_point time;
  EventKind kind = EventKind::run_started;
  std::string run;
  std::string step;
  std::uint32_t attempt = 0;
  std::string provider;  // "id@version"
  std::string message;   // log line, failure, summary
  std::string level;     // step_log
  std::string failure;   // step_retrying/step_failed: the FailureClass or "start"/"input"
  double fraction = 0;   // step_progress
  std::uint64_t delay_ms = 0;  // step_retrying
  std::vector<std::string> outputs;  // step_succeeded/run_finished: artifact refs "name@v"
  std::string state;     // run_finished: succeeded | failed | cancelled
  std::uint32_t done = 0, total = 0;  // steps finished / in all, after this event
};

struct RunOptions {
  std::string source;  // the workflow file's name, for show/ls
  stage::RunAs as;
  std::string submitter;  // "uid 1000 (alice)", for show
};

enum class RunState { running, succeeded, failed, cancelled };
std::string_view to_string(RunState state);

struct StepStatus {
  std::string id;
  std::string capability;
  std::string state;  // the DAG state name
  std::uint32_t attempts = 0;
  std::string provider;
  std::string error;
  std::vector<std::string> outputs;
};

struct RunStatus {
  std::string id;
  std::string workflow;
  std::string source;
  std::string submitter;
  std::string workspace;
  RunState state = RunState::running;
  std::chrono::system_clock::time_point started, finished;
  std::uint32_t done = 0, total = 0;
  std::string error;  // the failure that ended it
  std::vector<StepStatus> steps;
  std::vector<std::string> outputs;  // artifacts of the steps nobody consumes
};

struct ConductorOptions {
  std::uint32_t max_parallel = 8;
  // Circuit breaker: after `breaker_threshold` consecutive infrastructure
  // failures (crash, hang, oom, syscall, protocol, start) an extension gets
  // no steps for `breaker_cooldown`, then one trial step (half-open).
  std::uint32_t breaker_threshold = 5;
  std::chrono::milliseconds breaker_cooldown{30'000};
  std::size_t keep_finished = 200;  // finished runs remembered for show/logs
  std::size_t max_events = 100'000; // per run; older progress events are dropped first
};

struct ConductorStats {
  std::uint64_t runs_started = 0, runs_succeeded = 0, runs_failed = 0, runs_cancelled = 0;
  std::uint64_t steps_started = 0, steps_succeeded = 0, steps_failed = 0, retries = 0, reroutes = 0;
  std::uint64_t breaker_trips = 0;
  std::size_t running_steps = 0;
};

class Conductor {
 public:
  static Result<std::unique_ptr<Conductor>> create(ipc::EventLoop& loop, pit::dag::DagTracker& dag,
                                                   ProviderSource& providers, StepExecutor& executor,
                                                   ArtifactIo& artifacts, std::unique_ptr<Strategy> strategy,
                                                   ConductorOptions options);
  ~Conductor();
  Conductor(const Conductor&) = delete;
  Conductor& operator=(const Conductor&) = delete;

  // Starts a run of `plan`; returns its id. Checks first that every step's
  // capability has a provider the submitter may use (the error names the
  // step, its line and the capability).
  Result<std::string> submit(Plan plan, RunOptions options);
  // Cancels a running run: running steps are told to stop, nothing new starts.
  Result<void> cancel(std::string_view run);

  std::vector<RunStatus> runs() const;  // newest first, without step details
  std::optional<RunStatus> status(std::string_view run) const;
  // The run's events so far (from seq `after` on).
  Result<std::vector<Event>> events(std::string_view run, std::uint64_t after = 0) const;
  // Calls `sink` for each new event of `run` until the run has finished
  // (after its run_finished event) or unwatch(). Returns a handle.
  Result<std::uint64_t> watch(std::string_view run, std::function<void(const Event&)> sink);
  void unwatch(std::uint64_t handle);

  ConductorStats stats() const;
  std::string_view strategy() const { return strategy_->name(); }

 private:
  struct Run;
  struct Attempt;
  struct Breaker;
  Conductor(ipc::EventLoop& loop, pit::dag::DagTracker& dag, ProviderSource& providers, StepExecutor& executor,
            ArtifactIo& artifacts, std::unique_ptr<Strategy> strategy, ConductorOptions options);
  void pump();
  bool start_one(Run& run);
  void finish_attempt(std::shared_ptr<Attempt> attempt, stage::StepOutcome outcome,
                      std::vector<pit::VersionInfo> stored, std::string input_error);
  void emit(Run& run, Event event);
  void check_finished(Run& run);
  void flush_dag();
  Run* find(std::string_view id);
  const Run* find(std::string_view id) const;
  RunStatus status_of(const Run& run, bool with_steps) const;

  ipc::EventLoop& loop_;
  pit::dag::DagTracker& dag_;
  ProviderSource& providers_;
  StepExecutor& executor_;
  ArtifactIo& artifacts_;
  std::unique_ptr<Strategy> strategy_;
  ConductorOptions options_;
  std::unique_ptr<ipc::WorkerPool> workers_;

  std::map<std::string, std::unique_ptr<Run>, std::less<>> runs_;
  std::deque<std::string> finished_order_;
  std::map<std::string, std::unique_ptr<Breaker>, std::less<>> breakers_;
  std::map<std::string, std::uint32_t, std::less<>> in_flight_;  // per extension id
  std::map<std::uint64_t, std::pair<std::string, std::function<void(const Event&)>>> watchers_;
  std::uint64_t next_watch_ = 1;
  std::size_t running_ = 0;
  std::size_t rr_ = 0;  // round-robin position over running runs
  bool pumping_ = false;
  ConductorStats stats_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace symphony::conductor
