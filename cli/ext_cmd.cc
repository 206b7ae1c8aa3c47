// The ext commands. Everything shown comes from the daemon's extension map
// (docs/protocol.md, "Extensions") turned into JSON; the summary an install
// prints before asking is built from the local manifest in the same shape,
// so the prompt and `ext info` describe permissions in the same words.
#include "cli/ext_cmd.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/msgpack_json.h"
#include "stage/manifest.h"

namespace symphony::cli {
namespace {

using nlohmann::json;

// {"scope": …} or {"scope": …, "force": …}: the options of ext.install and
// ext.remove (docs/protocol.md).
struct ScopeOptions {
  std::string scope;
  std::optional<bool> force;
  template <class Packer>
  void msgpack_pack(Packer& pk) const {
    pk.pack_map(1 + (force ? 1 : 0));
    pk.pack(std::string_view("scope"));
    pk.pack(scope);
    if (force) {
      pk.pack(std::string_view("force"));
      pk.pack(*force);
    }
  }
};

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// 268435456 -> "256 MiB"; 1536 -> "1.5 KiB".
std::string human_bytes(std::uint64_t n) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0 || v == std::floor(v)) {
    std::snprintf(buf, sizeof(buf), "%.0f %s", v, units[u]);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f %s", v, units[u]);
  }
  return buf;
}

std::string human_ms(std::int64_t ms) {
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + " h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + " min";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms) + " ms";
}

// The local manifest in the daemon's shape (the keys the summary reads).
json manifest_json(const stage::Manifest& m) {
  json fs = json::array();
  for (const auto& g : m.permissions.filesystem) {
    std::string path = !g.in_workspace  ? g.path
                       : g.path.empty() ? "workspace"
                                        : "workspace/" + g.path;
    fs.push_back(
        {{"path", path}, {"access", g.access == sandbox::Access::read_write ? "rw" : "ro"}});
  }
  auto opt = [](const auto& v) { return v ? json(*v) : json(); };
  return {{"id", m.id},
          {"version", stage::to_string(m.version)},
          {"kind", stage::to_string(m.kind)},
          {"permissions",
           {{"filesystem", fs},
            {"network", m.permissions.network},
            {"gpu", m.permissions.gpu},
            {"devices", m.permissions.devices}}},
          {"limits",
           {{"cpu", opt(m.limits.cpu)},
            {"memory", m.limits.memory ? json(m.limits.memory->value) : json()},
            {"pids", opt(m.limits.pids)},
            {"timeout_ms", m.limits.timeout ? json(m.limits.timeout->count()) : json()},
            {"gpu_memory", m.limits.gpu_memory ? json(m.limits.gpu_memory->value) : json()}}}};
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += sep;
    out += p;
  }
  return out;
}

// "read-write access to the workspace", "read-only /usr/share/dict".
std::vector<std::string> describe_files(const json& permissions) {
  std::vector<std::string> out;
  for (const auto& g : permissions.value("filesystem", json::array())) {
    std::string path = str(g, "path");
    std::string access = str(g, "access") == "rw" ? "read-write" : "read-only";
    if (path == "workspace") {
      out.push_back(access + " access to the workspace");
    } else if (path.starts_with("workspace/")) {
      out.push_back(access + " access to " + path.substr(10) + " in the workspace");
    } else {
      out.push_back(access + " " + path);
    }
  }
  if (out.empty()) out.push_back("no files");
  return out;
}

std::string describe_devices(const json& permissions) {
  std::vector<std::string> devices;
  for (const auto& d : permissions.value("devices", json::array()))
    devices.push_back(d.get<std::string>());
  return devices.empty() ? "none" : join(devices, ", ");
}

// "memory 256 MiB, cpu 0.5, pids 64, timeout 5 min", or "host defaults".
std::string describe_limits(const json& limits) {
  std::vector<std::string> out;
  auto has = [&](const char* k) { return limits.contains(k) && !limits[k].is_null(); };
  if (has("memory")) out.push_back("memory " + human_bytes(limits["memory"].get<std::uint64_t>()));
  if (has("cpu")) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "cpu %g", limits["cpu"].get<double>());
    out.push_back(buf);
  }
  if (has("pids")) out.push_back("pids " + std::to_string(limits["pids"].get<std::uint64_t>()));
  if (has("timeout_ms"))
    out.push_back("timeout " + human_ms(limits["timeout_ms"].get<std::int64_t>()));
  if (has("gpu_memory"))
    out.push_back("GPU memory " + human_bytes(limits["gpu_memory"].get<std::uint64_t>()));
  return out.empty() ? "the host's defaults" : join(out, ", ");
}

// One line: what the extension asks for.
std::string describe_requests(const json& e) {
  const json& p = e.at("permissions");
  std::vector<std::string> parts = describe_files(p);
  parts.push_back(std::string("network: ") + (p.value("network", false) ? "yes" : "no"));
  parts.push_back(std::string("GPU: ") + (p.value("gpu", false) ? "yes" : "no"));
  parts.push_back("devices: " + describe_devices(p));
  parts.push_back("limits: " + describe_limits(e.value("limits", json::object())));
  return str(e, "id") + " " + str(e, "version") + " (" + str(e, "kind") +
         ") requests: " + join(parts, "; ");
}

std::string scope_label(const json& e) {
  std::string s = e.value("bundled", false) ? "bundled" : str(e, "scope");
  if (e.value("shadowed", false)) s += " (shadowed)";
  return s;
}

// Asks on the terminal; true for y/yes.
bool confirm(const std::string& question) {
  std::printf("%s [y/N] ", question.c_str());
  std::fflush(stdout);
  std::string answer;
  if (!std::getline(std::cin, answer)) return false;
  return answer == "y" || answer == "Y" || answer == "yes" || answer == "Yes";
}

struct InstallArgs {
  std::string dir;
  bool user = false;
  bool force = false;
  bool yes = false;
};

int cmd_install(const Globals& g, const InstallArgs& a) {
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::absolute(a.dir, ec).lexically_normal();
  if (ec) return fail(Error(ec.value(), "ext install: " + a.dir));
  // The daemon checks it again (on its own copy); reading it here lets the
  // user see what is asked for before anything is sent.
  auto manifest = stage::load_manifest(dir / "extension.toml");
  if (!manifest) return fail(manifest.error());
  json local = manifest_json(*manifest);
  if (!g.json) {
    std::printf("%s\n", describe_requests(local).c_str());
    if (!a.yes && ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO) && !confirm("Install?")) {
      std::fprintf(stderr, "symphonyctl: not installed\n");
      return kFailure;
    }
  }
  int exit = kOk;
  auto client = open(g, exit);
  if (!client) return exit;
  std::string path = dir.string();
  auto r = client->call("ext.install", path, ScopeOptions{a.user ? "user" : "system", a.force});
  if (!r) return fail(r.error());
  json e = to_json(r->get());
  if (g.json) {
    std::cout << e.dump() << "\n";
    return kOk;
  }
  std::string previous =
      e.contains("previous") && e["previous"].is_string() ? e["previous"].get<std::string>() : "";
  std::printf("installed %s %s%s%s\n", str(e, "id").c_str(), str(e, "version").c_str(),
              str(e, "scope") == "user" ? " for you only" : "",
              previous.empty() ? "" : (" (replaces " + previous + ")").c_str());
  return kOk;
}

int cmd_ls(const Globals& g) {
  int exit = kOk;
  auto client = open(g, exit);
  if (!client) return exit;
  auto r = client->call("ext.ls");
  if (!r) return fail(r.error());
  json list = to_json(r->get());
  if (g.json) {
    std::cout << list.dump() << "\n";
    return kOk;
  }
  if (list.empty()) {
    std::printf("no extensions installed\n");
    return kOk;
  }
  std::size_t w = 2;
  for (const auto& e : list) w = std::max(w, str(e, "id").size());
  std::printf("%-*s  %-12s  %-10s  %-18s  %-7s  %s\n", static_cast<int>(w), "ID", "VERSION", "KIND",
              "SCOPE", "ENABLED", "CAPABILITIES");
  for (const auto& e : list) {
    std::printf("%-*s  %-12s  %-10s  %-18s  %-7s  %zu\n", static_cast<int>(w), str(e, "id").c_str(),
                str(e, "version").c_str(), str(e, "kind").c_str(), scope_label(e).c_str(),
                e.value("enabled", false) ? "yes" : "no",
                e.value("capabilities", json::array()).size());
  }
  return kOk;
}

void print_info(const json& e) {
  std::printf("%s %s (%s)\n", str(e, "id").c_str(), str(e, "version").c_str(),
              str(e, "kind").c_str());
  if (!str(e, "description").empty())
    std::printf("  description:  %s\n", str(e, "description").c_str());
  std::printf("  scope:        %s\n", scope_label(e).c_str());
  std::printf("  enabled:      %s\n", e.value("enabled", false) ? "yes" : "no");
  std::printf("  directory:    %s\n", str(e, "dir").c_str());
  std::printf("  symphony:     %s\n", str(e, "symphony").c_str());
  std::printf("  activation:   %s\n",
              str(e, "activation") == "start" ? "at daemon start" : "on demand");
  std::vector<std::string> others;
  for (const auto& v : e.value("other_versions", json::array()))
    others.push_back(v.get<std::string>());
  if (!others.empty()) std::printf("  other versions on disk: %s\n", join(others, ", ").c_str());
  const json& p = e.at("permissions");
  std::printf("  permissions:\n");
  std::printf("    files:      %s\n", join(describe_files(p), "; ").c_str());
  std::printf("    network:    %s\n", p.value("network", false) ? "yes" : "no");
  std::printf("    GPU:        %s\n", p.value("gpu", false) ? "yes" : "no");
  std::printf("    devices:    %s\n", describe_devices(p).c_str());
  std::printf("  limits:       %s\n", describe_limits(e.value("limits", json::object())).c_str());
  const json caps = e.value("capabilities", json::array());
  std::printf("  capabilities:%s\n", caps.empty() ? " none" : "");
  for (const auto& c : caps) {
    std::string desc = str(c, "description");
    std::printf("    %s%s\n", str(c, "name").c_str(), desc.empty() ? "" : ("  " + desc).c_str());
    for (const auto& prm : c.value("params", json::array())) {
      std::string line = str(prm, "name") + ": " + str(prm, "type");
      if (prm.value("required", false)) line += ", required";
      if (prm.contains("default")) line += ", default " + prm["default"].dump();
      if (!str(prm, "description").empty()) line += "  " + str(prm, "description");
      std::printf("      %s\n", line.c_str());
    }
    for (const auto& o : c.value("outputs", json::array())) {
      std::printf("      -> %s (%s)\n", str(o, "name").c_str(), str(o, "media_type").c_str());
    }
  }
}

int cmd_info(const Globals& g, const std::string& id) {
  int exit = kOk;
  auto client = open(g, exit);
  if (!client) return exit;
  auto r = client->call("ext.info", id);
  if (!r) return fail(r.error());
  json e = to_json(r->get());
  if (g.json) {
    std::cout << e.dump() << "\n";
  } else {
    print_info(e);
  }
  return kOk;
}

// ext enable / disable / remove: one call, one line.
int cmd_change(const Globals& g, const std::string& method, const std::string& id, bool user) {
  int exit = kOk;
  auto client = open(g, exit);
  if (!client) return exit;
  auto r = user ? client->call(method, id, ScopeOptions{"user", std::nullopt})
                : client->call(method, id);
  if (!r) return fail(r.error());
  json e = to_json(r->get());
  if (g.json) {
    std::cout << e.dump() << "\n";
    return kOk;
  }
  std::string where = e.value("bundled", false)   ? "bundled"
                      : str(e, "scope") == "user" ? "for you"
                                                  : "system-wide";
  if (method == "ext.remove") {
    std::printf("removed %s %s (%s)\n", str(e, "id").c_str(), str(e, "version").c_str(),
                where.c_str());
  } else {
    std::printf("%s %s %s (%s)\n", method == "ext.enable" ? "enabled" : "disabled",
                str(e, "id").c_str(), str(e, "version").c_str(), where.c_str());
  }
  return kOk;
}

}  // namespace

std::function<int()> add_ext_commands(CLI::App& app, const Globals& g) {
  auto* ext = app.add_subcommand("ext", "Install and manage extensions");
  ext->require_subcommand(1);
  auto install = std::make_shared<InstallArgs>();
  auto* c_install = ext->add_subcommand(
      "install", "Install the extension in DIR (the directory holding extension.toml)");
  c_install->add_option("dir", install->dir, "Extension directory")->required();
  c_install->add_flag("--user", install->user,
                      "Install for yourself only (default: for everyone, needs root)");
  c_install->add_flag("--force", install->force,
                      "Replace the files of a version that is already installed");
  c_install->add_flag("-y,--yes", install->yes, "Do not ask before installing");
  auto id = std::make_shared<std::string>();
  auto user = std::make_shared<bool>(false);
  auto* c_ls = ext->add_subcommand("ls", "List the extensions you can use");
  auto* c_info =
      ext->add_subcommand("info", "Show an extension: capabilities, permissions, limits, versions");
  c_info->add_option("id", *id, "Extension id")->required();
  auto* c_enable = ext->add_subcommand("enable", "Enable an extension");
  c_enable->add_option("id", *id, "Extension id")->required();
  auto* c_disable =
      ext->add_subcommand("disable", "Disable an extension (its steps are refused until enabled)");
  c_disable->add_option("id", *id, "Extension id")->required();
  auto* c_remove = ext->add_subcommand("remove", "Remove every installed version of an extension");
  c_remove->add_option("id", *id, "Extension id")->required();
  c_remove->add_flag(
      "--user", *user,
      "Remove your own install (default: yours if you have one, else the system-wide one)");
  for (auto* sub : {ext, c_install, c_ls, c_info, c_enable, c_disable, c_remove})
    sub->fallthrough();

  return [=, &g]() -> int {
    if (c_install->parsed()) return cmd_install(g, *install);
    if (c_ls->parsed()) return cmd_ls(g);
    if (c_info->parsed()) return cmd_info(g, *id);
    if (c_enable->parsed()) return cmd_change(g, "ext.enable", *id, false);
    if (c_disable->parsed()) return cmd_change(g, "ext.disable", *id, false);
    if (c_remove->parsed()) return cmd_change(g, "ext.remove", *id, *user);
    return -1;
  };
}

}  // namespace symphony::cli
