// The daemon's lifecycle and its built-in RPC methods (daemon.ping,
// daemon.status). Signals arrive through a signalfd watched by the event
// loop, so every state change happens on the loop thread.
#include "daemon/daemon.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/accounts.h"
#include "daemon/systemd.h"
#include "symphony_build_config.h"
#include "sandbox/cgroup.h"
#include "sandbox/linux_launcher.h"

namespace symphony::daemon {
namespace {

// CLOCK_MONOTONIC in microseconds, for RELOADING=1's MONOTONIC_USEC.
std::uint64_t monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

ipc::AccessPolicy make_policy(const DaemonConfig& c) {
  auto policy = ipc::AccessPolicy::make(::getuid(), c.allow_users, c.allow_groups);
  for (const auto& name : policy.unresolved()) {
    spdlog::info("access: {} does not exist; it grants nobody access", name);
  }
  return policy;
}

}  // namespace

Daemon::Daemon(ConfigSources sources, DaemonConfig config)
    : sources_(std::move(sources)), config_(std::move(config)),
      started_(std::chrono::steady_clock::now()) {}

Daemon::~Daemon() {
  workflows_.reset();  // stops its steps and extension instances first
  ext_.reset();  // its worker may be using the registry
  pit_.reset();  // uses the loop's timers and answers through the server
  server_.reset();
  loop_.reset();
}

Result<std::unique_ptr<Daemon>> Daemon::create(ConfigSources sources, DaemonConfig config) {
  std::unique_ptr<Daemon> d(new Daemon(std::move(sources), std::move(config)));
  if (auto r = d->start(); !r) return std::move(r).error();
  return d;
}

Result<void> Daemon::start() {
  bool system = sources_.mode == Mode::system;
  if (auto r = ensure_directory(config_.state_dir, system ? 0750 : 0700); !r) {
    return std::move(r).error().wrap("state directory");
  }
  auto selection = ipc::make_event_loop(config_.loop);
  if (!selection) return std::move(selection).error().wrap("event loop");
  loop_ = std::move(selection->loop);
  loop_fallback_reason_ = std::move(selection->fallback_reason);
  if (!loop_fallback_reason_.empty()) {
    spdlog::warn("io_uring unavailable ({}); using epoll", loop_fallback_reason_);
  }
  open_sandbox();
  server_ = std::make_unique<ipc::Server>(*loop_, config_.server, make_policy(config_));
  std::filesystem::path pit_dir =
      config_.pit.dir.empty() ? std::filesystem::path(config_.state_dir) / "pit" : std::filesystem::path(config_.pit.dir);
  auto pit = PitHost::open(*server_, config_.pit, pit_dir, std::filesystem::path(config_.socket).parent_path(),
                           launcher_.get());
  if (!pit) return std::move(pit).error();
  pit_ = std::move(*pit);
  if (auto r = open_registry(); !r) return r;
  auto workflows = WorkflowService::create(*server_, launcher_.get(), *registry_, pit_->store(), pit_->dag(),
                                           config_.stage, config_.server.limits);
  if (!workflows) return std::move(workflows).error().wrap("workflows");
  workflows_ = std::move(*workflows);
  register_methods();
  if (auto r = open_listener(); !r) return r;
  watch_signals();
  if (auto period = sd::watchdog_interval()) arm_watchdog(*period);
  return ok();
}

Result<void> Daemon::open_listener() {
  auto inherited = sd::listen_fds();
  if (!inherited) return std::move(inherited).error();
  if (!inherited->empty()) {
    for (std::size_t i = 1; i < inherited->size(); ++i) {
      spdlog::warn("socket activation passed {} sockets; using the first, closing fd {}",
                   inherited->size(), (*inherited)[i]);
      ::close((*inherited)[i]);
    }
    auto listener = ipc::adopt_listener(*loop_, inherited->front());
    if (!listener) return std::move(listener).error().wrap("socket activation");
    config_.socket = (*listener)->address();
    socket_activated_ = true;
    server_->add_listener(std::move(*listener));
    return ok();
  }
  std::filesystem::path socket(config_.socket);
  bool system = sources_.mode == Mode::system;
  if (auto r = ensure_directory(socket.parent_path(), system ? 0755 : 0700); !r) {
    return std::move(r).error().wrap("runtime directory");
  }
  ipc::ListenOptions options;
  options.mode = config_.socket_mode;
  std::optional<std::uint32_t> gid;
  if (!config_.socket_group.empty()) gid = lookup_group(config_.socket_group);
  if (gid && (::geteuid() == 0 || static_cast<gid_t>(*gid) == ::getegid())) options.group = *gid;
  auto listener = ipc::listen(*loop_, config_.socket, options);
  if (!listener) return std::move(listener).error();
  server_->add_listener(std::move(*listener));
  return ok();
}

void Daemon::register_methods() {
  server_->add_method("daemon.ping", [](const ipc::CallContext& call, ipc::Responder& r) {
    // Echo the payload (any msgpack object) so clients can measure round
    // trips of a chosen size.
    const auto& params = call.params.via.array;
    if (params.size == 0) return r.reply(std::string_view("pong"));
    const msgpack::object& payload = params.ptr[0];
    r.reply_with([&](ipc::rpc::Packer& pk) { ipc::rpc::pack_exact(pk, payload); });
  });
  server_->add_method("daemon.status", [this](const ipc::CallContext&, ipc::Responder& r) {
    r.reply_with([this](ipc::rpc::Packer& pk) { pack_status(pk); });
  });
  pit_->register_methods();
  ext_->register_methods();
  workflows_->register_methods();
}

Result<void> Daemon::open_registry() {
  stage::RegistryOptions options;
  options.writable_root = config_.stage.dir.empty() ? std::filesystem::path(config_.state_dir) / "extensions"
                                                    : std::filesystem::path(config_.stage.dir);
  for (const auto& d : config_.stage.system_dirs) options.system_dirs.emplace_back(d);
  auto opened = stage::Registry::open(std::move(options));
  if (!opened) return std::move(opened).error().wrap("stage.dir");
  for (const auto& w : opened->warnings) spdlog::warn("extensions: {}", w);
  registry_ = std::move(opened->registry);
  auto ext = ExtService::create(*server_, *registry_);
  if (!ext) return std::move(ext).error();
  ext_ = std::move(*ext);
  return ok();
}

void Daemon::open_sandbox() {
  auto host = sandbox::detect_cgroup_host();
  cgroup_layout_ = host ? std::string(sandbox::to_string(host->layout)) : "unknown";
  sandbox::LauncherOptions options;
  // Under systemd with Delegate=yes on a cgroup v2 host the daemon's own
  // group is the delegated one; it moves into a leaf so the subtree can
  // enable controllers.
  options.cgroups.move_self_to_leaf =
      host && host->layout == sandbox::CgroupLayout::unified && std::getenv("INVOCATION_ID");
  auto launcher = sandbox::make_launcher(options);
  if (!launcher) {
    sandbox_status_ = "unavailable: " + launcher.error().message();
    spdlog::warn("sandbox {}", sandbox_status_);
    return;
  }
  launcher_ = std::move(launcher).value();
  sandbox_status_ = launcher_->describe();
  spdlog::info("sandbox: {}", sandbox_status_);
}

void Daemon::pack_status(ipc::rpc::Packer& pk) const {
  using namespace std::chrono;
  auto uptime = duration_cast<milliseconds>(steady_clock::now() - started_).count();
  const auto& stats = server_->stats();
  pk.pack_map(21);
  auto kv = [&](std::string_view k, const auto& v) {
    pk.pack(k);
    pk.pack(v);
  };
  kv("version", std::string_view(SYMPHONY_VERSION));
  kv("protocol", static_cast<std::uint32_t>(SYMPHONY_PROTOCOL_VERSION));
  kv("pid", static_cast<std::int64_t>(::getpid()));
  kv("uptime_ms", static_cast<std::int64_t>(uptime));
  kv("mode", to_string(sources_.mode));
  kv("loop_backend", ipc::to_string(loop_->backend()));
  kv("loop_fallback_reason", loop_fallback_reason_);
  kv("connections", static_cast<std::uint64_t>(server_->connection_count()));
  kv("config_path", config_.main_file.string());
  pk.pack(std::string_view("config_files"));
  pk.pack_array(static_cast<std::uint32_t>(config_.files.size()));
  for (const auto& f : config_.files) pk.pack(f.string());
  kv("socket", config_.socket);
  kv("socket_activated", socket_activated_);
  kv("state_dir", config_.state_dir);
  kv("requests", stats.requests);
  kv("refused", stats.refused);
  kv("protocol_errors", stats.protocol_errors);
  kv("slow_clients", stats.slow_clients);
  kv("cgroup_layout", cgroup_layout_);
  kv("sandbox", sandbox_status_);
  kv("pit", pit_->summary());
  kv("workflows", workflows_->summary());
}

std::string Daemon::status_line() const {
  return fmt::format("Serving on {} ({}), {} connection(s)", config_.socket,
                     ipc::to_string(loop_->backend()), server_->connection_count());
}

void Daemon::watch_signals() {
  if (!signal_fd_) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    // main() blocked these before any thread existed; the fd collects them.
    signal_fd_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!signal_fd_) {
      spdlog::error("signalfd: {}", std::strerror(errno));
      return;
    }
  }
  loop_->poll(signal_fd_.get(), POLLIN, [this](Result<std::uint32_t> r) {
    if (!r) return;
    signalfd_siginfo info{};
    while (::read(signal_fd_.get(), &info, sizeof(info)) == sizeof(info)) {
      on_signal(static_cast<int>(info.ssi_signo));
    }
    watch_signals();  // one-shot poll: re-arm
  });
}

void Daemon::on_signal(int signo) {
  if (signo == SIGHUP) {
    reload();
  } else {
    begin_shutdown(signo);
  }
}

void Daemon::reload() {
  sd::notify(fmt::format("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=Reloading configuration",
                         monotonic_usec()));
  spdlog::info("SIGHUP: reloading configuration");
  auto fresh = load_daemon_config(sources_);
  if (!fresh) {
    spdlog::error("reload failed, keeping the running configuration: {}", fresh.error().message());
    sd::notify("READY=1\nSTATUS=" + status_line() + " (last reload failed)");
    return;
  }
  if (fresh->socket != config_.socket && !socket_activated_) {
    spdlog::warn("ipc.socket changed to {}; takes effect after a restart", fresh->socket);
  }
  if (fresh->loop != config_.loop) spdlog::warn("ipc.loop_backend changed; takes effect after a restart");
  if (fresh->state_dir != config_.state_dir) spdlog::warn("daemon.state_dir changed; takes effect after a restart");
  spdlog::default_logger()->set_level(*log::parse_level(fresh->log_level));
  server_->reconfigure(fresh->server, make_policy(*fresh));
  std::string socket = config_.socket;
  std::string state_dir = config_.state_dir;
  ipc::LoopChoice loop = config_.loop;
  PitConfig pit = config_.pit;
  if (fresh->pit != pit) {
    spdlog::warn("pit.* changed; takes effect after a restart");
  }
  config_ = std::move(*fresh);
  // What only a restart can change stays as it is running.
  config_.socket = socket;
  config_.state_dir = state_dir;
  config_.loop = loop;
  config_.pit = pit;
  spdlog::info("configuration reloaded ({} file(s))", config_.files.size());
  sd::notify("READY=1\nSTATUS=" + status_line());
}

void Daemon::begin_shutdown(int signo) {
  if (stopping_) return;
  stopping_ = true;
  spdlog::info("SIG{}: draining {} connection(s) and stopping", ::sigabbrev_np(signo),
               server_->connection_count());
  sd::notify("STOPPING=1\nSTATUS=Draining connections");
  server_->drain(std::chrono::milliseconds(config_.drain_timeout_ms), [this] { loop_->stop(); });
}

void Daemon::arm_watchdog(std::chrono::microseconds period) {
  // Ping at half the period systemd allows, as sd_watchdog_enabled(3) advises.
  loop_->add_timer(period / 2, [this, period] {
    sd::notify("WATCHDOG=1");
    // Keep pinging while draining: the drain may outlast WatchdogSec=.
    arm_watchdog(period);
  });
}

Result<void> Daemon::run() {
  sd::notify("READY=1\nSTATUS=" + status_line());
  spdlog::info("symphonyd {} ({} mode) serving on {} with the {} loop", SYMPHONY_VERSION,
               to_string(sources_.mode), config_.socket, ipc::to_string(loop_->backend()));
  auto r = loop_->run();
  spdlog::info("stopped");
  return r;
}

}  // namespace symphony::daemon
