// symphonyctl: the administrator's command line for symphonyd. A thin client
// of the msgpack-rpc protocol; every command has --json output that scripts
// may rely on. Exit codes: 0 success, 1 failure, 2 usage error, 3 daemon not
// reachable, 4 not found (cli/ctl.h).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/artifact_cmd.h"
#include "cli/ext_cmd.h"
#include "cli/ext_run_cmd.h"
#include "cli/workflow_cmd.h"
#include "cli/ctl.h"
#include "cli/msgpack_json.h"
#include "base/paths.h"
#include "ipc/rpc_client.h"
#include "symphony_build_config.h"

namespace {

using namespace symphony;
using nlohmann::json;

using cli::Globals;
using cli::fail;
using cli::open;
using namespace cli;  // exit codes

std::string format_duration_ms(std::int64_t ms) {
  if (ms < 1000) return std::to_string(ms) + " ms";
  std::int64_t s = ms / 1000;
  char buf[64];
  if (s < 3600) {
    std::snprintf(buf, sizeof(buf), "%lldmin %llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%lldh %lldmin", static_cast<long long>(s / 3600),
                  static_cast<long long>((s / 60) % 60));
  }
  return buf;
}

int cmd_status(const Globals& g) {
  int exit = kOk;
  auto client = open(g, exit);
  if (!client) return exit;
  auto status = client->call("daemon.status");
  if (!status) return fail(status.error());
  json j = cli::to_json(status->get());
  if (g.json) {
    std::cout << j.dump() << "\n";
    return kOk;
  }
  auto get = [&](const char* k) { return j.contains(k) ? j[k] : json(); };
  std::cout << "symphonyd " << get("version").get<std::string>() << " (protocol "
            << get("protocol") << "), " << get("mode").get<std::string>() << " mode\n";
  std::cout << "  pid:          " << get("pid") << "\n";
  std::cout << "  uptime:       " << format_duration_ms(get("uptime_ms").get<std::int64_t>()) << "\n";
  std::cout << "  socket:       " << get("socket").get<std::string>()
            << (get("socket_activated").get<bool>() ? " (socket-activated)" : "") << "\n";
  std::string loop = get("loop_backend").get<std::string>();
  std::string why = get("loop_fallback_reason").get<std::string>();
  std::cout << "  event loop:   " << loop << (why.empty() ? "" : " (io_uring unavailable: " + why + ")")
            << "\n";
  std::cout << "  connections:  " << get("connections") << "\n";
  std::cout << "  requests:     " << get("requests") << " (" << get("protocol_errors")
            << " protocol errors, " << get("refused") << " refused)\n";
  if (j.contains("cgroup_layout")) {
    std::cout << "  cgroups:      " << get("cgroup_layout").get<std::string>() << "\n";
    std::cout << "  sandbox:      " << get("sandbox").get<std::string>() << "\n";
  }
  auto files = get("config_files");
  std::string main_file = get("config_path").get<std::string>();
  bool main_read = std::any_of(files.begin(), files.end(),
                               [&](const json& f) { return f.get<std::string>() == main_file; });
  std::cout << "  config:       " << main_file << (main_read ? "" : " (not present)") << "\n";
  for (const auto& f : files) {
    if (f.get<std::string>() != main_file) {
      std::cout << "  drop-in:      " << f.get<std::string>() << "\n";
    }
  }
  std::cout << "  state:        " << get("state_dir").get<std::string>() << "\n";
  if (j.contains("pit")) std::cout << "  pit:          " << get("pit").get<std::string>() << "\n";
  return kOk;
}

int cmd_version(const Globals& g) {
  json j = {{"client", {{"version", SYMPHONY_VERSION}, {"protocol", SYMPHONY_PROTOCOL_VERSION}}},
            {"daemon", nullptr}};
  std::string daemon_error;
  std::string address = g.socket;
  if (address.empty()) {
    auto s = default_socket(g.user ? Mode::user : Mode::system);
    if (s) {
      address = *s;
    } else {
      daemon_error = s.error().message();
    }
  }
  if (!daemon_error.empty()) {
    // No socket to try: the error says why.
  } else if (auto client = ipc::Client::connect(address)) {
    if (auto hello = client->hello("symphonyctl")) {
      json h = cli::to_json(hello->get());
      j["daemon"] = {{"version", h.value("version", "")}, {"protocol", h.value("protocol", 0)}};
    } else {
      daemon_error = hello.error().message();
    }
  } else {
    daemon_error = client.error().message();
  }
  if (g.json) {
    std::cout << j.dump() << "\n";
  } else {
    std::cout << "symphonyctl " << SYMPHONY_VERSION << " (protocol " << SYMPHONY_PROTOCOL_VERSION
              << ")\n";
    if (j["daemon"].is_null()) {
      std::cout << "symphonyd   not reachable" << (address.empty() ? "" : " at " + address) << ": "
                << daemon_error << "\n";
    } else {
      std::cout << "symphonyd   " << j["daemon"]["version"].get<std::string>() << " (protocol "
                << j["daemon"]["protocol"] << ")\n";
    }
  }
  return kOk;
}

// Nearest-rank percentile of sorted samples.
double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

int cmd_ping(const Globals& g, int count, std::size_t size) {
  int exit = kOk;
  auto client = open(g, exit);
  if (!client) return exit;
  std::vector<char> payload(size, 'x');
  msgpack::type::raw_ref raw(payload.data(), static_cast<std::uint32_t>(payload.size()));
  std::vector<double> rtts;
  rtts.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = client->call("daemon.ping", raw);
    auto t1 = std::chrono::steady_clock::now();
    if (!r) return fail(r.error());
    if (r->get().type != msgpack::type::BIN || r->get().via.bin.size != size) {
      return fail(Error(EPROTO, "daemon.ping returned a different payload"));
    }
    double us = std::chrono::duration<double, std::micro>(t1 - t0).count();
    rtts.push_back(us);
    if (!g.json) std::printf("reply from symphonyd: seq=%d size=%zu time=%.1f µs\n", i + 1, size, us);
  }
  std::vector<double> sorted = rtts;
  std::sort(sorted.begin(), sorted.end());
  double p50 = percentile(sorted, 50), p99 = percentile(sorted, 99), max = sorted.back();
  if (g.json) {
    auto round1 = [](double v) { return std::round(v * 10) / 10; };
    json j = {{"count", count},
              {"size", size},
              {"rtt_us", {{"p50", round1(p50)}, {"p99", round1(p99)}, {"max", round1(max)}}}};
    std::cout << j.dump() << "\n";
  } else {
    std::printf("--- %d pings of %zu bytes: rtt p50 %.1f µs, p99 %.1f µs, max %.1f µs\n", count,
                size, p50, p99, max);
  }
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"symphonyctl: control and inspect symphonyd"};
  app.require_subcommand(1);
  Globals g;
  app.add_flag("--json", g.json, "Machine-readable JSON output");
  app.add_option("--socket", g.socket, "Daemon socket (default: $SYMPHONY_SOCKET or the mode's)");
  app.add_flag("--user", g.user, "Talk to the per-user daemon ($XDG_RUNTIME_DIR/symphony)");
  app.set_version_flag("--version", std::string("symphonyctl ") + SYMPHONY_VERSION);

  auto* status = app.add_subcommand("status", "Show the daemon's state");
  auto* version = app.add_subcommand("version", "Show client and daemon versions");
  auto* ping = app.add_subcommand("ping", "Measure the round trip to the daemon");
  int count = 10;
  std::size_t size = 64;
  ping->add_option("-c,--count", count, "Number of pings")->check(CLI::Range(1, 10'000'000));
  ping->add_option("--size", size, "Payload bytes per ping")->check(CLI::Range(0, 8 * 1024 * 1024));
  // Global flags are accepted after the subcommand too (symphonyctl status --json).
  for (auto* sub : {status, version, ping}) sub->fallthrough();
  auto run_artifact = cli::add_artifact_commands(app, g);
  auto run_ext = cli::add_ext_commands(app, g);
  auto run_ext_run = cli::add_ext_run_command(app, g);
  auto run_workflow = cli::add_workflow_commands(app, g);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kUsage;
  }
  if (status->parsed()) return cmd_status(g);
  if (version->parsed()) return cmd_version(g);
  if (ping->parsed()) return cmd_ping(g, count, size);
  if (int rc = run_artifact(); rc >= 0) return rc;
  if (int rc = run_ext_run(); rc >= 0) return rc;
  if (int rc = run_ext(); rc >= 0) return rc;
  if (int rc = run_workflow(); rc >= 0) return rc;
  return kUsage;
}
