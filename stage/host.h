// The extension host: runs steps on pooled, sandboxed extension instances.
// Each (extension version, workspace, user) is a model in the Pit's pool
// manager, whose Loader here starts an Instance (sandbox + handshake) and
// stops it; the pool decides when — warm reuse, at most `max_instances` per
// extension, eviction under the memory budget — and the host adds idle
// shutdown and hot swap: once a newer version of an extension is current,
// new steps go to it (the caller resolves manifests per step), and the old
// version's instances are shut down as soon as their in-flight steps end.
//
// Threading: run() blocks (the Conductor calls it from worker threads) and
// may be called concurrently; everything else is thread-safe too. An
// instance is started on the thread whose run() (or maintain()) needed it,
// and a sandbox dies with the thread that spawned it (PR_SET_PDEATHSIG is
// per thread): call the host only from threads that outlive its instances
// (the daemon's worker threads live as long as the host).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "pit/pool/pool.h"
#include "sandbox/launcher.h"
#include "stage/instance.h"
#include "stage/manifest.h"

namespace symphony::stage {

struct HostOptions {
  InstanceOptions instance;  // timeouts, SDK dir, decode limits (instance_id/uid/gid are set per instance)
  std::uint32_t max_instances = 4;
  std::chrono::seconds idle_timeout{300};  // 0: never shut idle instances down
  std::uint64_t memory_budget = 0;         // bytes on the host for all instances; 0: half of RAM
  std::chrono::milliseconds acquire_wait{60'000};
};

// Who a step runs as and where.
struct RunAs {
  std::filesystem::path workspace;  // absolute, or empty
  std::optional<std::uint32_t> uid;
  std::optional<std::uint32_t> gid;
};

struct HostStats {
  std::uint64_t started = 0;        // instances started (handshake completed)
  std::uint64_t start_failures = 0;
  std::uint64_t stopped = 0;        // shut down (idle, retired, evicted)
  std::uint64_t steps = 0;
  std::map<std::string, std::uint64_t> failures;  // by FailureKind name
  std::size_t live = 0;
};

class ExtensionHost {
 public:
  static Result<std::unique_ptr<ExtensionHost>> create(sandbox::Launcher* launcher, HostOptions options);
  ~ExtensionHost();
  ExtensionHost(const ExtensionHost&) = delete;
  ExtensionHost& operator=(const ExtensionHost&) = delete;

  // Runs `call` on an instance of `manifest` (warm when one is idle, else
  // started), as `as`. A failure to get an instance is a StepFailure of kind
  // `start`.
  StepOutcome run(const Manifest& manifest, const RunAs& as, const StepCall& call, const StepEvents& events,
                  const CancelToken* cancel = nullptr);

  // Hot swap: `id`'s current version is now `current`; instances of other
  // versions take no new steps and are shut down once idle.
  void retire_other_versions(const std::string& id, const Version& current);
  // Versions of `id` that still have live instances (what must not be
  // pruned from disk yet).
  std::set<std::string> versions_in_use(const std::string& id) const;

  // Health checks and idle shutdown; the daemon calls it on a timer from a
  // worker thread.
  void maintain();
  // Starts one instance of each at_start extension (or logs why not).
  void activate(const Manifest& manifest, const RunAs& as);

  HostStats stats() const;
  pit::pool::PoolStats pool_stats() const { return pool_->stats(); }

 private:
  class Loader;
  struct Entry;
  ExtensionHost(sandbox::Launcher* launcher, HostOptions options);
  Result<pit::pool::ModelId> model_for(const Manifest& manifest, const RunAs& as);
  std::shared_ptr<Instance> instance(pit::pool::InstanceId id);
  void count_failure(FailureKind kind);

  sandbox::Launcher* launcher_;
  HostOptions options_;
  std::unique_ptr<Loader> loader_;
  std::unique_ptr<pit::pool::Pool> pool_;

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;  // by pool model name
  std::map<std::uint64_t, std::shared_ptr<Instance>> instances_;
  std::map<std::uint64_t, std::string> instance_model_;  // instance → model name
  std::uint64_t next_instance_ = 1;
  HostStats stats_;
};

}  // namespace symphony::stage
