// symphonyd's configuration: the schema (every key, its default, range and
// meaning: the one place defaults are written down) and loading it from the
// main file, its drop-ins, the environment and the command line.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "base/config.h"
#include "base/paths.h"
#include "ipc/event_loop.h"
#include "ipc/rpc_server.h"

namespace symphony::daemon {

const config::Schema& daemon_schema();

struct ConfigSources {
  Mode mode = Mode::system;
  Paths paths;
  // --config FILE replaces the mode's main file (its drop-ins come from FILE.d).
  std::filesystem::path explicit_file;
  // Command-line overrides, applied last, as key → text.
  std::vector<std::pair<std::string, std::string>> overrides;
};

struct DaemonConfig {
  std::string log_level;
  std::string socket;
  std::string state_dir;
  unsigned socket_mode = 0660;
  std::string socket_group;
  ipc::LoopChoice loop = ipc::LoopChoice::automatic;
  std::string loop_origin;  // where the loop choice came from
  ipc::ServerOptions server;
  std::vector<std::string> allow_users;
  std::vector<std::string> allow_groups;
  std::int64_t drain_timeout_ms = 5000;
  std::vector<std::filesystem::path> files;  // config files read, in order
  std::filesystem::path main_file;
};

// Reads and validates everything. Precedence, lowest first: defaults, the
// main file, drop-ins (lexical order), SYMPHONY_LOOP_BACKEND, command line.
Result<DaemonConfig> load_daemon_config(const ConfigSources& sources);

}  // namespace symphony::daemon
