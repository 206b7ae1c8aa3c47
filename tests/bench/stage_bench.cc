// The Grand Stage end to end, each figure beside its baseline in the same run
// (TARGETS.md):
//
// Throughput: a workflow of 10,000 independent `noop.run` steps (one fan-out
// over a 10,000-item list, planned from workflow TOML) run by the Conductor
// (parallel strategy) on an epoll loop
//   - through the extension host onto pooled, sandboxed instances of the
//     chaos test extension (BM_Steps/P/I: max_parallel P, max_instances I);
//   - baseline: through the same Conductor with an in-process executor that
//     returns at once (BM_Steps/P/0): what the steps cost without any
//     extension.
// One iteration is one whole run, submit to run_finished, with a fresh
// in-memory DagTracker and Conductor; planning is done once, outside.
// Where the time goes: one step.run on a warm instance (Instance::run in a
// loop), the same through ExtensionHost::run (adds the pool lease), N
// threads each driving its own warm instance (the extension path's ceiling
// without the Conductor), and the floor under all of them, a raw socketpair
// ping-pong between two processes.
//
// Cold start: Instance::start (spawn in the chaos manifest's sandbox +
// ext.hello handshake) against bubblewrap running /bin/true (as in
// sandbox_bench.cc, whose helpers live in its own file's anonymous namespace
// and are repeated here) and against our launcher spawning /bin/true in the
// same sandbox spec. bwrap's figure is its whole run; ours is spawn to
// handshake, so the comparison favours bwrap.
//
// Needs root (the sandbox's cgroup subtree) and SYMPHONY_CHAOS_EXT_DIR (the
// chaos extension's build directory, with its extension.toml).
#include <benchmark/benchmark.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "conductor/conductor.h"
#include "conductor/strategy.h"
#include "conductor/workflow_file.h"
#include "ipc/event_loop.h"
#include "pit/dag/dag_tracker.h"
#include "sandbox/linux_launcher.h"
#include "stage/host.h"
#include "stage/instance.h"
#include "stage/manifest.h"
#include "tests/support/temp_dir.h"

extern char** environ;

namespace {

namespace sb = symphony::sandbox;
namespace st = symphony::stage;
namespace cd = symphony::conductor;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int kSteps = 10'000;

double us_since(Clock::time_point t0) { return std::chrono::duration<double, std::micro>(Clock::now() - t0).count(); }

double thread_cpu_us() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// --- shared fixtures ----------------------------------------------------------

struct Env {
  std::string error;  // why the sandboxed benchmarks cannot run
  std::unique_ptr<sb::Launcher> launcher;
  st::Manifest chaos;
  std::shared_ptr<const st::Manifest> chaos_ptr;
  std::unique_ptr<symphony::testing::TempDir> workspace;
  st::RunAs as;

  static Env& get() {
    static Env env;
    return env;
  }

 private:
  Env() {
    try {
      workspace = std::make_unique<symphony::testing::TempDir>("symphony-stage-bench");
      ::chmod(workspace->path().c_str(), 0777);  // instances run as nobody
      as.workspace = workspace->path();
    } catch (const std::exception& e) {
      error = e.what();
    }
    const char* dir = std::getenv("SYMPHONY_CHAOS_EXT_DIR");
    if (dir == nullptr || *dir == '\0') {
      error = "SYMPHONY_CHAOS_EXT_DIR is not set (the chaos extension's build directory)";
      return;
    }
    auto m = st::load_manifest(std::filesystem::path(dir) / "extension.toml");
    if (!m) {
      error = m.error().message();
      return;
    }
    chaos = *m;
    chaos_ptr = std::make_shared<const st::Manifest>(chaos);
    if (!error.empty()) return;
    if (::geteuid() != 0) {
      error = "needs root for the sandbox (cgroup subtree)";
      return;
    }
    auto l = sb::make_launcher({});
    if (!l) {
      error = l.error().message();
      return;
    }
    launcher = std::move(*l);
  }
};

// The launcher with the zygote (pre-forked shells that joined their
// namespaces and cgroups ahead of a request; see sandbox_bench.cc), for the
// cold-start figures' second variant. The daemon does not use it (yet).
sb::Launcher* zygote_launcher(std::string& error) {
  static auto l = [] {
    sb::LauncherOptions options;
    options.zygote_shells = 2;
    return sb::make_launcher(options);
  }();
  if (!l) {
    error = l.error().message();
    return nullptr;
  }
  return l->get();
}

// Arg 0: the direct launcher (what the daemon uses); 1: the zygote.
sb::Launcher* launcher_for(benchmark::State& state) {
  Env& env = Env::get();
  if (!env.error.empty()) {
    state.SkipWithError(env.error.c_str());
    return nullptr;
  }
  if (state.range(0) == 0) return env.launcher.get();
  std::string error;
  sb::Launcher* l = zygote_launcher(error);
  if (l == nullptr) state.SkipWithError(error.c_str());
  return l;
}

st::InstanceOptions instance_options() {
  st::InstanceOptions o;
  o.symphony_version = "0.1.0";
  o.cancel_grace = 500ms;
  return o;
}

st::StepCall noop_call(std::uint64_t n) {
  st::StepCall c;
  c.step = "bench/noop[" + std::to_string(n) + "]#1";
  c.capability = "noop.run";
  c.workspace = Env::get().as.workspace.string();
  return c;
}

bool succeeded(benchmark::State& state, const st::StepOutcome& o) {
  if (auto* f = std::get_if<st::StepFailure>(&o)) {
    state.SkipWithError((std::string(st::to_string(f->kind)) + ": " + f->message).c_str());
    return false;
  }
  return true;
}

// --- the Conductor's side -----------------------------------------------------

class ChaosProviders : public cd::ProviderSource {
 public:
  std::vector<std::shared_ptr<const st::Manifest>> providers(std::string_view capability, std::uint32_t) override {
    const auto& m = Env::get().chaos_ptr;
    if (m && m->find_capability(capability)) return {m};
    return {};
  }
};

class MemoryIo : public cd::ArtifactIo {
 public:
  symphony::Result<st::InputData> read(const symphony::pit::ArtifactRef& ref) override {
    std::lock_guard lock(mu_);
    auto it = data_.find(ref.name);
    if (it == data_.end()) return symphony::Error::described(ENOENT, "no artifact " + ref.name);
    return st::InputData{ref.to_string(), "", "text/plain", it->second};
  }
  symphony::Result<symphony::pit::VersionInfo> write(const st::StepOutputData& o,
                                                     const symphony::pit::PutOptions& options) override {
    std::lock_guard lock(mu_);
    data_[options.name] = o.data;
    symphony::pit::VersionInfo v;
    v.name = options.name;
    v.version = 1;
    v.digest = symphony::pit::Digest::of(o.data);
    return v;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> data_;
};

// The baseline: a step that costs nothing.
class InProcessExecutor : public cd::StepExecutor {
 public:
  st::StepOutcome execute(const st::Manifest&, const st::RunAs&, const st::StepCall&, const st::StepEvents&,
                          const st::CancelToken&) override {
    return st::StepResult{};
  }
};

class HostExecutor : public cd::StepExecutor {
 public:
  explicit HostExecutor(st::ExtensionHost& host) : host_(host) {}
  st::StepOutcome execute(const st::Manifest& provider, const st::RunAs& as, const st::StepCall& call,
                          const st::StepEvents& events, const st::CancelToken& cancel) override {
    return host_.run(provider, as, call, events, &cancel);
  }

 private:
  st::ExtensionHost& host_;
};

std::string noop_workflow_toml(int steps) {
  std::string text = "name = \"noop-fan-out\"\n[params]\nitems = [";
  for (int i = 0; i < steps; ++i) text += (i ? "," : "") + std::to_string(i);
  text += "]\n[[steps]]\nid = \"noop\"\ncapability = \"noop.run\"\nfor_each = \"${params.items}\"\n";
  return text;
}

struct Planned {
  std::string error;
  cd::Plan plan;
  double plan_ms = 0;
};

const Planned& noop_plan() {
  static Planned p = [] {
    Planned out;
    auto t0 = Clock::now();
    auto def = cd::parse_workflow(noop_workflow_toml(kSteps), "noop-10k.toml");
    if (!def) {
      out.error = def.error().message();
      return out;
    }
    auto plan = cd::plan_workflow(*def, {});
    if (!plan) {
      out.error = plan.error().message();
      return out;
    }
    out.plan = std::move(*plan);
    out.plan_ms = us_since(t0) / 1000.0;
    return out;
  }();
  return p;
}

symphony::ipc::EventLoop* loop() {
  static auto l = symphony::ipc::make_epoll_loop();
  return l ? l->get() : nullptr;
}

// One whole run of `plan` on a fresh tracker and Conductor; the time from
// submit to run_finished, or an error.
struct RunResult {
  std::string error;
  double seconds = 0;
};

RunResult run_workflow(const cd::Plan& plan, cd::StepExecutor& exec, std::uint32_t max_parallel) {
  auto* lp = loop();
  if (lp == nullptr) return {"no event loop"};
  ChaosProviders providers;
  MemoryIo io;
  symphony::pit::dag::DagTracker dag;  // in memory
  auto strategy = cd::make_strategy("parallel");
  if (!strategy) return {strategy.error().message()};
  cd::ConductorOptions options;
  options.max_parallel = max_parallel;
  auto c = cd::Conductor::create(*lp, dag, providers, exec, io, std::move(*strategy), options);
  if (!c) return {c.error().message()};
  cd::Plan copy = plan;
  cd::RunOptions ro;
  ro.source = "noop-10k.toml";
  ro.as = Env::get().as;

  Clock::time_point t1{};
  std::string state;
  std::string error;
  const auto t0 = Clock::now();
  auto id = (*c)->submit(std::move(copy), ro);
  if (!id) return {id.error().message()};
  auto h = (*c)->watch(*id, [&](const cd::Event& e) {
    if (e.kind != cd::EventKind::run_finished) return;
    t1 = Clock::now();
    state = e.state;
    error = e.message;
    lp->stop();
  });
  if (!h) return {h.error().message()};
  auto guard = lp->add_timer(120s, [&] {
    error = "the run did not finish within 120 s";
    lp->stop();
  });
  (void)lp->run();
  lp->cancel_timer(guard);
  if (state != "succeeded") return {"run " + (state.empty() ? std::string("unfinished") : state) + ": " + error};
  return {{}, std::chrono::duration<double>(t1 - t0).count()};
}

// One host per max_instances for the whole program, warmed before its first
// timed run so every instance is started (cold starts are measured below).
// A sandbox dies with the thread that spawned it (PR_SET_PDEATHSIG), and the
// pool starts instances on the allocating thread: they are started here by
// keeper threads that live as long as the program (as the daemon's worker
// threads do), not by a per-iteration Conductor's workers. Each keeper runs
// one 300 ms chaos.run sleep step at the same time as the others, so the pool
// must start one instance per keeper.
st::ExtensionHost* warm_host(std::uint32_t max_instances, std::string& error) {
  static std::map<std::uint32_t, std::unique_ptr<st::ExtensionHost>> hosts;
  auto& h = hosts[max_instances];
  if (h) return h.get();
  Env& env = Env::get();
  st::HostOptions options;
  options.instance = instance_options();
  options.max_instances = max_instances;
  auto created = st::ExtensionHost::create(env.launcher.get(), options);
  if (!created) {
    error = created.error().message();
    return nullptr;
  }
  st::ExtensionHost* host = created->get();
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::uint32_t done = 0;
    std::string error;
  };
  auto shared = std::make_shared<Shared>();
  for (std::uint32_t i = 0; i < max_instances; ++i) {
    std::thread([host, shared, i] {
      Env& env = Env::get();
      st::StepCall call = noop_call(i);
      call.capability = "chaos.run";
      call.params = {{"mode", "sleep"}, {"ms", 300}};
      auto out = host->run(env.chaos, env.as, call, {});
      {
        std::lock_guard lock(shared->mu);
        if (auto* f = std::get_if<st::StepFailure>(&out)) shared->error = "warm-up: " + f->message;
        ++shared->done;
      }
      shared->cv.notify_all();
      for (;;) ::pause();  // the instances' parent thread, until the program exits
    }).detach();
  }
  std::unique_lock lock(shared->mu);
  shared->cv.wait(lock, [&] { return shared->done == max_instances; });
  if (!shared->error.empty()) {
    error = shared->error;
    return nullptr;
  }
  h = std::move(*created);
  return h.get();
}

// BM_Steps/P/I: 10,000 no-op steps, max_parallel P, through sandboxed
// instances (at most I) or, with I = 0, the in-process baseline.
void BM_Steps(benchmark::State& state) {
  const auto max_parallel = static_cast<std::uint32_t>(state.range(0));
  const auto max_instances = static_cast<std::uint32_t>(state.range(1));
  const auto& p = noop_plan();
  if (!p.error.empty()) {
    state.SkipWithError(("planning: " + p.error).c_str());
    return;
  }
  std::unique_ptr<cd::StepExecutor> exec;
  st::ExtensionHost* host = nullptr;
  if (!Env::get().chaos_ptr) {  // the provider the plan names, for both
    state.SkipWithError(Env::get().error.c_str());
    return;
  }
  if (max_instances == 0) {
    exec = std::make_unique<InProcessExecutor>();
  } else {
    Env& env = Env::get();
    if (!env.error.empty()) {
      state.SkipWithError(env.error.c_str());
      return;
    }
    std::string error;
    host = warm_host(max_instances, error);
    if (host == nullptr) {
      state.SkipWithError(error.c_str());
      return;
    }
    exec = std::make_unique<HostExecutor>(*host);
  }
  std::vector<double> rates;
  for (auto _ : state) {
    auto r = run_workflow(p.plan, *exec, max_parallel);
    if (!r.error.empty()) {
      state.SkipWithError(r.error.c_str());
      return;
    }
    state.SetIterationTime(r.seconds);
    rates.push_back(kSteps / r.seconds);
  }
  state.SetItemsProcessed(state.iterations() * kSteps);
  state.counters["steps_per_s"] = percentile(rates, 50);
  state.counters["plan_ms"] = p.plan_ms;
  if (host) state.counters["instances"] = static_cast<double>(host->stats().live);
}

// --- where a step's time goes -------------------------------------------------

// The floor: a 64-byte ping-pong between two processes over a socketpair
// (rpc_bench.cc's baseline).
void BM_RawSocketpairRoundTrip(benchmark::State& state) {
  constexpr std::size_t size = 64;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    state.SkipWithError("socketpair");
    return;
  }
  pid_t child = ::fork();
  if (child == 0) {
    ::close(sv[0]);
    char buf[size];
    for (;;) {
      std::size_t got = 0;
      while (got < size) {
        ssize_t n = ::read(sv[1], buf + got, size - got);
        if (n <= 0) ::_exit(0);
        got += static_cast<std::size_t>(n);
      }
      if (::write(sv[1], buf, size) != static_cast<ssize_t>(size)) ::_exit(1);
    }
  }
  ::close(sv[1]);
  char buf[size] = {};
  std::vector<double> samples;
  for (auto _ : state) {
    auto t0 = Clock::now();
    if (::write(sv[0], buf, size) != static_cast<ssize_t>(size)) break;
    std::size_t got = 0;
    while (got < size) {
      ssize_t n = ::read(sv[0], buf + got, size - got);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    samples.push_back(us_since(t0));
  }
  ::close(sv[0]);
  ::waitpid(child, nullptr, 0);
  state.counters["p50_us"] = percentile(samples, 50);
  state.counters["p99_us"] = percentile(samples, 99);
}

st::Instance* warm_instance(std::size_t index, std::string& error) {
  static std::vector<std::unique_ptr<st::Instance>> instances;
  if (index < instances.size() && instances[index]) return instances[index].get();
  Env& env = Env::get();
  if (!env.error.empty()) {
    error = env.error;
    return nullptr;
  }
  if (instances.size() <= index) instances.resize(index + 1);
  auto options = instance_options();
  options.instance_id = 1000 + index;
  auto inst = st::Instance::start(*env.launcher, env.chaos, env.as.workspace, options);
  if (!inst) {
    error = inst.error().message();
    return nullptr;
  }
  instances[index] = std::move(*inst);
  return instances[index].get();
}

// One step.run on a warm instance, on this thread: the daemon's poll loop,
// the protocol's encoding and the SDK's reader → handler thread hand-off.
void BM_InstanceRoundTrip(benchmark::State& state) {
  std::string error;
  st::Instance* inst = warm_instance(0, error);
  if (inst == nullptr) {
    state.SkipWithError(error.c_str());
    return;
  }
  std::vector<double> samples;
  std::uint64_t n = 0;
  const st::StepEvents events;
  for (auto _ : state) {
    auto call = noop_call(n++);
    auto t0 = Clock::now();
    auto out = inst->run(call, events);
    samples.push_back(us_since(t0));
    if (!succeeded(state, out)) return;
  }
  state.counters["p50_us"] = percentile(samples, 50);
  state.counters["p99_us"] = percentile(samples, 99);
}

// The same through ExtensionHost::run: adds the model lookup and the pool's
// lease (one instance, warm).
void BM_HostRoundTrip(benchmark::State& state) {
  Env& env = Env::get();
  if (!env.error.empty()) {
    state.SkipWithError(env.error.c_str());
    return;
  }
  std::string error;
  st::ExtensionHost* host = warm_host(4, error);
  if (host == nullptr) {
    state.SkipWithError(error.c_str());
    return;
  }
  std::vector<double> samples;
  std::uint64_t n = 0;
  const st::StepEvents events;
  for (auto _ : state) {
    auto call = noop_call(n++);
    auto t0 = Clock::now();
    auto out = host->run(env.chaos, env.as, call, events);
    samples.push_back(us_since(t0));
    if (!succeeded(state, out)) return;
  }
  state.counters["p50_us"] = percentile(samples, 50);
  state.counters["p99_us"] = percentile(samples, 99);
}

// N threads, each driving its own warm instance with Instance::run, 10,000
// steps in all: what the extension path alone can carry, without the
// Conductor and the pool.
void BM_InstancesParallel(benchmark::State& state) {
  const auto threads = static_cast<std::size_t>(state.range(0));
  std::vector<st::Instance*> insts;
  for (std::size_t i = 0; i < threads; ++i) {
    std::string error;
    st::Instance* inst = warm_instance(i, error);
    if (inst == nullptr) {
      state.SkipWithError(error.c_str());
      return;
    }
    insts.push_back(inst);
  }
  std::vector<double> rates;
  for (auto _ : state) {
    std::atomic<int> next{0};
    std::atomic<bool> failed{false};
    const auto t0 = Clock::now();
    std::vector<std::thread> pool;
    for (std::size_t i = 0; i < threads; ++i) {
      pool.emplace_back([&, inst = insts[i]] {
        const st::StepEvents events;
        for (int n; (n = next.fetch_add(1)) < kSteps;) {
          if (std::holds_alternative<st::StepFailure>(inst->run(noop_call(static_cast<std::uint64_t>(n)), events)))
            failed = true;
        }
      });
    }
    for (auto& t : pool) t.join();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (failed) {
      state.SkipWithError("a step failed");
      return;
    }
    state.SetIterationTime(s);
    rates.push_back(kSteps / s);
  }
  state.SetItemsProcessed(state.iterations() * kSteps);
  state.counters["steps_per_s"] = percentile(rates, 50);
}

// --- cold start -----------------------------------------------------------------

// As in sandbox_bench.cc: each sample starts on a settled machine (the last
// sandbox's teardown goes on in the kernel after it is reaped), for every
// loop, bwrap's included, outside the timed region.
void settle() { ::usleep(20'000); }

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
  ::waitpid(pid, &status, 0);
}

void BM_Bwrap(benchmark::State& state) {
  if (::access("/usr/bin/bwrap", X_OK) != 0) {
    state.SkipWithError("bubblewrap is not installed (apt-get install bubblewrap)");
    return;
  }
  std::vector<double> samples;
  for (auto _ : state) {
    state.PauseTiming();
    settle();
    state.ResumeTiming();
    auto t0 = Clock::now();
    run_process({"/usr/bin/bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev",
                 "--proc", "/proc", "--tmpfs", "/tmp", "/bin/true"});
    samples.push_back(us_since(t0));
  }
  state.counters["p50_us"] = percentile(samples, 50);
  state.counters["p90_us"] = percentile(samples, 90);
}

std::map<std::string, std::vector<double>> g_spawn_steps;     // the instance's sandbox spawn, per step
std::map<std::string, std::vector<double>> g_instance_parts;  // spawn / handshake / shutdown

// Our launcher starting /bin/true in the chaos extension's own sandbox spec
// (its binds, its 64 MiB memory and 64 pids limits, as nobody): p50_us is
// spawn to exec, exit_p50_us adds the wait for its exit and the teardown.
void BM_SandboxSpawnTrue(benchmark::State& state) {
  Env& env = Env::get();
  sb::Launcher* launcher = launcher_for(state);
  if (launcher == nullptr) return;
  auto spec = st::sandbox_spec(env.chaos, env.as.workspace);
  if (!spec) {
    state.SkipWithError(spec.error().message().c_str());
    return;
  }
  spec->argv = {"/bin/true"};
  spec->env = {"PATH=/usr/bin:/bin"};
  spec->name = "stage-bench-true";
  spec->limits.timeout.reset();
  std::vector<double> samples, to_exit;
  for (auto _ : state) {
    state.PauseTiming();
    launcher->prewarm();  // a full shell pool is the zygote's steady state
    settle();
    state.ResumeTiming();
    auto t0 = Clock::now();
    auto child = launcher->spawn(*spec);
    const double spawned = us_since(t0);
    if (!child) {
      state.SkipWithError(child.error().message().c_str());
      return;
    }
    auto report = (*child)->wait();
    child->reset();
    samples.push_back(spawned);
    to_exit.push_back(us_since(t0));
    if (report.reason != sb::ExitReason::exited || report.exit_code != 0) {
      state.SkipWithError(("unexpected exit: " + report.message).c_str());
      return;
    }
  }
  state.counters["p50_us"] = percentile(samples, 50);
  state.counters["p90_us"] = percentile(samples, 90);
  state.counters["exit_p50_us"] = percentile(to_exit, 50);
}

// Instance::start (sandbox spawn of the extension + ext.hello handshake),
// then its shutdown (ext.shutdown, wait for the exit, teardown), timed
// apart: p50_us/p90_us are spawn to handshake.
void BM_InstanceStart(benchmark::State& state) {
  Env& env = Env::get();
  sb::Launcher* launcher = launcher_for(state);
  if (launcher == nullptr) return;
  const bool direct = state.range(0) == 0;
  std::vector<double> starts, stops, stop_cpu;
  std::uint64_t n = 0;
  for (auto _ : state) {
    state.PauseTiming();
    launcher->prewarm();
    settle();
    state.ResumeTiming();
    auto options = instance_options();
    options.instance_id = 2000 + n++;
    auto t0 = Clock::now();
    auto inst = st::Instance::start(*launcher, env.chaos, env.as.workspace, options);
    const double started = us_since(t0);
    if (!inst) {
      state.SkipWithError(inst.error().message().c_str());
      return;
    }
    if (direct) {
      for (const auto& t : launcher->last_timings()) {
        g_spawn_steps[t.step].push_back(std::chrono::duration<double, std::micro>(t.took).count());
      }
    }
    auto t1 = Clock::now();
    const double cpu0 = thread_cpu_us();
    (*inst)->shutdown();
    inst->reset();
    const double stopped = us_since(t1);
    stop_cpu.push_back(thread_cpu_us() - cpu0);
    starts.push_back(started);
    stops.push_back(stopped);
    if (direct) {
      g_instance_parts["start (spawn + handshake)"].push_back(started);
      g_instance_parts["shutdown"].push_back(stopped);
    }
  }
  state.counters["p50_us"] = percentile(starts, 50);
  state.counters["p90_us"] = percentile(starts, 90);
  state.counters["shutdown_p50_us"] = percentile(stops, 50);
  // CPU this thread used while shutting down: close to the wall time when
  // the wait for the sandbox's exit spins instead of sleeping.
  state.counters["shutdown_cpu_p50_us"] = percentile(stop_cpu, 50);
}

BENCHMARK(BM_Steps)
    ->Args({8, 0})
    ->Args({8, 4})
    ->Args({8, 8})
    ->Args({4, 4})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RawSocketpairRoundTrip)->UseRealTime();
BENCHMARK(BM_InstanceRoundTrip)->UseRealTime();
BENCHMARK(BM_HostRoundTrip)->UseRealTime();
BENCHMARK(BM_InstancesParallel)->Arg(1)->Arg(2)->Arg(4)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Bwrap)->UseRealTime()->Iterations(40)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SandboxSpawnTrue)->Arg(0)->Arg(1)->UseRealTime()->Iterations(40)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_InstanceStart)->Arg(0)->Arg(1)->UseRealTime()->Iterations(40)->Unit(benchmark::kMillisecond);

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.error_occurred) continue;
      // Every repetition, or only the median where aggregates alone are reported.
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
      for (const auto& [name, c] : r.counters) values_[r.run_name.str()][name].push_back(c.value);
    }
  }

  void summary() {
    std::printf("\n== Grand Stage: 10,000 no-op steps end to end (medians over repetitions) ==\n");
    const double base = get("BM_Steps/8/0/", "steps_per_s");
    if (base > 0) std::printf("%-52s %10.0f steps/s  (baseline)\n", "Conductor, in-process executor, max_parallel 8", base);
    for (auto [p, i] : {std::pair{8, 4}, std::pair{8, 8}, std::pair{4, 4}}) {
      double v = get(fmt("BM_Steps/%d/%d/", p, i), "steps_per_s");
      if (v <= 0) continue;
      std::printf("%-52s %10.0f steps/s  -> %.3fx baseline, %.2fx target 20,000 steps/s\n",
                  fmt("sandboxed chaos, max_parallel %d, max_instances %d", p, i).c_str(), v,
                  base > 0 ? v / base : 0.0, v / 20000.0);
    }
    std::printf("\n== Where a step's time goes (p50 round trip, one caller) ==\n");
    const double raw = get("BM_RawSocketpairRoundTrip/", "p50_us");
    auto rt = [&](const char* what, const char* key) {
      double v = get(key, "p50_us");
      if (v <= 0) return;
      std::printf("%-52s %8.1f us", what, v);
      if (raw > 0 && std::string(key) != "BM_RawSocketpairRoundTrip/") std::printf("  (%.1fx raw socketpair)", v / raw);
      std::printf("  p99 %.1f us\n", get(key, "p99_us"));
    };
    rt("raw socketpair ping-pong, 64 B, two processes", "BM_RawSocketpairRoundTrip/");
    rt("Instance::run(noop.run), warm instance", "BM_InstanceRoundTrip/");
    rt("ExtensionHost::run(noop.run), warm pool", "BM_HostRoundTrip/");
    if (base > 0) std::printf("%-52s %8.1f us of loop time per step\n", "Conductor alone (1 / in-process rate)", 1e6 / base);
    for (int t : {1, 2, 4}) {
      double v = get(fmt("BM_InstancesParallel/%d/", t), "steps_per_s");
      if (v > 0) std::printf("%-52s %10.0f steps/s\n", fmt("%d thread(s) x own warm instance, no Conductor", t).c_str(), v);
    }

    std::printf("\n== Extension cold start (medians over repetitions of per-repetition p50/p90) ==\n");
    const double bwrap = get("BM_Bwrap/", "p50_us");
    std::printf("%-50s p50 %7.0f us  p90 %7.0f us\n", "bwrap --unshare-all ... /bin/true (whole run)", bwrap,
                get("BM_Bwrap/", "p90_us"));
    for (int z : {0, 1}) {
      const char* how = z ? "zygote" : "direct";
      const std::string spawn_key = fmt("BM_SandboxSpawnTrue/%d/", z), inst_key = fmt("BM_InstanceStart/%d/", z);
      const double spawn = get(spawn_key, "p50_us");
      const double inst = get(inst_key, "p50_us");
      if (spawn > 0) {
        std::printf("%-50s p50 %7.0f us  p90 %7.0f us  (to exit %.0f us)\n",
                    fmt("ours, %s: /bin/true, chaos spec (to exec)", how).c_str(), spawn,
                    get(spawn_key, "p90_us"), get(spawn_key, "exit_p50_us"));
      }
      if (inst > 0) {
        std::printf("%-50s p50 %7.0f us  p90 %7.0f us  (shutdown %.0f us, %.0f us of it on CPU)\n",
                    fmt("ours, %s: chaos instance, spawn to handshake", how).c_str(), inst, get(inst_key, "p90_us"),
                    get(inst_key, "shutdown_p50_us"), get(inst_key, "shutdown_cpu_p50_us"));
        if (bwrap > 0) std::printf("  instance start / bwrap:                 %.2fx\n", inst / bwrap);
        if (spawn > 0) std::printf("  instance start / sandbox spawn (%s): %.2fx\n", how, inst / spawn);
      }
    }
    if (!g_instance_parts.empty()) {
      std::printf("\n== Instance start, direct launcher, median per part (us, all samples) ==\n");
      for (const auto& [part, v] : g_instance_parts) std::printf("  %-32s %8.1f\n", part.c_str(), percentile(v, 50));
      std::printf("  the sandbox spawn's own steps of 100 us or more (the launcher's timings; the child's\n"
                  "  steps overlap the parent's, so they do not add up):\n");
      for (const auto& [step, v] : g_spawn_steps) {
        if (percentile(v, 50) >= 100) std::printf("    %-30s %8.1f\n", step.c_str(), percentile(v, 50));
      }
    }
  }

 private:
  template <typename... A>
  static std::string fmt(const char* f, A... a) {
    char buf[128];
    std::snprintf(buf, sizeof buf, f, a...);
    return buf;
  }
  // The median of `counter` over the runs whose name starts with `prefix`.
  double get(const std::string& prefix, const std::string& counter) const {
    std::vector<double> v;
    for (const auto& [name, counters] : values_) {
      if (name.rfind(prefix, 0) != 0) continue;
      auto it = counters.find(counter);
      if (it != counters.end()) v.insert(v.end(), it->second.begin(), it->second.end());
    }
    return percentile(v, 50);
  }
  std::map<std::string, std::map<std::string, std::vector<double>>> values_;
};

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);  // not a line per instance started
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.summary();
  benchmark::Shutdown();
  return 0;
}
