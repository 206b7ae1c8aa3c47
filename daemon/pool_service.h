// The pool manager in the daemon: models declared in the configuration
// ([pit.models.<name>]) are pooled sandboxed processes that clients lease
// over the socket (pool.acquire / pool.release, pool.prewarm, pool.pin,
// pool.unpin). A lease belongs to its connection and is returned when the
// connection closes. Allocations run on their own worker threads (a miss
// loads, and a busy model may make the call wait); the pool's predictive
// pre-warming and health checks run on timers.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/daemon_config.h"
#include "daemon/sandbox_model_loader.h"
#include "ipc/rpc_server.h"
#include "ipc/worker_pool.h"
#include "pit/pool/pool.h"

namespace symphony::daemon {

class PoolService {
 public:
  // `launcher` may be null (no sandbox): loads then fail saying so.
  static Result<std::unique_ptr<PoolService>> create(ipc::Server& server, sandbox::Launcher* launcher,
                                                     PoolServiceConfig config);
  ~PoolService();
  PoolService(const PoolService&) = delete;
  PoolService& operator=(const PoolService&) = delete;

  void register_methods();
  void pack_stats(ipc::rpc::Packer& pk) const;

 private:
  PoolService(ipc::Server& server, PoolServiceConfig config);
  void acquire(const ipc::CallContext& call, ipc::Responder& r);
  void release(const ipc::CallContext& call, ipc::Responder& r);
  void prewarm(const ipc::CallContext& call, ipc::Responder& r);
  void pin(const ipc::CallContext& call, ipc::Responder& r, bool pin);
  void schedule_health();
  void schedule_maintain();

  struct Held {
    std::uint64_t connection;
    pit::pool::Lease lease;
  };

  ipc::Server& server_;
  PoolServiceConfig config_;
  std::unique_ptr<SandboxModelLoader> loader_;
  std::unique_ptr<pit::pool::Pool> pool_;
  std::unique_ptr<ipc::WorkerPool> workers_;
  std::unordered_map<std::uint64_t, std::shared_ptr<Held>> leases_;
  std::uint64_t next_lease_ = 1;
  ipc::TimerId health_timer_;
  ipc::TimerId maintain_timer_;
  bool health_running_ = false;
  bool maintain_running_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace symphony::daemon
