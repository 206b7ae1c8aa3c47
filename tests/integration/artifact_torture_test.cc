// Crash torture of the artifact store through the real daemon: clients put
// artifacts concurrently (small ones in one call, large ones streamed in
// chunks), the daemon is killed with SIGKILL at a random moment, restarted
// on the same state, and every artifact whose put was acknowledged must read
// back byte-identical. Anything else visible must be an attempted put that
// completed (its reply lost to the kill), never a partial one, and the
// store's temporary directory must be empty after recovery.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ipc/rpc_client.h"
#include "pit/digest.h"
#include "tests/support/daemon_process.h"

namespace symphony {
namespace {

using namespace std::chrono_literals;
using testing::DaemonOptions;
using testing::DaemonProcess;

// Deterministic content: the bytes of an attempt follow from its seed, so
// the test keeps only (seed, size) per artifact.
std::vector<char> content(std::uint64_t seed, std::size_t size) {
  std::vector<char> out(size);
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i < size; i += 8) {
    std::uint64_t v = rng();
    std::memcpy(out.data() + i, &v, std::min<std::size_t>(8, size - i));
  }
  return out;
}

struct Attempt {
  std::string name;
  std::uint64_t seed = 0;
  std::size_t size = 0;
  std::string digest;
  bool acknowledged = false;
  std::uint64_t version = 0;
};

std::string str(const msgpack::object* o) {
  return o && o->type == msgpack::type::STR ? std::string(o->via.str.ptr, o->via.str.size) : std::string();
}

// Puts one attempt; true when the daemon acknowledged it (then version is set).
bool put(ipc::Client& client, Attempt& a) {
  auto data = content(a.seed, a.size);
  auto options = std::map<std::string, std::string>{{"name", a.name}, {"kind", "torture"}};
  Result<msgpack::object_handle> r = Error(0, "");
  if (a.size <= 64 * 1024) {
    r = client.call("artifact.put", msgpack::type::raw_ref(data.data(), static_cast<std::uint32_t>(data.size())),
                    options);
  } else {
    auto begin = client.call("artifact.upload_begin");
    if (!begin) return false;
    std::uint64_t id = ipc::map_get(begin->get(), "upload")->via.u64;
    constexpr std::size_t kChunk = 256 * 1024;
    for (std::size_t off = 0; off < data.size(); off += kChunk) {
      std::size_t n = std::min(kChunk, data.size() - off);
      client.queue("artifact.upload_chunk", id, msgpack::type::raw_ref(data.data() + off, static_cast<std::uint32_t>(n)));
    }
    if (!client.flush()) return false;
    // The responses come in order; read them all before the commit.
    std::size_t chunks = (data.size() + kChunk - 1) / kChunk;
    for (std::size_t i = 0; i < chunks; ++i) {
      auto m = client.receive();
      if (!m || m->error.type != msgpack::type::NIL) return false;
    }
    r = client.call("artifact.upload_commit", id, options);
  }
  if (!r) return false;
  const auto* d = ipc::map_get(r->get(), "digest");
  const auto* v = ipc::map_get(r->get(), "version");
  EXPECT_EQ(str(d), a.digest) << a.name;
  if (v == nullptr || v->type != msgpack::type::POSITIVE_INTEGER) return false;
  a.version = v->via.u64;
  return true;
}

// Reads NAME@VERSION back whole; the digest of what came back.
Result<std::string> read_back(ipc::Client& client, const std::string& ref, std::uint64_t* size_out) {
  auto info = client.call("artifact.get", ref);
  if (!info) return std::move(info).error();
  std::uint64_t size = ipc::map_get(info->get(), "size")->via.u64;
  pit::Hasher h;
  std::uint64_t off = 0;
  while (off < size) {
    auto r = client.call("artifact.read", ref, off, std::uint64_t{1 << 20});
    if (!r) return std::move(r).error();
    const auto* data = ipc::map_get(r->get(), "data");
    if (data == nullptr || data->type != msgpack::type::BIN || data->via.bin.size == 0) {
      return Error(EPROTO, "no data");
    }
    h.update(std::as_bytes(std::span(data->via.bin.ptr, data->via.bin.size)));
    off += data->via.bin.size;
  }
  if (size_out) *size_out = size;
  return h.finish().to_string();
}

int rounds() {
  if (const char* r = std::getenv("SYMPHONY_TORTURE_ROUNDS")) return std::max(1, std::atoi(r));
  return 100;
}

TEST(ArtifactTorture, EveryAcknowledgedPutSurvivesSigkillOfTheDaemon) {
  std::string dir = testing::make_temp_dir("symphony-torture");
  std::mt19937_64 rng(std::random_device{}());
  std::uint64_t seed_base = rng();
  std::printf("seed base %llu\n", static_cast<unsigned long long>(seed_base));
  std::vector<Attempt> attempts;
  std::mutex mu;
  std::size_t verified = 0;
  std::size_t acknowledged_total = 0;
  const int kRounds = rounds();
  const std::filesystem::path tmp_dir = std::filesystem::path(dir) / "state/symphony/pit/artifacts/tmp";

  for (int round = 0; round < kRounds; ++round) {
    DaemonOptions options;
    options.dir = dir;
    DaemonProcess daemon(options);
    ASSERT_TRUE(daemon.running());
    {
      // Recovery: no temporary file survives a restart.
      std::error_code ec;
      std::size_t leftovers = 0;
      for (auto it = std::filesystem::directory_iterator(tmp_dir, ec); !ec && it != std::filesystem::directory_iterator();
           ++it) {
        ++leftovers;
      }
      EXPECT_EQ(leftovers, 0u) << "round " << round << ": temporary files survived recovery in " << tmp_dir;
    }
    // Everything acknowledged in the rounds so far reads back identical.
    auto checker = daemon.client("checker");
    for (std::size_t i = verified; i < attempts.size(); ++i) {
      const Attempt& a = attempts[i];
      auto versions = checker.call("artifact.versions", a.name);
      if (!a.acknowledged) {
        // Not acknowledged: absent, or complete and identical.
        if (!versions) continue;
        for (std::uint32_t k = 0; k < versions->get().via.array.size; ++k) {
          EXPECT_EQ(str(ipc::map_get(versions->get().via.array.ptr[k], "digest")), a.digest)
              << "round " << round << ": a partial or foreign version of " << a.name << " is visible";
        }
        continue;
      }
      std::string ref = a.name + "@" + std::to_string(a.version);
      std::uint64_t size = 0;
      auto got = read_back(checker, ref, &size);
      ASSERT_TRUE(got) << "round " << round << ": acknowledged " << ref << " is gone: " << got.error().message();
      EXPECT_EQ(*got, a.digest) << ref;
      EXPECT_EQ(size, a.size) << ref;
    }
    verified = attempts.size();

    // Load: three writers, then a kill at a random moment.
    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    for (int w = 0; w < 3; ++w) {
      writers.emplace_back([&, w] {
        auto client = ipc::Client::connect(daemon.socket());
        if (!client || !client->hello("writer")) return;
        std::mt19937_64 local(seed_base ^ (static_cast<std::uint64_t>(round) << 8) ^ static_cast<std::uint64_t>(w));
        for (int n = 0; !stop; ++n) {
          Attempt a;
          a.name = "torture/r" + std::to_string(round) + "/w" + std::to_string(w) + "/" + std::to_string(n);
          a.seed = local();
          // Mostly small puts, now and then a streamed one of 0.3–1.5 MiB.
          a.size = local() % 16 == 0 ? 300'000 + local() % 1'200'000 : local() % 8192;
          auto bytes = content(a.seed, a.size);
          a.digest = pit::Digest::of(std::as_bytes(std::span(bytes.data(), bytes.size()))).to_string();
          std::size_t index;
          {
            std::lock_guard lock(mu);
            index = attempts.size();
            attempts.push_back(a);
          }
          bool ok = put(*client, a);
          std::lock_guard lock(mu);
          if (ok) {
            attempts[index].acknowledged = true;
            attempts[index].version = a.version;
            ++acknowledged_total;
          } else {
            return;  // the daemon is gone
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 80));
    daemon.send_signal(SIGKILL);
    EXPECT_EQ(daemon.wait_exit(10s), 128 + SIGKILL);
    stop = true;
    for (auto& t : writers) t.join();
  }

  // A final restart verifies the last round.
  {
    DaemonOptions options;
    options.dir = dir;
    DaemonProcess daemon(options);
    auto checker = daemon.client("checker");
    std::size_t checked = 0;
    for (const Attempt& a : attempts) {
      if (!a.acknowledged) continue;
      std::string ref = a.name + "@" + std::to_string(a.version);
      auto got = read_back(checker, ref, nullptr);
      ASSERT_TRUE(got) << "acknowledged " << ref << " is gone: " << got.error().message();
      EXPECT_EQ(*got, a.digest) << ref;
      ++checked;
    }
    std::printf("%d rounds, %zu puts attempted, %zu acknowledged, all %zu read back identical\n", kRounds,
                attempts.size(), acknowledged_total, checked);
    EXPECT_GT(acknowledged_total, static_cast<std::size_t>(kRounds)) << "too little load to mean anything";
  }
  testing::remove_tree(dir);
}

}  // namespace
}  // namespace symphony
