// The artifact store under kill -9: a forked child puts artifacts from
// several threads and reports each one through a pipe after put() returns;
// the parent kills it at a random moment, reopens the store and checks that
// every acknowledged artifact reads back byte-identical, that no partial
// artifact is visible, and that recovery left no temporary or orphan file.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "pit/artifacts/artifact_store.h"
#include "tests/support/temp_dir.h"

namespace symphony::pit {
namespace {

using namespace std::chrono_literals;
using symphony::testing::count_entries;
using symphony::testing::TempDir;

// The bytes of one put, derived from its seed and size so the parent can
// rebuild them exactly.
std::string content(std::uint64_t seed, std::size_t size) {
  std::string out(size, '\0');
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i < size; i += 8) {
    std::uint64_t word = rng();
    for (std::size_t j = 0; j < 8 && i + j < size; ++j) out[i + j] = static_cast<char>(word >> (8 * j));
  }
  return out;
}

struct Ack {
  std::string name;
  std::uint64_t version;
  std::string digest_hex;
  std::uint64_t seed;
  std::size_t size;
};

// The child: opens the store and puts until killed. Threads share the pipe;
// each report is one write() shorter than PIPE_BUF, so lines never mix.
[[noreturn]] void run_child(const std::filesystem::path& root, int report_fd, std::uint64_t round) {
  StoreOptions options;
  options.root = root;
  options.max_batch_delay = std::chrono::microseconds(round % 3 == 0 ? 0 : 300);
  auto store = ArtifactStore::open(options);
  if (!store) {
    std::fprintf(stderr, "child: %s\n", store.error().message().c_str());
    ::_exit(2);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(round * 1000 + static_cast<std::uint64_t>(t));
      for (std::uint64_t i = 0;; ++i) {
        std::uint64_t seed = rng();
        // Mostly small, some large enough to be streamed in several chunks,
        // some repeats (dedup).
        std::size_t size = rng() % 8 == 0 ? 300'000 + rng() % 300'000 : rng() % 20'000;
        if (rng() % 10 == 0) seed = size = 4096;
        std::string data = content(seed, size);
        PutOptions put;
        put.name = "crash/t" + std::to_string(t % 2);
        put.producer = {"wf", std::to_string(round), "crash-test"};
        Result<VersionInfo> v = Error(0, "");
        if (size > 100'000) {
          auto writer = (*store)->begin_put();
          if (!writer) ::_exit(3);
          for (std::size_t off = 0; off < size; off += 65536) {
            std::string_view chunk = std::string_view(data).substr(off, 65536);
            if (!(*writer)->write(std::as_bytes(std::span(chunk.data(), chunk.size())))) ::_exit(3);
          }
          v = (*writer)->commit(put);
        } else {
          v = (*store)->put(std::as_bytes(std::span(data.data(), data.size())), put);
        }
        if (!v) {
          std::fprintf(stderr, "child: %s\n", v.error().message().c_str());
          ::_exit(3);
        }
        char line[256];
        int n = std::snprintf(line, sizeof line, "%s %llu %s %llu %zu\n", v->name.c_str(),
                              static_cast<unsigned long long>(v->version), v->digest.hex().c_str(),
                              static_cast<unsigned long long>(seed), size);
        if (::write(report_fd, line, static_cast<std::size_t>(n)) != n) ::_exit(4);
      }
    });
  }
  for (auto& t : threads) t.join();
  ::_exit(0);
}

TEST(ArtifactStoreCrash, AcknowledgedPutsSurviveKillNineAtAnyMoment) {
  const TempDir dir("symphony-artifacts-crash");
  const std::filesystem::path root = dir.path() / "store";
  std::mt19937 rng(std::random_device{}());
  std::map<std::pair<std::string, std::uint64_t>, Ack> acked;
  constexpr int kRounds = 24;
  const auto started = std::chrono::steady_clock::now();

  for (int round = 0; round < kRounds; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      run_child(root, fds[1], static_cast<std::uint64_t>(round));
    }
    ::close(fds[1]);

    // Read reports while the child runs, then kill it mid-flight.
    const auto kill_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(5 + rng() % 300);
    std::string reports;
    char buf[4096];
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(kill_at - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fds[0], POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) > 0) {
        ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n > 0) reports.append(buf, static_cast<std::size_t>(n));
        if (n == 0) break;
      }
    }
    ::kill(pid, SIGKILL);
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) reports.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited early with status " << WEXITSTATUS(status);

    std::vector<Ack> fresh;
    std::istringstream lines(reports);
    for (Ack a; lines >> a.name >> a.version >> a.digest_hex >> a.seed >> a.size;) fresh.push_back(a);

    StoreOptions options;
    options.root = root;
    auto opened = ArtifactStore::open(options);
    ASSERT_TRUE(opened) << opened.error().message();
    ArtifactStore& store = **opened;
    EXPECT_EQ(count_entries(root / "tmp"), 0u) << "round " << round;
    // Every file in objects/ is a blob some row names.
    std::size_t objects = count_entries(root / "objects");
    EXPECT_EQ(objects, store.stats().blobs) << "round " << round;

    for (const Ack& a : fresh) {
      auto [it, added] = acked.try_emplace({a.name, a.version}, a);
      EXPECT_TRUE(added) << a.name << "@" << a.version << " acknowledged twice";
    }
    // This round's acknowledgements in full, earlier ones by sample.
    std::vector<const Ack*> to_check;
    for (const Ack& a : fresh) to_check.push_back(&acked.at({a.name, a.version}));
    for (int i = 0; i < 20 && !acked.empty(); ++i) {
      auto it = acked.begin();
      std::advance(it, static_cast<long>(rng() % acked.size()));
      to_check.push_back(&it->second);
    }
    for (const Ack* a : to_check) {
      auto v = store.get({a->name, a->version});
      ASSERT_TRUE(v) << "round " << round << ": acknowledged " << a->name << "@" << a->version
                     << " lost: " << v.error().message();
      EXPECT_EQ(v->digest.hex(), a->digest_hex);
      auto view = store.map_blob(v->digest);
      ASSERT_TRUE(view) << view.error().message();
      std::string want = content(a->seed, a->size);
      ASSERT_EQ(view->bytes().size(), want.size());
      EXPECT_EQ(std::memcmp(view->bytes().data(), want.data(), want.size()), 0)
          << a->name << "@" << a->version << " differs";
    }
    // No partial artifact: every stored version (acknowledged or not) is
    // whole, and versions of a name are dense.
    for (const char* name : {"crash/t0", "crash/t1"}) {
      auto versions = store.versions(name);
      if (!versions) continue;
      for (std::size_t i = 0; i < versions->size(); ++i) {
        const VersionInfo& v = (*versions)[i];
        EXPECT_EQ(v.version, i + 1);
        auto view = store.map_blob(v.digest);
        ASSERT_TRUE(view) << view.error().message();
        EXPECT_EQ(view->bytes().size(), v.size);
        if (acked.contains({v.name, v.version}) || round + 1 == kRounds) {
          EXPECT_EQ(Digest::of(view->bytes()), v.digest) << v.name << "@" << v.version;
        }
      }
    }
  }
  std::cout << "rounds: " << kRounds << ", acknowledged puts: " << acked.size() << ", took "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count()
            << " ms\n";
  EXPECT_GT(acked.size(), 0u);
}

}  // namespace
}  // namespace symphony::pit
