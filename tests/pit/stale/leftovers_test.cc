// The leftover sweep: Symphony's temporary files, abandoned sockets and
// shared-memory segments of dead processes go; anything live, young or not
// named by Symphony's conventions stays. Shared memory uses a prefix of this
// test's own, so real segments are never touched.
#include "pit/stale/leftovers.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "base/unique_fd.h"
#include "tests/pit/stale/test_support.h"

namespace symphony::pit::stale {
namespace {

namespace fs = std::filesystem;
using testing::dead_pid;
using testing::TempDir;
using testing::write_file;

void make_old(const fs::path& path, std::chrono::seconds age) {
  timeval times[2];
  times[0].tv_sec = times[1].tv_sec = ::time(nullptr) - age.count();
  times[0].tv_usec = times[1].tv_usec = 0;
  ASSERT_EQ(::utimes(path.c_str(), times), 0);
}

UniqueFd bind_socket(const fs::path& path, bool listen) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  if (listen) {
    EXPECT_EQ(::listen(fd.get(), 4), 0);
  }
  return fd;
}

std::vector<fs::path> paths(const LeftoverReport& r) {
  std::vector<fs::path> out;
  for (const auto& l : r.removed) out.push_back(l.path);
  return out;
}

TEST(Leftovers, TemporaryFilesOfDeadWritersOlderThanTheThreshold) {
  TempDir dir;
  int dead = dead_pid();
  fs::path stale = dir.path() / (".symphony-tmp-" + std::to_string(dead) + "-1");
  fs::path young = dir.path() / (".symphony-tmp-" + std::to_string(dead) + "-2");
  fs::path ours = dir.path() / (".symphony-tmp-" + std::to_string(::getpid()) + "-3");
  fs::path foreign = dir.path() / "something.tmp";
  for (const auto& p : {stale, young, ours, foreign}) write_file(p, "x");
  make_old(stale, std::chrono::hours(2));
  make_old(ours, std::chrono::hours(2));
  make_old(foreign, std::chrono::hours(200));

  LeftoverOptions o;
  o.temp_dirs = {dir.path(), dir.path() / "missing"};
  o.temp_min_age = std::chrono::hours(1);
  o.shm_prefix.clear();
  auto dry = clean_leftovers(o, DryRun::yes);
  ASSERT_TRUE(dry) << dry.error().message();
  EXPECT_THAT(paths(*dry), ::testing::ElementsAre(stale));
  EXPECT_TRUE(fs::exists(stale));
  EXPECT_FALSE(dry->cgroups_checked);

  auto real = clean_leftovers(o, DryRun::no);
  ASSERT_TRUE(real);
  EXPECT_THAT(paths(*real), ::testing::ElementsAre(stale));
  EXPECT_EQ(real->removed[0].kind, Leftover::Kind::temp_file);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(young));
  EXPECT_TRUE(fs::exists(ours));
  EXPECT_TRUE(fs::exists(foreign));
}

TEST(Leftovers, AbandonedSocketGoesALiveOneStays) {
  TempDir dir;
  fs::path live = dir.path() / "symphonyd.sock";
  fs::path stale = dir.path() / "old-worker.sock";
  fs::path foreign = dir.path() / "other-socket";
  UniqueFd listener = bind_socket(live, true);
  { UniqueFd gone = bind_socket(stale, false); }  // bound, never listening: refused
  { UniqueFd gone = bind_socket(foreign, false); }
  write_file(dir.path() / "plain.sock", "not a socket");

  LeftoverOptions o;
  o.runtime_dir = dir.path();
  o.shm_prefix.clear();
  auto dry = clean_leftovers(o, DryRun::yes);
  ASSERT_TRUE(dry);
  EXPECT_THAT(paths(*dry), ::testing::ElementsAre(stale));
  EXPECT_TRUE(fs::exists(stale));
  auto r = clean_leftovers(o, DryRun::no);
  ASSERT_TRUE(r);
  EXPECT_THAT(paths(*r), ::testing::ElementsAre(stale));
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(foreign));
  EXPECT_TRUE(fs::exists(dir.path() / "plain.sock"));
}

TEST(Leftovers, SharedMemoryOfDeadCreatorsOnly) {
  // A prefix no real Symphony process uses ("symphony-" is the real one).
  std::string prefix = "symphonytest" + std::to_string(::getpid()) + "_";
  int dead = dead_pid();
  std::string stale = shm_segment_name(prefix, dead, 0);
  std::string live = shm_segment_name(prefix, ::getpid(), 1);
  std::string odd = prefix + std::to_string(dead) + "-x";  // not the convention
  EXPECT_EQ(shm_segment_name("symphony-", 4242, 7), "symphony-4242-7");
  for (const auto& name : {stale, live, odd}) {
    UniqueFd fd(::shm_open(("/" + name).c_str(), O_CREAT | O_RDWR | O_EXCL, 0600));
    ASSERT_TRUE(fd) << name << ": " << std::strerror(errno);
    ASSERT_EQ(::ftruncate(fd.get(), 4096), 0);
  }
  struct Unlink {
    std::vector<std::string> names;
    ~Unlink() {
      for (const auto& n : names) ::shm_unlink(("/" + n).c_str());
    }
  } cleanup{{stale, live, odd}};

  LeftoverOptions o;
  o.shm_prefix = prefix;
  auto dry = clean_leftovers(o, DryRun::yes);
  ASSERT_TRUE(dry);
  EXPECT_THAT(paths(*dry), ::testing::ElementsAre(fs::path("/dev/shm") / stale));
  EXPECT_TRUE(fs::exists(fs::path("/dev/shm") / stale));
  auto r = clean_leftovers(o, DryRun::no);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->removed.size(), 1u);
  EXPECT_EQ(r->removed[0].kind, Leftover::Kind::shm_segment);
  EXPECT_EQ(r->removed[0].bytes, 4096u);
  EXPECT_FALSE(fs::exists(fs::path("/dev/shm") / stale));
  EXPECT_TRUE(fs::exists(fs::path("/dev/shm") / live));
  EXPECT_TRUE(fs::exists(fs::path("/dev/shm") / odd));
}

TEST(Leftovers, AnEmptyShmPrefixMatchesNothing) {
  TempDir dir;
  write_file(dir.path() / (std::to_string(dead_pid()) + "-0"), "x");
  LeftoverOptions o;
  o.shm_dir = dir.path();
  o.shm_prefix.clear();
  auto r = clean_leftovers(o, DryRun::no);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->removed.empty());
}

}  // namespace
}  // namespace symphony::pit::stale
