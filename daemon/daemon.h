// symphonyd itself: wires configuration, logging, the event loop, the RPC
// server and the systemd protocol together, and owns the process lifecycle
// (start → READY, SIGHUP → reload, SIGTERM → drain → exit).
#pragma once

#include <chrono>
#include <memory>

#include "base/log.h"
#include "daemon/daemon_config.h"
#include "daemon/ext_service.h"
#include "daemon/workflow_service.h"
#include "daemon/pit_host.h"
#include "ipc/event_loop.h"
#include "ipc/rpc_server.h"
#include "sandbox/launcher.h"

namespace symphony::daemon {

class Daemon {
 public:
  // Opens the socket and prepares everything for `config` (loaded from
  // `sources`, which reloads read again), but does not serve yet. Errors say
  // what failed (socket path in use, directory not writable, …).
  static Result<std::unique_ptr<Daemon>> create(ConfigSources sources, DaemonConfig config);
  ~Daemon();

  // Serves until SIGTERM or SIGINT, then drains and returns.
  Result<void> run();

  // The extension registry (stage.dir and stage.system_dirs), owned by the
  // daemon for its whole life; never null after create().
  stage::Registry* registry() { return registry_.get(); }

 private:
  Daemon(ConfigSources sources, DaemonConfig config);
  Result<void> start();
  Result<void> open_listener();
  void register_methods();
  void open_sandbox();
  Result<void> open_registry();
  void watch_signals();
  void on_signal(int signo);
  void reload();
  void begin_shutdown(int signo);
  void arm_watchdog(std::chrono::microseconds period);
  std::string status_line() const;
  void pack_status(ipc::rpc::Packer& pk) const;

  ConfigSources sources_;
  DaemonConfig config_;
  std::unique_ptr<ipc::EventLoop> loop_;
  std::string loop_fallback_reason_;
  std::unique_ptr<ipc::Server> server_;
  UniqueFd signal_fd_;
  bool socket_activated_ = false;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point started_;
  // The sandbox launcher extensions will run under; opened at start so the
  // cgroup layout is known (and cgroups left by a crash are removed).
  std::unique_ptr<sandbox::Launcher> launcher_;
  std::string sandbox_status_;
  std::string cgroup_layout_;
  std::unique_ptr<PitHost> pit_;
  std::unique_ptr<stage::Registry> registry_;
  std::unique_ptr<WorkflowService> workflows_;
  std::unique_ptr<ExtService> ext_;
};

}  // namespace symphony::daemon
