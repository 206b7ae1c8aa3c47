// Sandbox start-up against bubblewrap, side by side in one run (TARGETS.md):
// the same /bin/true through `bwrap --unshare-all --die-with-parent
// --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp`, through a full
// Symphony spawn (all namespaces, seccomp, cgroup, capabilities), and
// through the zygote's pre-forked shells.
// spawn() returns once the program has been exec'd (its first instruction);
// bwrap's figure is its whole run, since nothing finer can be seen from
// outside it, so the comparison favours bwrap. exit_p50_us adds the wait
// for /bin/true's exit and the teardown. Ends with the ratios and the per-step breakdown of
// the full spawn.
#include <benchmark/benchmark.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "sandbox/linux_launcher.h"

extern char** environ;

namespace sb = symphony::sandbox;

namespace {

using Clock = std::chrono::steady_clock;

double p50_us(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Each sample starts on a settled machine: the previous sandbox's teardown
// continues asynchronously in the kernel (a network namespace is destroyed by
// a kernel worker, RCU callbacks run), and charging that to the next spawn
// would measure back-to-back churn, not a spawn. Applied to every loop,
// bwrap's included, outside the timed region.
constexpr auto kSettle = std::chrono::milliseconds(20);
void settle() { usleep(static_cast<useconds_t>(std::chrono::microseconds(kSettle).count())); }

void run_process(const std::vector<const char*>& argv) {
  pid_t pid = 0;
  std::vector<char*> args;
  for (const char* a : argv) args.push_back(const_cast<char*>(a));
  args.push_back(nullptr);
  if (posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) {
    std::perror("posix_spawn");
    std::abort();
  }
  int status = 0;
  waitpid(pid, &status, 0);
}

void BM_ForkExecTrue(benchmark::State& state) {
  std::vector<double> samples;
  for (auto _ : state) {
    state.PauseTiming();
    settle();
    state.ResumeTiming();
    auto t0 = Clock::now();
    run_process({"/bin/true"});
    samples.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  state.counters["p50_us"] = p50_us(samples);
}

void BM_Bwrap(benchmark::State& state) {
  if (access("/usr/bin/bwrap", X_OK) != 0) {
    state.SkipWithError("bubblewrap is not installed (apt-get install bubblewrap)");
    return;
  }
  std::vector<double> samples;
  for (auto _ : state) {
    state.PauseTiming();
    settle();
    state.ResumeTiming();
    auto t0 = Clock::now();
    run_process({"/usr/bin/bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
                 "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "/bin/true"});
    samples.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  state.counters["p50_us"] = p50_us(samples);
}

sb::Spec true_spec(bool limits) {
  sb::Spec spec;
  spec.argv = {"/bin/true"};
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.name = "bench";
  if (limits) {
    spec.limits.cpu = 1.0;
    spec.limits.memory = sb::Bytes{256u << 20};
    spec.limits.pids = 64;
  }
  return spec;
}

std::map<std::string, std::vector<double>> g_steps;
std::map<std::string, std::vector<double>> g_zygote_steps;

void spawn_loop(benchmark::State& state, sb::Launcher& launcher,
                std::map<std::string, std::vector<double>>* record_steps) {
  auto spec = true_spec(state.range(0) != 0);
  std::vector<double> samples;
  std::vector<double> to_exit;
  for (auto _ : state) {
    // A warm pool is the zygote's steady state; filling it is not a spawn.
    state.PauseTiming();
    launcher.prewarm();
    settle();
    state.ResumeTiming();
    auto t0 = Clock::now();
    auto child = launcher.spawn(spec);
    auto t1 = Clock::now();
    if (!child) {
      state.SkipWithError(child.error().message().c_str());
      return;
    }
    auto report = (*child)->wait();
    child->reset();
    samples.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    to_exit.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (report.reason != sb::ExitReason::exited || report.exit_code != 0) {
      state.SkipWithError(("unexpected exit: " + report.message).c_str());
      return;
    }
    if (record_steps) {
      for (const auto& t : launcher.last_timings()) {
        (*record_steps)[t.step].push_back(std::chrono::duration<double, std::micro>(t.took).count());
      }
    }
  }
  state.counters["p50_us"] = p50_us(samples);
  state.counters["exit_p50_us"] = p50_us(to_exit);
}

void BM_SandboxSpawn(benchmark::State& state) {
  static auto launcher = sb::make_launcher({});
  if (!launcher) {
    state.SkipWithError(launcher.error().message().c_str());
    return;
  }
  spawn_loop(state, **launcher, state.range(0) != 0 ? &g_steps : nullptr);
}

// The cgroup v2 code path on this host's v2 hierarchy (forced: on a hybrid
// host it has no cpu/memory/pids controllers, so only the no-limits spec
// runs): the child is born in its group by clone3(CLONE_INTO_CGROUP), as on
// a unified host, with no v1 migration.
void BM_SandboxSpawnV2Path(benchmark::State& state) {
  static auto launcher = [] {
    sb::LauncherOptions options;
    options.cgroups.force_layout = sb::CgroupLayout::unified;
    return sb::make_launcher(options);
  }();
  if (!launcher) {
    state.SkipWithError(launcher.error().message().c_str());
    return;
  }
  spawn_loop(state, **launcher, nullptr);
}

void BM_ZygoteSpawn(benchmark::State& state) {
  static auto launcher = [] {
    sb::LauncherOptions options;
    options.zygote_shells = 2;
    return sb::make_launcher(options);
  }();
  if (!launcher) {
    state.SkipWithError(launcher.error().message().c_str());
    return;
  }
  spawn_loop(state, **launcher, state.range(0) != 0 ? &g_zygote_steps : nullptr);
}

BENCHMARK(BM_ForkExecTrue)->UseRealTime();
BENCHMARK(BM_Bwrap)->UseRealTime();
BENCHMARK(BM_SandboxSpawn)->Arg(0)->Arg(1)->UseRealTime();
BENCHMARK(BM_SandboxSpawnV2Path)->Arg(0)->UseRealTime();
BENCHMARK(BM_ZygoteSpawn)->Arg(0)->Arg(1)->UseRealTime();

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      // Every repetition, or only the median where aggregates alone are reported.
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
      auto p50 = r.counters.find("p50_us");
      if (p50 != r.counters.end()) p50_[r.run_name.str()].push_back(p50->second.value);
    }
  }
  void summary() {
    double bwrap = p50_us(p50_["BM_Bwrap/real_time"]);
    double exec = p50_us(p50_["BM_ForkExecTrue/real_time"]);
    std::printf("\n== Ratios against bwrap (medians of per-repetition p50; ours: spawn to exec) ==\n");
    std::printf("bwrap --unshare-all ... /bin/true: %.0f us; plain fork+exec /bin/true: %.0f us\n",
                bwrap, exec);
    auto line = [&](const char* what, const std::string& key, const char* target) {
      double v = p50_us(p50_[key]);
      if (v > 0 && bwrap > 0) {
        std::printf("%-42s %8.0f us -> %.2fx bwrap (target %s)\n", what, v, v / bwrap, target);
      }
    };
    line("full spawn, no limits", "BM_SandboxSpawn/0/real_time", "<= 0.5x");
    line("full spawn, cpu+memory+pids limits", "BM_SandboxSpawn/1/real_time", "<= 0.5x");
    line("full spawn, cgroup v2 path, no limits", "BM_SandboxSpawnV2Path/0/real_time", "<= 0.5x");
    line("zygote spawn, no limits", "BM_ZygoteSpawn/0/real_time", "<= 0.1x");
    line("zygote spawn, cpu+memory+pids limits", "BM_ZygoteSpawn/1/real_time", "<= 0.1x");
    if (!g_steps.empty()) {
      std::printf("\n== Full spawn with limits, median per step (us) ==\n");
      for (const auto& [step, v] : g_steps) std::printf("  %-18s %8.1f\n", step.c_str(), p50_us(v));
    }
    if (!g_zygote_steps.empty()) {
      std::printf("\n== Zygote spawn with limits, median per step (us) ==\n");
      for (const auto& [step, v] : g_zygote_steps) {
        std::printf("  %-18s %8.1f\n", step.c_str(), p50_us(v));
      }
    }
  }

 private:
  std::map<std::string, std::vector<double>> p50_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.summary();
  benchmark::Shutdown();
  return 0;
}
