// The daemon's configuration schema and its translation into typed options.
#include "daemon/daemon_config.h"

#include <algorithm>
#include <cstdlib>

#include "base/log.h"
#include "pit/stale/retention_policy.h"
#include "symphony_build_config.h"

namespace symphony::daemon {

const config::Schema& daemon_schema() {
  static const config::Schema schema = [] {
    using config::KeySpec;
    using config::Type;
    config::Schema s;
    s.add({"daemon.log_level", Type::string, std::string("info"), {}, {},
           {"trace", "debug", "info", "warning", "error", "critical", "off"},
           "Lowest severity that is logged."});
    s.add({"daemon.state_dir", Type::string, std::string(""), {}, {}, {},
           "Where persistent state lives; empty means $STATE_DIRECTORY under systemd, else "
           SYMPHONY_LOCALSTATEDIR "/lib/symphony (system) or ~/.local/state/symphony (user)."});
    s.add({"daemon.drain_timeout_ms", Type::integer, std::int64_t{5000}, 0, 600'000, {},
           "On SIGTERM, how long open connections get to finish before they are closed."});
    s.add({"ipc.socket", Type::string, std::string(""), {}, {}, {},
           "Socket path; empty means /run/symphony/symphonyd.sock (system) or "
           "$XDG_RUNTIME_DIR/symphony/symphonyd.sock (user)."});
    s.add({"ipc.socket_mode", Type::integer, std::int64_t{0660}, 0, 0777, {},
           "Permission bits of the socket file (write them in octal: 0o660).", true});
    s.add({"ipc.socket_group", Type::string, std::string("symphony"), {}, {}, {},
           "Group that owns the socket file when the daemon runs as root; empty keeps the "
           "daemon's group. A group that does not exist is skipped."});
    s.add({"ipc.loop_backend", Type::string, std::string("auto"), {}, {},
           {"auto", "io_uring", "epoll"},
           "Event loop: auto probes io_uring and falls back to epoll. The environment "
           "variable SYMPHONY_LOOP_BACKEND overrides this key."});
    s.add({"ipc.max_message_size", Type::integer, std::int64_t{16 * 1024 * 1024}, 1024,
           std::int64_t{1} << 30, {}, "Largest msgpack-rpc message accepted, in bytes."});
    s.add({"ipc.max_nesting_depth", Type::integer, std::int64_t{32}, 2, 512, {},
           "Deepest nesting of arrays and maps in one message."});
    s.add({"ipc.max_container_elements", Type::integer, std::int64_t{262'144}, 16,
           std::int64_t{1} << 24, {}, "Most elements in one array or map."});
    s.add({"ipc.max_write_queue", Type::integer, std::int64_t{32 * 1024 * 1024}, 65'536,
           std::int64_t{1} << 32, {},
           "Bytes of unsent responses a connection may hold before the client is "
           "disconnected for not reading."});
    s.add({"ipc.max_connections", Type::integer, std::int64_t{1024}, 1, 65'536, {},
           "Most simultaneous client connections."});
    s.add({"access.allow_users", Type::string_list, config::StringList{}, {}, {}, {},
           "Users (names or uids) allowed to connect, besides root and the daemon's own user."});
    s.add({"access.allow_groups", Type::string_list, config::StringList{"symphony"}, {}, {}, {},
           "Groups (names or gids) whose members may connect."});
    s.add({"pit.dir", Type::string, std::string(""), {}, {}, {},
           "Where the Pit keeps artifacts, workflow journals and decisions; empty means "
           "<daemon.state_dir>/pit."});
    s.add({"pit.workers", Type::integer, std::int64_t{4}, 1, 64, {},
           "Threads that run the Pit's blocking work (durable puts, reads, gc) off the event loop."});
    s.add({"pit.max_artifact_size", Type::integer, std::int64_t{64} << 30, 1, std::int64_t{1} << 50, {},
           "Largest artifact a put accepts, in bytes."});
    s.add({"pit.group_commit_max_batch", Type::integer, std::int64_t{256}, 1, 4096, {},
           "Most puts one group commit makes durable together (1 = a flush per put)."});
    s.add({"pit.group_commit_delay_us", Type::integer, std::int64_t{200}, 0, 100'000, {},
           "How long a group commit waits for more puts to join it, in microseconds."});
    s.add({"pit.gc_grace_s", Type::integer, std::int64_t{3600}, 0, 30 * 86'400, {},
           "gc never removes a blob younger than this many seconds."});
    s.add({"pit.gc_interval_s", Type::integer, std::int64_t{3600}, 0, 30 * 86'400, {},
           "How often the daemon runs gc on its own, in seconds; 0 turns it off."});
    s.add({"pit.conflict_policy", Type::string, std::string("keep_both"), {}, {},
           {"highest_quality", "latest", "keep_both", "merge3"},
           "How a put whose base version is no longer the latest is resolved."});
    s.add({"pit.conflict_merge_fallback", Type::string, std::string("keep_both"), {}, {},
           {"highest_quality", "latest", "keep_both"},
           "What merge3 falls back to when a three-way merge conflicts or the data is not text."});
    s.add({"pit.stale.interval_s", Type::integer, std::int64_t{600}, 0, 30 * 86'400, {},
           "How often the stale manager looks for versions due to move to their next tier, in "
           "seconds; 0 turns it off (symphonyctl pit stale still runs it)."});
    pit::stale::add_stale_keys(s);
    s.add({"pit.pool.host_memory_mb", Type::integer, std::int64_t{0}, 0, std::int64_t{1} << 30, {},
           "Memory the pool manager may fill with model instances, in MiB; 0 means half of the machine's RAM."});
    s.add({"pit.pool.health_interval_s", Type::integer, std::int64_t{30}, 0, 86'400, {},
           "How often loaded model instances are probed, in seconds; 0 turns it off."});
    s.add({"pit.models.*.command", Type::string_list, config::StringList{}, {}, {}, {},
           "The program and arguments of this model's instances; each runs in its own sandbox."});
    s.add({"pit.models.*.memory_mb", Type::integer, std::int64_t{512}, 1, std::int64_t{1} << 30, {},
           "The model's expected memory, in MiB: its sandbox's memory limit and its share of the pool's budget."});
    s.add({"pit.models.*.max_instances", Type::integer, std::int64_t{1}, 1, 64, {},
           "Most instances of this model the pool keeps loaded."});
    s.add({"pit.models.*.max_users", Type::integer, std::int64_t{1}, 1, 1024, {},
           "Leases one instance serves at the same time."});
    s.add({"pit.models.*.pinned", Type::boolean, false, {}, {}, {},
           "Keep one instance loaded from start and never evict it."});
    s.add({"stage.system_dirs", Type::string_list, config::StringList{SYMPHONY_DATADIR "/extensions"}, {}, {}, {},
           "Read-only directories of bundled extensions (one subdirectory per extension), searched after stage.dir."});
    s.add({"stage.dir", Type::string, std::string(""), {}, {}, {},
           "Where symphonyctl ext install puts extensions; empty means <daemon.state_dir>/extensions."});
    s.add({"stage.python_sdk_dir", Type::string, std::string(SYMPHONY_DATADIR "/python"), {}, {}, {},
           "The Python extension SDK's directory: bound read-only into every extension's sandbox and put on PYTHONPATH."});
    s.add({"stage.heartbeat_ms", Type::integer, std::int64_t{1000}, 10, 600'000, {},
           "How often an extension instance sends ext.heartbeat, in milliseconds (told in the handshake)."});
    s.add({"stage.heartbeat_timeout_ms", Type::integer, std::int64_t{5000}, 50, 3'600'000, {},
           "An instance silent this long is considered hung and is killed, in milliseconds."});
    s.add({"stage.handshake_timeout_ms", Type::integer, std::int64_t{10'000}, 50, 600'000, {},
           "How long a new instance has to send ext.hello, in milliseconds."});
    s.add({"stage.cancel_grace_ms", Type::integer, std::int64_t{2000}, 0, 600'000, {},
           "How long an instance has to answer step.cancel or ext.shutdown before it is killed, in milliseconds."});
    s.add({"stage.idle_timeout_s", Type::integer, std::int64_t{300}, 0, 86'400, {},
           "Idle extension instances are shut down after this many seconds; 0 keeps them."});
    s.add({"stage.max_instances", Type::integer, std::int64_t{4}, 1, 256, {},
           "Most instances of one extension version (per workspace) running at once."});
    s.add({"conductor.max_parallel", Type::integer, std::int64_t{8}, 1, 4096, {},
           "Most steps the Conductor runs at the same time, over all workflows."});
    s.add({"conductor.strategy", Type::string, std::string("parallel"), {}, {}, {"parallel", "sequential"},
           "How the Conductor schedules ready steps: parallel (critical path first) or sequential (one at a time)."});
    return s;
  }();
  return schema;
}

Result<DaemonConfig> load_daemon_config(const ConfigSources& sources) {
  config::Config cfg(daemon_schema());
  DaemonConfig out;
  out.main_file = sources.explicit_file.empty() ? sources.paths.config_file : sources.explicit_file;
  if (!sources.explicit_file.empty() && !std::filesystem::exists(sources.explicit_file)) {
    return Error(ENOENT, "config file " + sources.explicit_file.string() + " does not exist");
  }
  for (const auto& file : config::files_with_dropins(out.main_file)) {
    if (auto r = cfg.merge_file(file); !r) return std::move(r).error();
  }
  if (const char* env = std::getenv("SYMPHONY_LOOP_BACKEND"); env && *env) {
    if (auto r = cfg.set("ipc.loop_backend", env, "environment SYMPHONY_LOOP_BACKEND"); !r) {
      return std::move(r).error();
    }
  }
  for (const auto& [key, value] : sources.overrides) {
    if (auto r = cfg.set(key, value, "command line"); !r) return std::move(r).error();
  }

  out.files = cfg.files();
  out.log_level = cfg.get_string("daemon.log_level");
  out.state_dir = cfg.get_string("daemon.state_dir");
  if (out.state_dir.empty()) out.state_dir = sources.paths.state_dir.string();
  out.drain_timeout_ms = cfg.get_int("daemon.drain_timeout_ms");
  out.socket = cfg.get_string("ipc.socket");
  if (out.socket.empty()) out.socket = sources.paths.socket.string();
  out.socket_mode = static_cast<unsigned>(cfg.get_int("ipc.socket_mode"));
  out.socket_group = cfg.get_string("ipc.socket_group");
  out.loop = *ipc::parse_loop_choice(cfg.get_string("ipc.loop_backend"));  // checked by choices
  const auto& origin = cfg.origin("ipc.loop_backend");
  out.loop_origin = origin.line ? origin.source + ":" + std::to_string(origin.line) : origin.source;
  out.server.limits.max_message_size = static_cast<std::size_t>(cfg.get_int("ipc.max_message_size"));
  out.server.limits.max_depth = static_cast<std::size_t>(cfg.get_int("ipc.max_nesting_depth"));
  out.server.limits.max_container_elements =
      static_cast<std::size_t>(cfg.get_int("ipc.max_container_elements"));
  out.server.max_write_queue = static_cast<std::size_t>(cfg.get_int("ipc.max_write_queue"));
  if (out.server.max_write_queue < out.server.limits.max_message_size) {
    auto from = [&](const char* key) {
      const auto& o = cfg.origin(key);
      return o.line ? o.source + ":" + std::to_string(o.line) : o.source;
    };
    return Error::invalid("ipc.max_write_queue (" + std::to_string(out.server.max_write_queue) +
                          ", " + from("ipc.max_write_queue") +
                          ") must be at least ipc.max_message_size (" +
                          std::to_string(out.server.limits.max_message_size) + ", " +
                          from("ipc.max_message_size") + ")");
  }
  out.server.max_connections = static_cast<std::size_t>(cfg.get_int("ipc.max_connections"));
  out.server.server_name = "symphonyd";
  out.server.server_version = SYMPHONY_VERSION;
  out.server.protocol_version = SYMPHONY_PROTOCOL_VERSION;
  out.allow_users = cfg.get_list("access.allow_users");
  out.allow_groups = cfg.get_list("access.allow_groups");
  out.pit.dir = cfg.get_string("pit.dir");
  out.pit.workers = static_cast<unsigned>(cfg.get_int("pit.workers"));
  out.pit.max_artifact_size = static_cast<std::uint64_t>(cfg.get_int("pit.max_artifact_size"));
  out.pit.max_batch = static_cast<std::size_t>(cfg.get_int("pit.group_commit_max_batch"));
  out.pit.batch_delay = std::chrono::microseconds(cfg.get_int("pit.group_commit_delay_us"));
  out.pit.gc_grace = std::chrono::seconds(cfg.get_int("pit.gc_grace_s"));
  out.pit.gc_interval = std::chrono::seconds(cfg.get_int("pit.gc_interval_s"));
  out.pit.stale_interval = std::chrono::seconds(cfg.get_int("pit.stale.interval_s"));
  auto policies = pit::stale::retention_policies(cfg);
  if (!policies) return std::move(policies).error();
  out.pit.retention = std::move(*policies);
  out.pit.stale = pit::stale::stale_settings(cfg);
  out.pit.pool.host_memory_bytes = static_cast<std::uint64_t>(cfg.get_int("pit.pool.host_memory_mb")) << 20;
  out.pit.pool.health_interval = std::chrono::seconds(cfg.get_int("pit.pool.health_interval_s"));
  for (const auto& name : cfg.instances("pit.models")) {
    auto key = [&](std::string_view k) { return "pit.models." + name + "." + std::string(k); };
    ModelConfig m;
    m.name = name;
    m.command = cfg.get_list(key("command"));
    if (m.command.empty()) {
      const auto& o = cfg.origin(key("memory_mb"));
      return Error::invalid("[pit.models." + name + "]" +
                            (o.line ? " (" + o.source + ":" + std::to_string(o.line) + ")" : std::string()) +
                            ": command is missing; give the program and its arguments, e.g. command = "
                            "[\"/usr/bin/my-model\", \"--serve\"]");
    }
    m.memory_bytes = static_cast<std::uint64_t>(cfg.get_int(key("memory_mb"))) << 20;
    m.max_instances = static_cast<std::uint32_t>(cfg.get_int(key("max_instances")));
    m.max_users = static_cast<std::uint32_t>(cfg.get_int(key("max_users")));
    m.pinned = cfg.get_bool(key("pinned"));
    out.pit.pool.models.push_back(std::move(m));
  }
  out.pit.conflict_policy = cfg.get_string("pit.conflict_policy");
  out.pit.conflict_fallback = cfg.get_string("pit.conflict_merge_fallback");
  out.pit.max_chunk = std::min<std::size_t>(out.pit.max_chunk, out.server.limits.max_message_size / 2);
  for (auto& d : cfg.get_list("stage.system_dirs")) {
    if (!d.empty()) out.stage.system_dirs.push_back(d);
  }
  out.stage.dir = cfg.get_string("stage.dir");
  out.stage.python_sdk_dir = cfg.get_string("stage.python_sdk_dir");
  out.stage.heartbeat = std::chrono::milliseconds(cfg.get_int("stage.heartbeat_ms"));
  out.stage.heartbeat_timeout = std::chrono::milliseconds(cfg.get_int("stage.heartbeat_timeout_ms"));
  out.stage.handshake_timeout = std::chrono::milliseconds(cfg.get_int("stage.handshake_timeout_ms"));
  out.stage.cancel_grace = std::chrono::milliseconds(cfg.get_int("stage.cancel_grace_ms"));
  out.stage.idle_timeout = std::chrono::seconds(cfg.get_int("stage.idle_timeout_s"));
  out.stage.max_instances = static_cast<std::uint32_t>(cfg.get_int("stage.max_instances"));
  out.stage.max_parallel = static_cast<std::uint32_t>(cfg.get_int("conductor.max_parallel"));
  out.stage.strategy = cfg.get_string("conductor.strategy");
  if (out.stage.heartbeat_timeout <= out.stage.heartbeat) {
    return Error::invalid("stage.heartbeat_timeout_ms (" + std::to_string(out.stage.heartbeat_timeout.count()) +
                          ") must be greater than stage.heartbeat_ms (" +
                          std::to_string(out.stage.heartbeat.count()) + ")");
  }
  if (auto lvl = log::parse_level(out.log_level); !lvl) return std::move(lvl).error();
  return out;
}

}  // namespace symphony::daemon
