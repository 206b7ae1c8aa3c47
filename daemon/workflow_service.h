// Workflows in the daemon: the extension host (pooled sandboxed instances),
// the Conductor that runs submitted workflows on it, and their RPC methods —
// workflow.submit, workflow.watch (events streamed as workflow.event
// notifications until the run ends), workflow.ls, workflow.show,
// workflow.cancel, workflow.logs. Providers come from the extension
// registry; outputs go to the Pit's artifact store; run state lives in the
// DAG tracker. A registry change to an extension retires its other
// versions' instances (hot swap) and prunes their files once drained.
#pragma once

#include <memory>
#include <set>
#include <string>

#include "conductor/conductor.h"
#include "daemon/daemon_config.h"
#include "ipc/rpc_server.h"
#include "ipc/worker_pool.h"
#include "pit/artifacts/artifact_store.h"
#include "pit/dag/dag_tracker.h"
#include "sandbox/launcher.h"
#include "stage/host.h"
#include "stage/registry.h"

namespace symphony::daemon {

class WorkflowService {
 public:
  static Result<std::unique_ptr<WorkflowService>> create(ipc::Server& server, sandbox::Launcher* launcher,
                                                         stage::Registry& registry, pit::ArtifactStore& store,
                                                         pit::dag::DagTracker& dag, const StageConfig& config,
                                                         const ipc::rpc::DecodeLimits& limits);
  ~WorkflowService();
  WorkflowService(const WorkflowService&) = delete;
  WorkflowService& operator=(const WorkflowService&) = delete;

  void register_methods();
  void pack_stats(ipc::rpc::Packer& pk) const;
  std::string summary() const;

 private:
  class Providers;
  class StoreIo;
  class HostExecutor;
  WorkflowService(ipc::Server& server, stage::Registry& registry, StageConfig config);
  void submit(const ipc::CallContext& call, ipc::Responder& r);
  void watch(const ipc::CallContext& call, ipc::Responder& r);
  void list(const ipc::CallContext& call, ipc::Responder& r);
  void show(const ipc::CallContext& call, ipc::Responder& r);
  void cancel(const ipc::CallContext& call, ipc::Responder& r);
  void logs(const ipc::CallContext& call, ipc::Responder& r);
  void schedule_maintain();
  void on_registry_change(const std::string& id);

  ipc::Server& server_;
  stage::Registry& registry_;
  StageConfig config_;
  std::unique_ptr<stage::ExtensionHost> host_;
  std::unique_ptr<Providers> providers_;
  std::unique_ptr<StoreIo> io_;
  std::unique_ptr<HostExecutor> executor_;
  std::unique_ptr<conductor::Conductor> conductor_;
  std::unique_ptr<ipc::WorkerPool> maintenance_;
  std::map<std::uint64_t, std::vector<std::uint64_t>> watches_;  // connection → watch handles
  std::set<std::string> to_prune_;  // extension ids with old versions on disk
  ipc::TimerId maintain_timer_;
  bool maintain_running_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace symphony::daemon
