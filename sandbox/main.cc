// symphony-sandbox: runs one program in exactly the sandbox symphonyd gives
// an extension, with a flag for each permission and limit, so extension
// authors can try their programs (and operators can see what a host
// supports: `symphony-sandbox info`).
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "sandbox/cgroup.h"
#include "symphony_build_config.h"
#include "sandbox/gpu.h"
#include "sandbox/linux_launcher.h"

extern char** environ;

namespace sb = symphony::sandbox;

namespace {

constexpr int kLauncherFailed = 125;

std::optional<std::uint64_t> parse_bytes(const std::string& text, std::string& error) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    error = "'" + text + "' is not a size (e.g. 512M, 2G, 65536)";
    return std::nullopt;
  }
  std::string suffix = text.substr(used);
  double scale = 1;
  if (suffix == "K" || suffix == "k" || suffix == "KiB") scale = 1024.0;
  else if (suffix == "M" || suffix == "MiB") scale = 1024.0 * 1024;
  else if (suffix == "G" || suffix == "GiB") scale = 1024.0 * 1024 * 1024;
  else if (!suffix.empty()) {
    error = "'" + text + "': unknown size suffix '" + suffix + "' (K, M, G)";
    return std::nullopt;
  }
  if (!(value >= 0) || std::isinf(value)) {
    error = "'" + text + "' is not a non-negative size";
    return std::nullopt;
  }
  return static_cast<std::uint64_t>(value * scale);
}

bool covered(const std::string& path, const std::vector<sb::Bind>& binds) {
  for (const char* runtime : {"/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/"}) {
    if (path.rfind(runtime, 0) == 0) return true;
  }
  for (const auto& b : binds) {
    if (path == b.path || path.rfind(b.path + "/", 0) == 0) return true;
  }
  return false;
}

int info() {
  std::cout << "symphony-sandbox " << SYMPHONY_VERSION << "\n";
  auto host = sb::detect_cgroup_host();
  if (host) {
    std::cout << "cgroup layout: " << sb::to_string(host->layout) << "\n";
  } else {
    std::cout << "cgroup layout: unknown (" << host.error().message() << ")\n";
  }
  auto launcher = sb::make_launcher({});
  if (launcher) {
    std::cout << "launcher: " << (*launcher)->describe() << "\n";
  } else {
    std::cout << "launcher: unavailable (" << launcher.error().message() << ")\n";
  }
  auto gpu = sb::discover_gpu_devices({});
  std::cout << "gpu devices: " << (gpu.nodes.empty() ? "none" : "") ;
  for (std::size_t i = 0; i < gpu.nodes.size(); ++i) std::cout << (i ? ", " : "") << gpu.nodes[i];
  if (!gpu.note.empty()) std::cout << " (" << gpu.note << ")";
  std::cout << "\n";
  auto nvml = sb::load_nvml();
  std::cout << "nvml: " << (nvml ? (*nvml)->describe() : "unavailable: " + nvml.error().message())
            << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Run a program in the sandbox symphonyd gives extensions"};
  app.require_subcommand(1);
  app.set_version_flag("--version", SYMPHONY_VERSION);

  auto* run = app.add_subcommand("run", "Run PROGRAM ARGS… in a new sandbox");
  std::vector<std::string> ro, rw, devices, caps, env, command;
  bool net = false, gpu = false, seccomp_log = false, json_status = false, timings = false;
  std::vector<unsigned> gpu_devices;
  std::string memory, swap, fsize, address_space, gpu_memory, cwd = "/", hostname = "sandbox", name = "cli";
  std::optional<double> cpu, timeout;
  std::optional<std::uint64_t> pids, nofile, nproc;
  std::optional<std::uint32_t> uid, gid;
  run->add_option("--ro", ro, "Grant PATH read-only (repeatable)")->type_name("PATH")
      ->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  run->add_option("--rw", rw, "Grant PATH read-write (repeatable)")->type_name("PATH")
      ->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  run->add_flag("--net", net, "Grant the host network (default: a private loopback only)");
  run->add_flag("--gpu", gpu, "Grant the GPUs: /dev/nvidia*, /dev/dri, CUDA_VISIBLE_DEVICES");
  run->add_option("--gpu-device", gpu_devices, "Grant only GPU N (repeatable; implies --gpu)")
      ->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  run->add_option("--device", devices, "Grant a device node (repeatable)")->type_name("PATH")
      ->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  run->add_option("--cap", caps, "Grant a capability (only net_bind_service: ports below 1024 in the sandbox's own network)")
      ->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  run->add_option("--memory", memory, "Memory limit (512M, 2G…); OOM beyond it")->type_name("BYTES");
  run->add_option("--swap", swap, "Swap allowed beyond --memory (default 0)")->type_name("BYTES");
  run->add_option("--gpu-memory", gpu_memory,
                  "GPU memory limit (sampled through NVML; implies nothing without --gpu)")
      ->type_name("BYTES");
  run->add_option("--cpu", cpu, "CPU quota in CPUs (0.5 = half a core)")->type_name("FRACTION");
  run->add_option("--pids", pids, "Tasks limit (fork bombs stop here)")->type_name("N");
  run->add_option("--nofile", nofile, "Open files limit (RLIMIT_NOFILE)")->type_name("N");
  run->add_option("--nproc", nproc, "RLIMIT_NPROC (per uid; prefer --pids)")->type_name("N");
  run->add_option("--fsize", fsize, "Largest file the program may write")->type_name("BYTES");
  run->add_option("--as", address_space, "Address-space limit (RLIMIT_AS)")->type_name("BYTES");
  run->add_option("--timeout", timeout, "Kill after SECONDS of wall time")->type_name("SECONDS");
  run->add_flag("--seccomp-log", seccomp_log,
                "Log system calls outside the allow-list instead of killing (for authors)");
  run->add_flag("--json-status", json_status, "Print the exit report as JSON on stdout at the end");
  run->add_flag("--timings", timings, "Print where the spawn's time went, step by step, on stderr");
  run->add_option("--env", env, "Set KEY=VALUE in the program's environment (repeatable)")
      ->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  run->add_option("--cwd", cwd, "Working directory inside the sandbox (default /)");
  run->add_option("--hostname", hostname, "Host name inside the sandbox");
  run->add_option("--name", name, "Name for logs and the cgroup");
  run->add_option("--uid", uid, "Host uid to run as (root launcher only; default 65534)");
  run->add_option("--gid", gid, "Host gid to run as (root launcher only; default 65534)");
  run->add_option("command", command, "PROGRAM ARGS… (after --)")->expected(-1);

  auto* info_cmd = app.add_subcommand("info", "Show what this host's sandbox can do");

  // Everything after the first "--" is the program and its arguments,
  // untouched: split it off before CLI11 sees it, so that no option of ours
  // can swallow a "--" or a program's own "-c".
  std::vector<std::string> args(argv + 1, argv + argc);
  auto dashes = std::find(args.begin(), args.end(), "--");
  std::vector<std::string> after_dashes;
  if (dashes != args.end()) {
    after_dashes.assign(dashes + 1, args.end());
    args.erase(dashes, args.end());
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes a reversed vector
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; a usage error exits 2, as documented.
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (info_cmd->parsed()) return info();
  command.insert(command.end(), after_dashes.begin(), after_dashes.end());
  if (command.empty()) {
    std::cerr << "symphony-sandbox run: no program given (symphony-sandbox run [OPTIONS] -- PROGRAM ARGS…)\n";
    return 2;
  }

  sb::Spec spec;
  spec.argv = command;
  spec.cwd = cwd;
  spec.hostname = hostname;
  spec.name = name;
  spec.uid = uid;
  spec.gid = gid;
  spec.seccomp = seccomp_log ? sb::SeccompMode::log : sb::SeccompMode::enforce;
  // Defaults, then --env in order: a later KEY= replaces an earlier one.
  std::vector<std::string> environment = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp",
                                          "LANG=C.UTF-8"};
  if (const char* term = getenv("TERM")) environment.push_back(std::string("TERM=") + term);
  environment.insert(environment.end(), env.begin(), env.end());
  for (const auto& entry : environment) {
    auto key = entry.substr(0, entry.find('=') + 1);
    auto same = std::find_if(spec.env.begin(), spec.env.end(),
                             [&](const std::string& e) { return e.rfind(key, 0) == 0; });
    if (same != spec.env.end()) *same = entry;
    else spec.env.push_back(entry);
  }
  for (const auto& p : ro) spec.permissions.binds.push_back({p, sb::Access::read_only});
  for (const auto& p : rw) spec.permissions.binds.push_back({p, sb::Access::read_write});
  // The program named by absolute path is made visible read-only, so
  // `symphony-sandbox run ./build/tool` works without a separate --ro.
  // A path already visible inside (/bin/sh) is run as named; another one
  // (./build/tool) is run by its resolved path.
  char resolved[PATH_MAX];
  if (!command.empty() && command[0].find('/') != std::string::npos &&
      realpath(command[0].c_str(), resolved)) {
    bool visible = command[0].front() == '/' && covered(command[0], spec.permissions.binds);
    if (!visible) {
      if (!covered(resolved, spec.permissions.binds)) {
        spec.permissions.binds.push_back({resolved, sb::Access::read_only});
      }
      spec.argv[0] = resolved;
    }
  }
  spec.permissions.network = net;
  spec.permissions.gpu = gpu || !gpu_devices.empty();
  spec.permissions.gpu_devices = gpu_devices;
  spec.permissions.devices = devices;
  for (const auto& c : caps) {
    auto cap = sb::parse_capability(c);
    if (!cap) {
      std::cerr << "symphony-sandbox: --cap: " << cap.error().message() << "\n";
      return 2;
    }
    spec.permissions.capabilities.push_back(*cap);
  }
  std::string error;
  auto size_option = [&](const std::string& text, const char* flag,
                         std::optional<sb::Bytes>& out) -> bool {
    if (text.empty()) return true;
    auto v = parse_bytes(text, error);
    if (!v) {
      std::cerr << "symphony-sandbox: " << flag << ": " << error << "\n";
      return false;
    }
    out = sb::Bytes{*v};
    return true;
  };
  if (!size_option(memory, "--memory", spec.limits.memory) ||
      !size_option(swap, "--swap", spec.limits.swap) ||
      !size_option(fsize, "--fsize", spec.limits.file_size) ||
      !size_option(address_space, "--as", spec.limits.address_space) ||
      !size_option(gpu_memory, "--gpu-memory", spec.limits.gpu_memory)) {
    return 2;
  }
  spec.limits.cpu = cpu;
  spec.limits.pids = pids;
  spec.limits.open_files = nofile;
  spec.limits.processes = nproc;
  if (timeout) {
    if (!(*timeout > 0)) {
      std::cerr << "symphony-sandbox: --timeout: must be positive\n";
      return 2;
    }
    spec.limits.timeout = std::chrono::milliseconds(static_cast<long>(std::ceil(*timeout * 1000)));
  }

  auto finish = [&](const sb::ExitReport& report) {
    if (json_status) {
      std::fflush(stdout);
      std::cout << report.to_json() << std::endl;
    } else if (report.reason != sb::ExitReason::exited) {
      std::cerr << "symphony-sandbox: " << report.message << "\n";
    }
    for (const auto& call : report.seccomp_log) {
      if (!json_status) std::cerr << "symphony-sandbox: seccomp log: " << call << "\n";
    }
    return report.shell_status();
  };

  auto launcher = sb::make_launcher({});
  if (!launcher) {
    std::cerr << "symphony-sandbox: " << launcher.error().message() << "\n";
    return kLauncherFailed;
  }
  auto child = (*launcher)->spawn(spec);
  if (!child) return finish(sb::setup_failed_report(child.error()));
  if (timings) {
    for (const auto& t : (*launcher)->last_timings()) {
      std::fprintf(stderr, "%-18s %8.1f us\n", t.step.c_str(), static_cast<double>(t.took.count()) / 1000.0);
    }
  }
  return finish((*child)->wait());
}
