// pit.claim / pit.release: the arbitration engine's claims for clients over
// the socket. A claim belongs to the connection that made it and is
// released when that connection closes; a request that cannot be granted
// yet is answered when it is (or when it times out, is cancelled, or is
// chosen as a deadlock victim). The Conductor uses the same Arbiter in
// process for its steps.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>

#include "ipc/rpc_server.h"
#include "pit/arbiter/arbiter.h"

namespace symphony::daemon {

class ClaimService {
 public:
  // `arbiter` must outlive the service; every call happens on the loop thread.
  ClaimService(ipc::Server& server, pit::Arbiter& arbiter);
  ~ClaimService();
  ClaimService(const ClaimService&) = delete;
  ClaimService& operator=(const ClaimService&) = delete;

  void register_methods();

 private:
  void claim(const ipc::CallContext& call, ipc::Responder& r);
  void release(const ipc::CallContext& call, ipc::Responder& r);
  // Runs the arbiter's housekeeping (timeouts, aging) when it next has some.
  void rearm();

  ipc::Server& server_;
  pit::Arbiter& arbiter_;
  std::unordered_map<std::uint64_t, std::uint64_t> owner_;  // claim id → connection id
  ipc::TimerId timer_;
  bool timer_armed_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace symphony::daemon
