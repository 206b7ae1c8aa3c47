// IPC benchmarks (TARGETS.md): the daemon's daemon.ping round trip against a
// raw socketpair ping-pong of the same payload between two processes, and
// pipelined daemon.ping throughput from one client. Both sides run in one
// process invocation, interleaved (--benchmark_enable_random_interleaving),
// and the program ends by printing the ratio of the medians.
//
//   build/tests/bench/rpc_bench                      (needs SYMPHONYD or a build tree)
//   scripts/bench.sh                                  (the documented way)
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "ipc/rpc_client.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size()));
  return v[std::min(rank, v.size() - 1)];
}

void report_percentiles(benchmark::State& state, std::vector<double>& samples_us) {
  state.counters["p50_us"] = percentile(samples_us, 50);
  state.counters["p99_us"] = percentile(samples_us, 99);
}

// --- the baseline: raw socketpair ping-pong between two processes -------------

void BM_RawSocketpairRoundTrip(benchmark::State& state) {
  auto size = static_cast<std::size_t>(state.range(0));
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    state.SkipWithError("socketpair");
    return;
  }
  pid_t child = ::fork();
  if (child == 0) {
    ::close(sv[0]);
    std::vector<char> buf(size);
    for (;;) {
      std::size_t got = 0;
      while (got < size) {
        ssize_t n = ::read(sv[1], buf.data() + got, size - got);
        if (n <= 0) ::_exit(0);
        got += static_cast<std::size_t>(n);
      }
      if (::write(sv[1], buf.data(), size) != static_cast<ssize_t>(size)) ::_exit(1);
    }
  }
  ::close(sv[1]);
  std::vector<char> buf(size, 'x');
  std::vector<double> samples;
  samples.reserve(1 << 16);
  for (auto _ : state) {
    auto t0 = Clock::now();
    if (::write(sv[0], buf.data(), size) != static_cast<ssize_t>(size)) break;
    std::size_t got = 0;
    while (got < size) {
      ssize_t n = ::read(sv[0], buf.data() + got, size - got);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    samples.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  ::close(sv[0]);
  ::waitpid(child, nullptr, 0);
  report_percentiles(state, samples);
}

// --- the daemon ------------------------------------------------------------------

// One symphonyd for the whole run, in user mode in a temporary directory.
class Daemon {
 public:
  static Daemon& get(const std::string& backend) {
    static std::map<std::string, std::unique_ptr<Daemon>> daemons;
    auto& d = daemons[backend];
    if (!d) d = std::make_unique<Daemon>(backend);
    return *d;
  }

  explicit Daemon(const std::string& backend) {
    char tmpl[] = "/tmp/symphony-bench.XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    std::filesystem::create_directories(dir_ + "/run");
    socket_ = dir_ + "/run/symphony/symphonyd.sock";
    const char* bin = std::getenv("SYMPHONYD");
    std::string binary = bin ? bin : "build/daemon/symphonyd";
    std::vector<std::string> args = {binary, "--user", "--log-level", "warning",
                                     "--loop-backend", backend};
    std::vector<std::string> env = {"XDG_RUNTIME_DIR=" + dir_ + "/run",
                                    "XDG_CONFIG_HOME=" + dir_ + "/config",
                                    "XDG_STATE_HOME=" + dir_ + "/state", "HOME=" + dir_};
    std::vector<char*> a, e;
    for (auto& s : args) a.push_back(s.data());
    a.push_back(nullptr);
    for (auto& s : env) e.push_back(s.data());
    e.push_back(nullptr);
    if (::posix_spawn(&pid_, a[0], nullptr, nullptr, a.data(), e.data()) != 0) {
      std::fprintf(stderr, "cannot start %s\n", binary.c_str());
      std::exit(1);
    }
    for (int i = 0; i < 2000; ++i) {
      if (auto c = symphony::ipc::Client::connect(socket_); c && c->hello("bench")) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::fprintf(stderr, "symphonyd did not start (set SYMPHONYD to the binary)\n");
    std::exit(1);
  }
  ~Daemon() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    std::filesystem::remove_all(dir_);
  }
  symphony::ipc::Client client() const {
    auto c = symphony::ipc::Client::connect(socket_);
    if (!c || !c->hello("bench")) std::abort();
    return std::move(*c);
  }

 private:
  std::string dir_, socket_;
  pid_t pid_ = -1;
};

const char* backend_name(std::int64_t i) { return i == 0 ? "io_uring" : "epoll"; }

void BM_DaemonPingRoundTrip(benchmark::State& state) {
  auto size = static_cast<std::size_t>(state.range(0));
  auto client = Daemon::get(backend_name(state.range(1))).client();
  state.SetLabel(backend_name(state.range(1)));
  std::vector<char> payload(size, 'x');
  msgpack::type::raw_ref raw(payload.data(), static_cast<std::uint32_t>(size));
  std::vector<double> samples;
  samples.reserve(1 << 16);
  for (auto _ : state) {
    auto t0 = Clock::now();
    auto r = client.call("daemon.ping", raw);
    samples.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (!r) {
      state.SkipWithError(r.error().message().c_str());
      break;
    }
  }
  report_percentiles(state, samples);
}

// One client keeps `depth` requests in flight: each iteration sends a batch
// and reads its answers while the next batch is already queued.
void BM_DaemonPipelinedPing(benchmark::State& state) {
  auto client = Daemon::get(backend_name(state.range(1))).client();
  state.SetLabel(backend_name(state.range(1)));
  const auto batch = static_cast<int>(state.range(0));
  std::string payload(64, 'x');
  msgpack::type::raw_ref raw(payload.data(), 64);
  std::int64_t done = 0;
  for (auto _ : state) {
    for (int i = 0; i < batch; ++i) client.queue("daemon.ping", raw);
    if (!client.flush()) {
      state.SkipWithError("flush");
      break;
    }
    for (int i = 0; i < batch; ++i) {
      auto m = client.receive();
      if (!m || m->type != symphony::ipc::rpc::MessageType::response) {
        state.SkipWithError("receive");
        break;
      }
    }
    done += batch;
  }
  state.SetItemsProcessed(done);
  state.counters["req_per_s"] = benchmark::Counter(static_cast<double>(done), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_RawSocketpairRoundTrip)->Arg(64)->Arg(4096)->UseRealTime();
BENCHMARK(BM_DaemonPingRoundTrip)->Args({64, 0})->Args({64, 1})->Args({4096, 0})->Args({4096, 1})->UseRealTime();
BENCHMARK(BM_DaemonPipelinedPing)->Args({256, 0})->Args({256, 1})->UseRealTime();

// Collects results so that main() can print the ratios at the end.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
      std::string name = r.run_name.str();  // without the aggregate suffix
      auto p50 = r.counters.find("p50_us");
      if (p50 != r.counters.end()) p50_[name].push_back(p50->second.value);
      auto rate = r.counters.find("req_per_s");
      if (rate != r.counters.end()) rate_[name].push_back(rate->second.value);
    }
  }
  static double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }
  void summary() {
    std::printf("\n== Ratios (medians over repetitions; p50 round trip per sample) ==\n");
    for (int size : {64, 4096}) {
      double raw = median(p50_["BM_RawSocketpairRoundTrip/" + std::to_string(size) + "/real_time"]);
      for (int b = 0; b < 2; ++b) {
        std::string key = "BM_DaemonPingRoundTrip/" + std::to_string(size) + "/" +
                          std::to_string(b) + "/real_time";
        double d = median(p50_[key]);
        if (raw > 0 && d > 0) {
          std::printf("daemon.ping %5d B (%-8s): p50 %.2f us vs raw socketpair %.2f us -> %.2fx (target <= 1.3x at 64 B)\n",
                      size, backend_name(b), d, raw, d / raw);
        }
      }
    }
    for (int b = 0; b < 2; ++b) {
      double rate = median(rate_["BM_DaemonPipelinedPing/256/" + std::to_string(b) + "/real_time"]);
      if (rate > 0) {
        std::printf("pipelined daemon.ping 64 B (%-8s): %.0f req/s (target >= 200000)\n",
                    backend_name(b), rate);
      }
    }
  }

 private:
  std::map<std::string, std::vector<double>> p50_, rate_;
};

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.summary();
  benchmark::Shutdown();
  return 0;
}
