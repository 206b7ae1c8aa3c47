// The DAG tracker's memo cache, kept in the artifact store so it survives
// restarts: the outputs of a memoized step are recorded as a small text
// artifact named "memo/<key hex>" (one "NAME@VERSION sha256:HEX" line per
// output). Lookups read the index and a page-cached blob on the caller's
// thread; stores are puts, made durable on the worker pool so the event loop
// never waits (a store that fails only costs a re-run, per MemoCache).
#pragma once

#include <memory>

#include "ipc/worker_pool.h"
#include "pit/artifacts/artifact_store.h"
#include "pit/dag/memo.h"

namespace symphony::daemon {

class ArtifactMemoCache final : public pit::dag::MemoCache {
 public:
  ArtifactMemoCache(std::shared_ptr<pit::ArtifactStore> store, ipc::WorkerPool& workers)
      : store_(std::move(store)), workers_(workers) {}

  std::optional<std::vector<pit::dag::OutputRef>> lookup(const pit::Digest& key) override;
  void store(const pit::Digest& key, std::span<const pit::dag::OutputRef> outputs) override;

  static std::string name_for(const pit::Digest& key) { return "memo/" + key.hex(); }

 private:
  std::shared_ptr<pit::ArtifactStore> store_;
  ipc::WorkerPool& workers_;
};

}  // namespace symphony::daemon
