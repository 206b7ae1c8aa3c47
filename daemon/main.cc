// symphonyd's entry point: command-line parsing and process-wide setup
// (signal mask, SIGPIPE) before any thread exists. Everything else is in
// Daemon.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "daemon/daemon.h"
#include "symphony_build_config.h"

namespace {

// sysexits.h EX_CONFIG: systemd units list it in RestartPreventExitStatus=,
// so a broken configuration is not restarted in a loop.
constexpr int kExitConfig = 78;

}  // namespace

int main(int argc, char** argv) {
  using namespace symphony;
  CLI::App app{"symphonyd: the Symphony daemon (runs AI tooling in sandboxed extensions)"};
  app.set_version_flag("--version", std::string("symphonyd ") + SYMPHONY_VERSION);
  bool user_mode = false;
  std::string config_file, socket, loop_backend, log_level, log_target = "auto";
  std::vector<std::string> sets;
  bool print_defaults = false, check_config = false;
  app.add_flag("--user", user_mode,
               "User mode: socket in $XDG_RUNTIME_DIR/symphony, config in ~/.config/symphony");
  app.add_option("-c,--config", config_file, "Main configuration file (drop-ins from FILE.d/)");
  app.add_option("-s,--socket", socket, "Listen on this socket path (ipc.socket)");
  app.add_option("--loop-backend", loop_backend, "auto, io_uring or epoll (ipc.loop_backend)")
      ->check(CLI::IsMember({"auto", "io_uring", "epoll"}));
  app.add_option("--log-level", log_level, "trace, debug, info, warning, error, critical, off");
  app.add_option("--log-target", log_target, "auto (journal under systemd), console or journal")
      ->check(CLI::IsMember({"auto", "console", "journal"}));
  app.add_option("--set", sets, "Override any configuration key: --set ipc.max_connections=64");
  app.add_flag("--print-defaults", print_defaults, "Print every configuration key at its default");
  app.add_flag("--check-config", check_config, "Validate the configuration and exit");
  // A later flag overrides an earlier one, as with most daemons.
  for (auto* opt : app.get_options()) {
    if (opt->get_expected_max() == 1) opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  if (print_defaults) {
    std::cout << "# symphonyd configuration: every key at its default.\n"
              << daemon::daemon_schema().render_defaults();
    return 0;
  }

  daemon::ConfigSources sources;
  sources.mode = user_mode ? Mode::user : Mode::system;
  auto paths = default_paths(sources.mode);
  if (!paths) {
    std::fprintf(stderr, "symphonyd: %s\n", paths.error().message().c_str());
    return kExitConfig;
  }
  sources.paths = *paths;
  sources.explicit_file = config_file;
  if (!socket.empty()) sources.overrides.emplace_back("ipc.socket", socket);
  if (!loop_backend.empty()) sources.overrides.emplace_back("ipc.loop_backend", loop_backend);
  if (!log_level.empty()) sources.overrides.emplace_back("daemon.log_level", log_level);
  for (const auto& s : sets) {
    auto eq = s.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "symphonyd: --set expects KEY=VALUE, got '%s'\n", s.c_str());
      return 2;
    }
    sources.overrides.emplace_back(s.substr(0, eq), s.substr(eq + 1));
  }

  if (check_config) {
    auto cfg = daemon::load_daemon_config(sources);
    if (!cfg) {
      std::fprintf(stderr, "symphonyd: %s\n", cfg.error().message().c_str());
      return kExitConfig;
    }
    std::printf("configuration OK (%zu file(s) read)\n", cfg->files.size());
    return 0;
  }

  // Block the signals the daemon handles before any thread exists, so they
  // are delivered only through its signalfd; a closed client socket must not
  // kill us with SIGPIPE.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  auto config = daemon::load_daemon_config(sources);
  if (!config) {
    std::fprintf(stderr, "symphonyd: %s\n", config.error().message().c_str());
    return kExitConfig;
  }
  log::Target wanted = log_target == "console"   ? log::Target::console
                       : log_target == "journal" ? log::Target::journal
                                                 : log::Target::automatic;
  log::Target target = log::init({"symphonyd", *log::parse_level(config->log_level), wanted});
  auto d = daemon::Daemon::create(std::move(sources), std::move(*config));
  if (!d) {
    // On a console the log line is the message; in the journal, say it on
    // stderr too so that `systemctl status` shows it.
    spdlog::critical("cannot start: {}", d.error().message());
    if (target == log::Target::journal) {
      std::fprintf(stderr, "symphonyd: %s\n", d.error().message().c_str());
    }
    return 1;
  }
  if (auto r = (*d)->run(); !r) {
    spdlog::critical("{}", r.error().message());
    return 1;
  }
  return 0;
}
