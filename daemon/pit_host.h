// The Pit inside symphonyd: opens every component under pit.dir at start
// (recovering what a crash left: the artifact store's temporary files,
// journaled workflows), registers their RPC methods, runs their periodic
// work (gc, stale slices, health checks) on the event loop's timers, and
// answers pit.stats. Blocking work goes to a worker pool; nothing here waits
// on the disk on the loop's thread.
#pragma once

#include <filesystem>
#include <memory>

#include "daemon/artifact_service.h"
#include "daemon/daemon_config.h"
#include "ipc/rpc_server.h"
#include "ipc/worker_pool.h"
#include "pit/arbiter/conflict_resolver.h"
#include "pit/arbiter/decision_log.h"
#include "pit/artifacts/artifact_store.h"
#include "daemon/artifact_memo_cache.h"
#include "daemon/claim_service.h"
#include "daemon/pool_service.h"
#include "pit/arbiter/arbiter.h"
#include "pit/dag/dag_tracker.h"
#include "pit/stale/stale_manager.h"

namespace symphony::daemon {

class PitHost {
 public:
  // Opens the Pit under `dir` (created if missing). Errors name the
  // component and the path.
  // `runtime_dir` is where the daemon's socket lives: stale sockets a crash
  // left there are removed at start.
  static Result<std::unique_ptr<PitHost>> open(ipc::Server& server, const PitConfig& config,
                                               const std::filesystem::path& dir,
                                               const std::filesystem::path& runtime_dir,
                                               sandbox::Launcher* launcher);
  ~PitHost();
  PitHost(const PitHost&) = delete;
  PitHost& operator=(const PitHost&) = delete;

  void register_methods();
  pit::ArtifactStore& store() { return *store_; }
  // Workflows (the Conductor's runs) live here; journaled in batches, made
  // durable by flush() once per event-loop turn.
  pit::dag::DagTracker& dag() { return *dag_; }
  // One line for the daemon's status: where the Pit lives and what it holds.
  std::string summary() const;

 private:
  PitHost(ipc::Server& server, PitConfig config, std::filesystem::path dir, std::filesystem::path runtime_dir);
  Result<void> open_stale();
  void schedule_stale(std::chrono::nanoseconds delay);
  void stale_method(const ipc::CallContext& call, ipc::Responder& r);
  void restore_method(const ipc::CallContext& call, ipc::Responder& r);
  Result<void> start();
  void pack_stats(ipc::rpc::Packer& pk) const;
  void schedule_gc();

  ipc::Server& server_;
  PitConfig config_;
  std::filesystem::path dir_;
  std::filesystem::path runtime_dir_;
  std::unique_ptr<ipc::WorkerPool> workers_;
  std::shared_ptr<pit::ArtifactStore> store_;
  std::unique_ptr<pit::FileDecisionLog> decisions_;
  std::unique_ptr<pit::ConflictResolver> resolver_;
  std::unique_ptr<ArtifactService> artifacts_;
  std::unique_ptr<pit::stale::StaleManager> stale_;
  std::unique_ptr<ArtifactMemoCache> memo_;
  std::unique_ptr<pit::dag::DagTracker> dag_;
  std::unique_ptr<pit::Arbiter> arbiter_;
  std::unique_ptr<ClaimService> claims_;
  std::unique_ptr<PoolService> pool_;
  sandbox::Launcher* launcher_ = nullptr;
  std::size_t interrupted_at_start_ = 0;
  std::string stale_remote_;  // the remote tier's directory, "" when there is none
  pit::stale::LeftoverReport leftovers_at_start_;
  ipc::TimerId stale_timer_;
  bool stale_running_ = false;
  ipc::TimerId gc_timer_;
  bool gc_running_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace symphony::daemon
