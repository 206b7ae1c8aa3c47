// The artifact.* RPC methods: the artifact store (pit/artifacts) over the
// daemon's socket. Every store call that can block on the disk runs on the
// worker pool; replies go out on the loop thread. A put is answered only
// after the store has made it durable, so a client that saw the reply can
// rely on the artifact surviving a crash.
//
// Large artifacts travel in chunks: artifact.upload_begin, then any number of
// artifact.upload_chunk (each written to the store's temporary file as it
// arrives, in order), then artifact.upload_commit; reads go the other way
// with artifact.read(ref, offset, length). An upload belongs to the
// connection that began it and is discarded when that connection closes or
// the upload has seen no operation for `upload_idle_timeout`.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "ipc/rpc_server.h"
#include "ipc/worker_pool.h"
#include "pit/arbiter/conflict_resolver.h"
#include "pit/artifacts/artifact_store.h"

namespace symphony::daemon {

struct ArtifactServiceOptions {
  std::size_t max_chunk = 4 * 1024 * 1024;          // bytes per upload_chunk / read
  std::size_t max_uploads_per_connection = 16;
  std::size_t max_uploads = 256;
  std::chrono::seconds upload_idle_timeout{600};
};

struct ArtifactServiceStats {
  std::uint64_t uploads_open = 0;
  std::uint64_t uploads_expired = 0;
};

class ArtifactService {
 public:
  // `resolver` (may be null: puts with a "base" are then refused) decides
  // write conflicts; it must outlive the service.
  ArtifactService(ipc::Server& server, ipc::WorkerPool& workers, std::shared_ptr<pit::ArtifactStore> store,
                  pit::ConflictResolver* resolver, ArtifactServiceOptions options = {});
  ~ArtifactService();
  ArtifactService(const ArtifactService&) = delete;
  ArtifactService& operator=(const ArtifactService&) = delete;

  // Registers artifact.* on the server.
  void register_methods();
  ArtifactServiceStats stats() const;
  pit::ArtifactStore& store() { return *store_; }

 private:
  struct Upload;
  void put(const ipc::CallContext& call, ipc::Responder& r);
  void upload_begin(const ipc::CallContext& call, ipc::Responder& r);
  void upload_op(const ipc::CallContext& call, ipc::Responder& r, int op);
  void run_next(std::uint64_t id);
  void read(const ipc::CallContext& call, ipc::Responder& r);
  void query(const ipc::CallContext& call, ipc::Responder& r, int what);
  void pin(const ipc::CallContext& call, ipc::Responder& r, bool pin);
  void gc(const ipc::CallContext& call, ipc::Responder& r);
  void sweep_idle();
  // Ends an upload (connection gone, expired, uncommittable) and discards
  // its temporary file.
  void discard(std::uint64_t id);
  void drop_writer(const std::shared_ptr<Upload>& upload);

  ipc::Server& server_;
  ipc::WorkerPool& workers_;
  std::shared_ptr<pit::ArtifactStore> store_;
  ArtifactServiceOptions options_;
  std::unordered_map<std::uint64_t, std::shared_ptr<Upload>> uploads_;
  std::uint64_t next_upload_ = 1;
  std::uint64_t expired_ = 0;
  ipc::TimerId sweep_timer_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  pit::ConflictResolver* resolver_;
  // Puts that name a base version check "is the base still the latest?" and
  // commit under this lock, so two of them cannot both win.
  std::shared_ptr<std::mutex> conflict_mu_ = std::make_shared<std::mutex>();
};

// The msgpack form of a version (docs/protocol.md, "Artifacts").
void pack_version(ipc::rpc::Packer& pk, const pit::VersionInfo& v);

}  // namespace symphony::daemon
