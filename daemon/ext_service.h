// The ext.* RPC methods: the extension registry (stage/registry.h) over the
// daemon's socket, for `symphonyctl ext`. Who may change what follows the
// peer's kernel credentials: installs, removals and enable/disable of
// extensions for everyone (system scope, bundled ones included) need root or
// the daemon's own uid; any user may manage their own (user scope). The
// registry's disk work runs on a worker thread of the service's own, one at
// a time, so a large install never stalls the event loop.
#pragma once

#include <memory>

#include "ipc/rpc_server.h"
#include "ipc/worker_pool.h"
#include "stage/registry.h"

namespace symphony::daemon {

class ExtService {
 public:
  // `registry` must outlive the service.
  static Result<std::unique_ptr<ExtService>> create(ipc::Server& server, stage::Registry& registry);
  ~ExtService();
  ExtService(const ExtService&) = delete;
  ExtService& operator=(const ExtService&) = delete;

  // Registers ext.install, ext.ls, ext.info, ext.enable, ext.disable and
  // ext.remove (docs/protocol.md, "Extensions").
  void register_methods();

 private:
  ExtService(ipc::Server& server, stage::Registry& registry,
             std::unique_ptr<ipc::WorkerPool> workers);
  void install(const ipc::CallContext& call, ipc::Responder& r);
  void ls(const ipc::CallContext& call, ipc::Responder& r);
  void info(const ipc::CallContext& call, ipc::Responder& r);
  void set_enabled(const ipc::CallContext& call, ipc::Responder& r, bool enabled);
  void remove(const ipc::CallContext& call, ipc::Responder& r);

  ipc::Server& server_;
  stage::Registry& registry_;
  std::unique_ptr<ipc::WorkerPool> workers_;
};

// Packs `e` as the extension map of docs/protocol.md ("Extensions"): a map
// of 15 keys plus `extra` more that the caller packs right after.
void pack_installed(ipc::rpc::Packer& pk, const stage::Installed& e, std::uint32_t extra = 0);

}  // namespace symphony::daemon
