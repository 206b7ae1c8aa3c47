// The stale manager against the real artifact store: tier moves driven by an
// injected clock, pinned and held versions left alone, dry runs, bounded
// slices, crash safety between a move's steps, read-back and restore.
#include "pit/stale/stale_manager.h"

#include <fcntl.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/unique_fd.h"
#include "pit/stale/durable_file.h"
#include "tests/pit/stale/test_support.h"

namespace symphony::pit::stale {
namespace {

namespace fs = std::filesystem;
using std::chrono::days;
using std::chrono::hours;
using testing::read_file;
using testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

class StaleManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = ArtifactStore::open(StoreOptions{.root = dir_.path() / "store"});
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(*store);
    auto remote = open_directory_tier(dir_.path() / "remote");
    ASSERT_TRUE(remote) << remote.error().message();
    remote_ = std::move(*remote);
  }

  // Every tier one day long, unless a test says otherwise.
  StaleOptions options() {
    StaleOptions o;
    o.policies = {RetentionPolicy{"default", days{1}, days{1}, days{1}, false}};
    o.archive_dir = dir_.path() / "archive";
    o.remote = remote_;
    o.now = [this] { return std::chrono::system_clock::now() + offset_; };
    o.retry_after = std::chrono::seconds{0};
    return o;
  }

  std::unique_ptr<StaleManager> open_manager(StaleOptions o) {
    auto m = StaleManager::open(*store_, std::move(o));
    EXPECT_TRUE(m) << m.error().message();
    return m ? std::move(*m) : nullptr;
  }

  VersionInfo put(const std::string& name, const std::string& data, const std::string& kind = "") {
    auto v = store_->put(bytes_of(data), PutOptions{.name = name, .kind = kind});
    EXPECT_TRUE(v) << v.error().message();
    return *v;
  }

  Tier tier_of(const std::string& ref) {
    auto v = store_->get(*ArtifactRef::parse(ref));
    EXPECT_TRUE(v) << ref;
    return v ? v->tier : Tier::active;
  }

  std::string read_back(StaleManager& m, const std::string& ref) {
    fs::path out = dir_.path() / "readback";
    auto r = m.read_to(*ArtifactRef::parse(ref), out);
    EXPECT_TRUE(r) << r.error().message();
    return r ? read_file(out) : std::string();
  }

  // A generous time budget: fsync on a loaded machine must not split slices.
  SliceReport slice(StaleManager& m,
                    SliceBudget budget = {.max_items = 64, .max_time = std::chrono::seconds(10)}) {
    auto r = m.run_slice(budget);
    EXPECT_TRUE(r) << r.error().message();
    return r ? *r : SliceReport{};
  }

  TempDir dir_;
  std::unique_ptr<ArtifactStore> store_;
  std::shared_ptr<RemoteTier> remote_;
  std::chrono::system_clock::duration offset_{0};
};

TEST_F(StaleManagerTest, MovesAVersionThroughEveryTierAsItAges) {
  put("reports/weekly", "hello, archive");
  auto m = open_manager(options());
  fs::path archived = dir_.path() / "archive" / "reports%weekly@1.zst";
  fs::path remote = dir_.path() / "remote" / "reports%weekly@1.zst";

  auto young = slice(*m);
  EXPECT_TRUE(young.moved.empty());
  EXPECT_FALSE(young.more);

  offset_ = days{1} + hours{1};
  auto first = slice(*m);
  ASSERT_EQ(first.moved.size(), 1u);
  EXPECT_EQ(to_string(first.moved[0]), "reports/weekly@1 active -> archived, 14 bytes");
  EXPECT_EQ(tier_of("reports/weekly@1"), Tier::archived);
  EXPECT_EQ(*store_->tier_location(*ArtifactRef::parse("reports/weekly@1")), archived.string());
  EXPECT_TRUE(fs::exists(archived));
  EXPECT_EQ(read_back(*m, "reports/weekly@1"), "hello, archive");

  offset_ = days{2} + hours{1};
  auto second = slice(*m);
  ASSERT_EQ(second.moved.size(), 1u);
  EXPECT_EQ(second.moved[0].to, Stage::remote);
  EXPECT_EQ(tier_of("reports/weekly@1"), Tier::remote);
  EXPECT_FALSE(fs::exists(archived));
  EXPECT_TRUE(fs::exists(remote));
  EXPECT_EQ(read_back(*m, "reports/weekly@1"), "hello, archive");

  auto census = m->census();
  ASSERT_TRUE(census);
  EXPECT_EQ(census->remote_versions, 1u);
  EXPECT_EQ(census->archived_versions, 0u);
  EXPECT_EQ(census->active_versions, 0u);

  offset_ = days{3} + hours{1};
  auto third = slice(*m);
  ASSERT_EQ(third.moved.size(), 1u);
  EXPECT_EQ(third.moved[0].to, Stage::deleted);
  auto gone = store_->get(*ArtifactRef::parse("reports/weekly@1"));
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code(), ENOENT);
  EXPECT_FALSE(fs::exists(remote));

  StaleStats stats = m->stats();
  EXPECT_EQ(stats.slices, 4u);
  EXPECT_EQ(stats.archived, 1u);
  EXPECT_EQ(stats.sent_remote, 1u);
  EXPECT_EQ(stats.deleted, 1u);
  EXPECT_GT(stats.bytes_archived, 0u);
  EXPECT_EQ(stats.bytes_sent_remote, stats.bytes_archived);
  ASSERT_TRUE(stats.last_slice);
  EXPECT_EQ(stats.last_slice->moved, 1u);
}

TEST_F(StaleManagerTest, AnOldVersionJumpsStraightToWhereItBelongs) {
  put("a", "aaaa");
  put("b", "bbbb");
  auto m = open_manager(options());
  offset_ = days{2} + hours{1};
  auto r = slice(*m);
  ASSERT_EQ(r.moved.size(), 2u);
  EXPECT_EQ(r.moved[0].to, Stage::remote);
  EXPECT_EQ(tier_of("a@1"), Tier::remote);
  EXPECT_EQ(read_back(*m, "b@1"), "bbbb");
  // No staging files left in the archive directory.
  EXPECT_TRUE(fs::is_empty(dir_.path() / "archive"));
}

TEST_F(StaleManagerTest, EachKindFollowsItsOwnPolicy) {
  put("r", "report", "report");
  put("d", "default");
  put("k", "keep", "model");
  auto o = options();
  o.policies = {RetentionPolicy{"default", days{30}, days{1}, days{1}, false},
                RetentionPolicy{"report", days{1}, days{1}, days{0}, false},
                RetentionPolicy{"model", days{1}, days{0}, days{0}, true}};
  auto m = open_manager(std::move(o));
  offset_ = days{1} + hours{1};
  auto r = slice(*m);
  ASSERT_EQ(r.moved.size(), 1u);
  EXPECT_EQ(r.moved[0].ref.name, "r");
  EXPECT_EQ(r.moved[0].kind, "report");
  EXPECT_EQ(tier_of("d@1"), Tier::active);
  EXPECT_EQ(tier_of("k@1"), Tier::active);  // active forever
  offset_ = days{2} + hours{1};
  EXPECT_EQ(slice(*m).moved.size(), 1u);  // report: no remote period → deleted
  EXPECT_FALSE(store_->get(*ArtifactRef::parse("r@1")));
  offset_ = days{400};
  slice(*m);
  EXPECT_EQ(tier_of("k@1"), Tier::active);
}

TEST_F(StaleManagerTest, PinnedAndHeldVersionsNeverMove) {
  put("pinned", "p");
  VersionInfo held = put("held", "h");
  put("free", "f");
  ASSERT_TRUE(store_->pin(*ArtifactRef::parse("pinned@1")));
  store_->hold("workflow-1", std::span<const Digest>(&held.digest, 1));
  auto m = open_manager(options());
  offset_ = days{10};
  auto plan = m->dry_run(100);
  ASSERT_TRUE(plan);
  ASSERT_EQ(plan->size(), 1u);
  EXPECT_EQ((*plan)[0].ref.name, "free");
  auto r = slice(*m);
  ASSERT_EQ(r.moved.size(), 1u);
  EXPECT_EQ(r.moved[0].ref.name, "free");
  EXPECT_EQ(tier_of("pinned@1"), Tier::active);
  EXPECT_EQ(tier_of("held@1"), Tier::active);
  // Released, it moves on like any other.
  store_->release("workflow-1");
  EXPECT_EQ(slice(*m).moved.size(), 1u);
  EXPECT_FALSE(store_->get(*ArtifactRef::parse("held@1")));
}

TEST_F(StaleManagerTest, PinnedDuringAMoveIsLeftWhereItWas) {
  put("racy", "bytes");
  auto o = options();
  o.fault = [this](MoveStep step, const Move& move) -> Result<void> {
    if (step == MoveStep::written) return store_->pin(move.ref);
    return ok();
  };
  auto m = open_manager(std::move(o));
  offset_ = days{1} + hours{1};
  auto r = slice(*m);
  EXPECT_TRUE(r.moved.empty());
  EXPECT_TRUE(r.failed.empty());
  EXPECT_EQ(r.skipped, 1u);
  EXPECT_EQ(tier_of("racy@1"), Tier::active);
  EXPECT_TRUE(fs::is_empty(dir_.path() / "archive"));  // the new copy was dropped
  EXPECT_EQ(m->stats().races, 1u);
}

TEST_F(StaleManagerTest, ArchivedBytesDecompressToTheRecordedDigest) {
  std::string data;
  for (int i = 0; i < 50000; ++i) data += "line " + std::to_string(i) + "\n";
  VersionInfo v = put("logs/big", data);
  auto m = open_manager(options());
  offset_ = days{1} + hours{1};
  ASSERT_EQ(slice(*m).moved.size(), 1u);
  fs::path file = dir_.path() / "archive" / "logs%big@1.zst";
  EXPECT_LT(fs::file_size(file), data.size() / 4);
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  Hasher hasher;
  auto r = read_archive(fd.get(), v.digest, [&](std::span<const std::byte> c) {
    hasher.update(c);
    return ok();
  });
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(hasher.finish(), v.digest);
}

TEST_F(StaleManagerTest, DryRunReportsAndChangesNothing) {
  put("one", "1111");
  put("two", "22");
  auto m = open_manager(options());
  offset_ = days{1} + hours{1};
  auto plan = m->dry_run(10);
  ASSERT_TRUE(plan) << plan.error().message();
  ASSERT_EQ(plan->size(), 2u);
  EXPECT_EQ(to_string((*plan)[0]), "one@1 active -> archived, 4 bytes");
  EXPECT_EQ(to_string((*plan)[1]), "two@1 active -> archived, 2 bytes");
  EXPECT_EQ(m->dry_run(1)->size(), 1u);
  EXPECT_EQ(tier_of("one@1"), Tier::active);
  EXPECT_TRUE(fs::is_empty(dir_.path() / "archive"));
  EXPECT_TRUE(fs::is_empty(dir_.path() / "remote"));
  EXPECT_EQ(m->stats().slices, 0u);
}

TEST_F(StaleManagerTest, SlicesAreBoundedAndSayWhenMoreRemains) {
  for (int i = 0; i < 10; ++i) put("n" + std::to_string(i), "data " + std::to_string(i));
  auto m = open_manager(options());
  offset_ = days{1} + hours{1};
  std::size_t total = 0;
  int slices = 0;
  while (true) {
    auto r = slice(*m, SliceBudget{.max_items = 3, .max_time = std::chrono::seconds(10)});
    EXPECT_LE(r.moved.size(), 3u);
    total += r.moved.size();
    ++slices;
    if (!r.more) break;
    ASSERT_LT(slices, 10);
  }
  EXPECT_EQ(total, 10u);
  EXPECT_EQ(slices, 4);
  // A zero time budget still makes progress: one item per slice.
  offset_ = days{2} + hours{1};
  auto r = slice(*m, SliceBudget{.max_items = 100, .max_time = std::chrono::milliseconds(0)});
  EXPECT_EQ(r.moved.size(), 1u);
  EXPECT_TRUE(r.more);
}

TEST_F(StaleManagerTest, CrashBeforeRecordingLeavesTheOldBytes) {
  put("c", "crash me");
  bool crash = true;
  auto o = options();
  o.fault = [&](MoveStep step, const Move&) -> Result<void> {
    if (crash && step == MoveStep::written) return Error(EIO, "injected crash");
    return ok();
  };
  auto m = open_manager(std::move(o));
  offset_ = days{1} + hours{1};
  auto r = slice(*m);
  ASSERT_EQ(r.failed.size(), 1u);
  EXPECT_THAT(r.failed[0].error, HasSubstr("injected crash"));
  EXPECT_EQ(tier_of("c@1"), Tier::active);
  EXPECT_EQ(read_back(*m, "c@1"), "crash me");
  // The unrecorded archive is an orphan the leftover sweep removes.
  auto swept = m->clean_leftovers({}, DryRun::no);
  ASSERT_TRUE(swept) << swept.error().message();
  ASSERT_EQ(swept->removed.size(), 1u);
  EXPECT_EQ(swept->removed[0].kind, Leftover::Kind::archive_file);
  // The next slice completes the move.
  crash = false;
  EXPECT_EQ(slice(*m).moved.size(), 1u);
  EXPECT_EQ(tier_of("c@1"), Tier::archived);
}

TEST_F(StaleManagerTest, CrashAfterRecordingLeavesBothCopies) {
  put("c", "both");
  bool crash = false;
  auto o = options();
  o.fault = [&](MoveStep step, const Move&) -> Result<void> {
    if (crash && step == MoveStep::recorded) return Error(EIO, "injected crash");
    return ok();
  };
  auto m = open_manager(std::move(o));
  offset_ = days{1} + hours{1};
  ASSERT_EQ(slice(*m).moved.size(), 1u);
  crash = true;
  offset_ = days{2} + hours{1};
  auto r = slice(*m);
  ASSERT_EQ(r.failed.size(), 1u);
  EXPECT_EQ(tier_of("c@1"), Tier::remote);
  fs::path old_copy = dir_.path() / "archive" / "c@1.zst";
  EXPECT_TRUE(fs::exists(old_copy));
  EXPECT_EQ(read_back(*m, "c@1"), "both");
  // Dry run names the orphan; the real sweep removes it and counts it.
  auto dry = m->clean_leftovers({}, DryRun::yes);
  ASSERT_TRUE(dry);
  ASSERT_EQ(dry->removed.size(), 1u);
  EXPECT_TRUE(fs::exists(old_copy));
  auto swept = m->clean_leftovers({}, DryRun::no);
  ASSERT_TRUE(swept);
  EXPECT_FALSE(fs::exists(old_copy));
  EXPECT_EQ(m->stats().leftovers_removed, 1u);
  EXPECT_EQ(read_back(*m, "c@1"), "both");
}

TEST_F(StaleManagerTest, RestoreBringsArchivedAndRemoteVersionsBack) {
  put("x", "from the archive");
  put("y", "from far away");
  auto m = open_manager(options());
  offset_ = days{1} + hours{1};
  ASSERT_EQ(slice(*m).moved.size(), 2u);
  auto x = m->restore(*ArtifactRef::parse("x@1"));
  ASSERT_TRUE(x) << x.error().message();
  EXPECT_EQ(x->tier, Tier::active);
  EXPECT_FALSE(fs::exists(dir_.path() / "archive" / "x@1.zst"));
  auto view = store_->map_blob(x->digest);
  ASSERT_TRUE(view);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(view->bytes().data()), view->bytes().size()),
            "from the archive");

  // Ages count from creation: unless pinned, a restored version moves on at
  // the next slice where its policy says so (x with y, here).
  offset_ = days{2} + hours{1};
  slice(*m);
  EXPECT_EQ(tier_of("y@1"), Tier::remote);
  EXPECT_EQ(tier_of("x@1"), Tier::remote);
  auto y = m->restore(*ArtifactRef::parse("y"));
  ASSERT_TRUE(y) << y.error().message();
  EXPECT_EQ(y->version, 1u);
  EXPECT_EQ(y->tier, Tier::active);
  EXPECT_FALSE(fs::exists(dir_.path() / "remote" / "y@1.zst"));
  EXPECT_TRUE(fs::exists(dir_.path() / "remote" / "x@1.zst"));
  EXPECT_EQ(read_back(*m, "y@1"), "from far away");
  EXPECT_EQ(m->stats().restored, 2u);
}

TEST_F(StaleManagerTest, WithoutARemoteTierTheArchiveKeepsTheRemotePeriod) {
  put("z", "zzz");
  auto o = options();
  o.remote = nullptr;
  auto m = open_manager(std::move(o));
  offset_ = days{2} + hours{1};
  slice(*m);
  EXPECT_EQ(tier_of("z@1"), Tier::archived);
  offset_ = days{3} + hours{1};
  ASSERT_EQ(slice(*m).moved.size(), 1u);
  EXPECT_FALSE(store_->get(*ArtifactRef::parse("z@1")));
  EXPECT_TRUE(fs::is_empty(dir_.path() / "archive"));
}

}  // namespace
}  // namespace symphony::pit::stale
