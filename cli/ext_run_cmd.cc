// symphonyctl ext run: one step of an uninstalled extension, in its sandbox.
#include "cli/ext_run_cmd.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/msgpack_json.h"
#include "sandbox/linux_launcher.h"
#include "stage/instance.h"
#include "symphony_build_config.h"

namespace symphony::cli {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct ExtRunArgs {
  std::string dir;
  std::string capability;
  std::string workspace;
  std::vector<std::string> params;
  std::vector<std::string> inputs;  // NAME=ARTIFACT[@V]
  std::string output_dir;
  std::string sdk = SYMPHONY_DATADIR "/python";
  unsigned timeout_s = 0;
  bool seccomp_log = false;
};

// "K=V": V as JSON when it parses (3, true, [1], "x"), else as text.
Result<std::pair<std::string, json>> parse_param(const std::string& kv) {
  auto eq = kv.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Error::invalid("--param '" + kv + "': expected K=V");
  }
  std::string v = kv.substr(eq + 1);
  json value = json::parse(v, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = v;
  return std::pair{kv.substr(0, eq), value};
}

int cmd_ext_run(const Globals& g, const ExtRunArgs& a) {
  auto manifest = stage::load_manifest(fs::path(a.dir) / "extension.toml");
  if (!manifest) return fail(manifest.error());
  const stage::Capability* cap = manifest->find_capability(a.capability);
  if (cap == nullptr) {
    std::string known;
    for (const auto& c : manifest->capabilities) known += (known.empty() ? "" : ", ") + c.name;
    std::fprintf(stderr, "symphonyctl: %s provides no capability '%s' (it provides: %s)\n", manifest->id.c_str(),
                 a.capability.c_str(), known.c_str());
    return kUsage;
  }
  std::error_code ec;
  fs::path ws = fs::canonical(a.workspace.empty() ? fs::current_path(ec) : fs::path(a.workspace), ec);
  if (ec || !fs::is_directory(ws)) {
    std::fprintf(stderr, "symphonyctl: workspace %s is not a directory\n", a.workspace.c_str());
    return kUsage;
  }
  stage::StepCall call;
  call.step = "ext-run/" + a.capability + "#1";
  call.capability = a.capability;
  call.workspace = ws.string();
  json params = json::object();
  for (const auto& kv : a.params) {
    auto p = parse_param(kv);
    if (!p) {
      fail(p.error());
      return kUsage;
    }
    params[p->first] = p->second;
  }
  std::vector<std::string> input_names;
  // Inputs come from the local daemon's store.
  std::optional<ipc::Client> client;
  for (const auto& spec : a.inputs) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "symphonyctl: --input '%s': expected NAME=ARTIFACT[@VERSION]\n", spec.c_str());
      return kUsage;
    }
    if (!client) {
      int exit = 0;
      client = open(g, exit);
      if (!client) return exit;
    }
    std::string name = spec.substr(0, eq), ref = spec.substr(eq + 1);
    auto info = client->call("artifact.get", ref);
    if (!info) return fail(info.error());
    json meta = to_json(info->get());
    std::string data;
    for (std::uint64_t offset = 0;;) {
      auto chunk = client->call("artifact.read", ref, offset, std::uint64_t{1} << 20);
      if (!chunk) return fail(chunk.error());
      const msgpack::object* d = ipc::map_get(chunk->get(), "data");
      if (d == nullptr || d->type != msgpack::type::BIN || d->via.bin.size == 0) break;
      data.append(d->via.bin.ptr, d->via.bin.size);
      offset += d->via.bin.size;
    }
    stage::StepInput in;
    in.name = name;
    in.items.push_back({meta.value("ref", ref), meta.value("digest", ""), meta.value("media_type", ""), data});
    call.inputs.push_back(std::move(in));
    input_names.push_back(name);
  }
  auto checked = stage::check_params(*cap, params, input_names);
  if (!checked) {
    fail(checked.error());
    return kUsage;
  }
  call.params = *checked;
  if (a.timeout_s) call.timeout = std::chrono::seconds(a.timeout_s);
  else call.timeout = manifest->limits.timeout;

  auto launcher = sandbox::make_launcher({});
  if (!launcher) return fail(launcher.error());
  stage::InstanceOptions options;
  options.symphony_version = SYMPHONY_VERSION;
  options.python_sdk_dir = a.sdk;
  options.seccomp_log = a.seccomp_log;
  options.on_output = [](std::string_view line) {
    std::fprintf(stderr, "ext: %.*s\n", static_cast<int>(line.size()), line.data());
  };
  std::fprintf(stderr, "starting %s %s in its sandbox (workspace %s)\n", manifest->id.c_str(),
               stage::to_string(manifest->version).c_str(), ws.c_str());
  auto instance = stage::Instance::start(**launcher, *manifest, ws, options);
  if (!instance) return fail(instance.error());
  stage::StepEvents events;
  events.progress = [](double f, std::string_view m) {
    std::fprintf(stderr, "progress %3d%% %.*s\n", static_cast<int>(f * 100), static_cast<int>(m.size()), m.data());
  };
  events.log = [](std::string_view level, std::string_view m) {
    std::fprintf(stderr, "[%.*s] %.*s\n", static_cast<int>(level.size()), level.data(), static_cast<int>(m.size()),
                 m.data());
  };
  auto outcome = (*instance)->run(call, events);
  (*instance)->shutdown();
  int rc = kOk;
  json result = json::object();
  if (auto* f = std::get_if<stage::StepFailure>(&outcome)) {
    result = {{"ok", false}, {"failure", stage::to_string(f->kind)}, {"message", f->message}, {"retryable", f->retryable}};
    if (!g.json) std::fprintf(stderr, "step failed (%s): %s\n", std::string(stage::to_string(f->kind)).c_str(), f->message.c_str());
    rc = kFailure;
  } else {
    auto& r = std::get<stage::StepResult>(outcome);
    fs::path out = a.output_dir.empty() ? fs::path("ext-run-output") : fs::path(a.output_dir);
    fs::create_directories(out, ec);
    json outputs = json::array();
    for (const auto& o : r.outputs) {
      fs::path file = out / o.name;
      std::ofstream(file, std::ios::binary) << o.data;
      outputs.push_back({{"name", o.name}, {"media_type", o.media_type}, {"bytes", o.data.size()}, {"file", file.string()}});
      if (!g.json) std::printf("output %-16s %-28s %8zu bytes → %s\n", o.name.c_str(), o.media_type.c_str(), o.data.size(), file.c_str());
    }
    result = {{"ok", true}, {"outputs", outputs}, {"summary", r.summary}};
    if (!g.json && !r.summary.is_null()) std::printf("summary: %s\n", r.summary.dump().c_str());
  }
  if (auto report = (*instance)->exit_report(); report && !report->seccomp_log.empty()) {
    result["seccomp_log"] = report->seccomp_log;
    if (!g.json) {
      std::fprintf(stderr, "system calls outside the allow-list (would be denied):");
      for (const auto& s : report->seccomp_log) std::fprintf(stderr, " %s", s.c_str());
      std::fprintf(stderr, "\n");
    }
  }
  if (g.json) std::printf("%s\n", result.dump(2).c_str());
  return rc;
}

}  // namespace

std::function<int()> add_ext_run_command(CLI::App& app, const Globals& g) {
  CLI::App* ext = app.get_subcommand("ext");
  auto a = std::make_shared<ExtRunArgs>();
  auto* run = ext->add_subcommand("run", "Run one step of the (uninstalled) extension in DIR under its manifest's sandbox");
  run->add_option("dir", a->dir, "Extension directory (holding extension.toml)")->required();
  run->add_option("capability", a->capability, "The capability to call")->required();
  run->add_option("-w,--workspace", a->workspace, "Workspace (default: the current directory)");
  run->add_option("-p,--param", a->params, "Parameter K=V (V as JSON when it parses); repeatable");
  run->add_option("-i,--input", a->inputs, "Input NAME=ARTIFACT[@VERSION] from the local daemon's store; repeatable");
  run->add_option("-o,--output-dir", a->output_dir, "Where outputs are written (default: ./ext-run-output)");
  run->add_option("--python-sdk", a->sdk, "The Python SDK directory to bind in (default: the installed one)");
  run->add_option("--timeout", a->timeout_s, "Step timeout in seconds (default: the manifest's)");
  run->add_flag("--seccomp-log", a->seccomp_log,
                "Log system calls the sandbox would deny instead of killing (lists them at the end)");
  run->fallthrough();
  return [=, &g]() -> int { return run->parsed() ? cmd_ext_run(g, *a) : -1; };
}

}  // namespace symphony::cli
