// symphonyd's configuration: the schema (every key, its default, range and
// meaning: the one place defaults are written down) and loading it from the
// main file, its drop-ins, the environment and the command line.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "base/config.h"
#include "base/paths.h"
#include "ipc/event_loop.h"
#include "ipc/rpc_server.h"
#include "pit/stale/retention_policy.h"

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

// A model the pool manager serves as a sandboxed process ([pit.models.NAME]).
struct ModelConfig {
  std::string name;
  std::vector<std::string> command;
  std::uint64_t memory_bytes = 512ull << 20;
  std::uint32_t max_instances = 1;
  std::uint32_t max_users = 1;
  bool pinned = false;
  friend bool operator==(const ModelConfig&, const ModelConfig&) = default;
};

struct PoolServiceConfig {
  std::vector<ModelConfig> models;
  std::uint64_t host_memory_bytes = 0;  // 0: half of the machine's RAM
  std::chrono::seconds health_interval{30};
  friend bool operator==(const PoolServiceConfig&, const PoolServiceConfig&) = default;
};

// The Pit's settings (pit.* keys).
struct PitConfig {
  std::string dir;  // empty: <state_dir>/pit
  unsigned workers = 4;
  std::uint64_t max_artifact_size = 64ull << 30;
  std::size_t max_batch = 256;
  std::chrono::microseconds batch_delay{200};
  std::chrono::seconds gc_grace{3600};
  std::chrono::seconds gc_interval{3600};
  std::chrono::seconds stale_interval{600};
  std::vector<pit::stale::RetentionPolicy> retention;
  pit::stale::StaleSettings stale;
  std::string conflict_policy = "keep_both";
  std::string conflict_fallback = "keep_both";
  PoolServiceConfig pool;
  friend bool operator==(const PitConfig&, const PitConfig&) = default;
  // Bytes per artifact.upload_chunk / artifact.read: 4 MiB, or less so a
  // chunk always fits ipc.max_message_size.
  std::size_t max_chunk = 4 * 1024 * 1024;
};

// The Grand Stage's settings (stage.* keys): where extensions are installed
// and how the extension host treats instances (docs/extension-protocol.md).
struct StageConfig {
  // Read-only roots of bundled extensions (the package's), searched after
  // the writable one; empty entries are skipped.
  std::vector<std::string> system_dirs;
  std::string dir;             // where `ext install` puts extensions; empty: <state_dir>/extensions
  std::string python_sdk_dir;  // bound read-only into every sandbox, on PYTHONPATH
  std::chrono::milliseconds heartbeat{1000};
  std::chrono::milliseconds heartbeat_timeout{5000};
  std::chrono::milliseconds handshake_timeout{10000};
  std::chrono::milliseconds cancel_grace{2000};
  std::chrono::seconds idle_timeout{300};
  std::uint32_t max_instances = 4;  // per extension version and workspace
  std::uint32_t max_parallel = 8;   // steps the Conductor runs at once, over all workflows
  std::string strategy = "parallel";
  friend bool operator==(const StageConfig&, const StageConfig&) = default;
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
  PitConfig pit;
  StageConfig stage;
  std::vector<std::filesystem::path> files;  // config files read, in order
  std::filesystem::path main_file;
};

// Reads and validates everything. Precedence, lowest first: defaults, the
// main file, drop-ins (lexical order), SYMPHONY_LOOP_BACKEND, command line.
Result<DaemonConfig> load_daemon_config(const ConfigSources& sources);

}  // namespace symphony::daemon
