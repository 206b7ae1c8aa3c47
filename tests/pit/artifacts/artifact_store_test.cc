// Tests of the artifact store (pit/artifacts/artifact_store.h): references
// and names, every query, versioning, dedup, lineage, pins, holds and gc,
// the stale manager's methods, bad input, injected I/O failures at each
// stage of a put (the store must stay consistent and keep working), a
// failing SQLite commit, and concurrent puts. Each test gets a fresh store
// in its own directory under /tmp. The kill -9 test is
// artifact_store_crash_test.cc.
#include "pit/artifacts/artifact_store.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

#include "tests/support/temp_dir.h"

namespace symphony::pit {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using symphony::testing::count_entries;
using symphony::testing::TempDir;

std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

std::string text_of(std::span<const std::byte> b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

// A StoreIo that fails one kind of call (or shortens writes) while armed.
class FaultyIo : public StoreIo {
 public:
  enum class Op { none, write, short_write, fsync, fdatasync, syncfs, rename, open };

  void arm(Op op, int err) {
    err_ = err;
    op_.store(op);
  }
  void disarm() { op_.store(Op::none); }

  ssize_t write(int fd, const void* buf, std::size_t len) override {
    if (op_ == Op::short_write) return StoreIo::write(fd, buf, std::min<std::size_t>(len, 7));
    if (op_ == Op::write) return fail<ssize_t>();
    return StoreIo::write(fd, buf, len);
  }
  int fsync(int fd) override { return op_ == Op::fsync ? fail<int>() : StoreIo::fsync(fd); }
  int fdatasync(int fd) override { return op_ == Op::fdatasync ? fail<int>() : StoreIo::fdatasync(fd); }
  int syncfs(int fd) override { return op_ == Op::syncfs ? fail<int>() : StoreIo::syncfs(fd); }
  int renameat(int a, const char* b, int c, const char* d) override {
    return op_ == Op::rename ? fail<int>() : StoreIo::renameat(a, b, c, d);
  }
  int openat(int dirfd, const char* path, int flags, unsigned mode) override {
    return op_ == Op::open && (flags & O_CREAT) ? fail<int>() : StoreIo::openat(dirfd, path, flags, mode);
  }

 private:
  template <class T>
  T fail() {
    errno = err_;
    return -1;
  }
  std::atomic<Op> op_{Op::none};
  int err_ = 0;
};

class ArtifactStoreTest : public ::testing::Test {
 protected:
  StoreOptions options() {
    StoreOptions o;
    o.root = dir_.path() / "store";
    o.max_batch_delay = 0us;
    return o;
  }
  void open(StoreOptions o) {
    store_.reset();
    auto s = ArtifactStore::open(std::move(o));
    ASSERT_TRUE(s) << s.error().message();
    store_ = std::move(*s);
  }
  void open() { open(options()); }

  VersionInfo put(std::string_view data, PutOptions o) {
    auto v = store_->put(bytes_of(data), o);
    EXPECT_TRUE(v) << v.error().message();
    return v ? *v : VersionInfo{};
  }
  VersionInfo put(std::string_view data, std::string name) {
    PutOptions o;
    o.name = std::move(name);
    return put(data, o);
  }
  std::string read(const Digest& d) {
    auto view = store_->map_blob(d);
    EXPECT_TRUE(view) << view.error().message();
    return view ? text_of(view->bytes()) : std::string();
  }
  std::filesystem::path root() const { return dir_.path() / "store"; }

  TempDir dir_{"symphony-artifacts-test"};
  std::unique_ptr<ArtifactStore> store_;
};

// ---------------------------------------------------------------------------
// Names and references

TEST(ArtifactRef, ParsesNameAndOptionalVersion) {
  auto plain = ArtifactRef::parse("models/resnet-50.onnx");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->name, "models/resnet-50.onnx");
  EXPECT_EQ(plain->version, 0u);
  auto versioned = ArtifactRef::parse("report_2@17");
  ASSERT_TRUE(versioned);
  EXPECT_EQ(versioned->name, "report_2");
  EXPECT_EQ(versioned->version, 17u);
  EXPECT_EQ(versioned->to_string(), "report_2@17");
  EXPECT_EQ(plain->to_string(), "models/resnet-50.onnx");
}

TEST(ArtifactRef, RejectsBadVersionsSayingWhere) {
  EXPECT_THAT(ArtifactRef::parse("x@").error().message(), HasSubstr("no version after '@'"));
  EXPECT_THAT(ArtifactRef::parse("x@0").error().message(), HasSubstr("versions start at 1"));
  EXPECT_THAT(ArtifactRef::parse("x@1a").error().message(), HasSubstr("'a' at position 4 is not a digit"));
  EXPECT_THAT(ArtifactRef::parse("x@99999999999999999999999").error().message(), HasSubstr("out of range"));
}

TEST(ArtifactName, NamesTheOffendingCharacterAndPosition) {
  EXPECT_TRUE(validate_artifact_name("a"));
  EXPECT_TRUE(validate_artifact_name("A.b_c-d/e9"));
  EXPECT_THAT(validate_artifact_name("ab c").error().message(), HasSubstr("' ' at position 3 is not allowed"));
  EXPECT_THAT(validate_artifact_name("a\nb").error().message(), HasSubstr("'\\x0a' at position 2"));
  EXPECT_THAT(validate_artifact_name(".hidden").error().message(), HasSubstr("must start with a letter or digit"));
  EXPECT_THAT(validate_artifact_name("a/../b").error().message(), HasSubstr("\"..\" at position 3"));
  EXPECT_THAT(validate_artifact_name("a//b").error().message(), HasSubstr("\"//\" at position 2"));
  EXPECT_THAT(validate_artifact_name("a/").error().message(), HasSubstr("must not end with '/'"));
  EXPECT_THAT(validate_artifact_name("").error().message(), HasSubstr("empty"));
  EXPECT_THAT(validate_artifact_name(std::string(201, 'a')).error().message(), HasSubstr("the limit is 200"));
  EXPECT_TRUE(validate_artifact_name(std::string(200, 'a')));
}

TEST(TierName, IsTheTierWord) {
  EXPECT_EQ(to_string(Tier::active), "active");
  EXPECT_EQ(to_string(Tier::archived), "archived");
  EXPECT_EQ(to_string(Tier::remote), "remote");
}

// ---------------------------------------------------------------------------
// Puts and queries

TEST_F(ArtifactStoreTest, PutRecordsEveryFieldAndReadsBack) {
  open();
  put("base", "data/base");
  PutOptions o;
  o.name = "models/m1";
  o.media_type = "application/onnx";
  o.kind = "model";
  o.producer = {"wf-7", "train", "trainer@1.2"};
  o.inputs = {{"data/base", 0}};
  o.quality = 0.75;
  o.scorer = "eval@3";
  auto before = std::chrono::system_clock::now();
  VersionInfo v = put("weights", o);
  EXPECT_EQ(v.name, "models/m1");
  EXPECT_EQ(v.version, 1u);
  EXPECT_EQ(v.digest, Digest::of("weights"));
  EXPECT_EQ(v.size, 7u);
  EXPECT_EQ(v.media_type, "application/onnx");
  EXPECT_EQ(v.kind, "model");
  EXPECT_EQ(v.producer, (Producer{"wf-7", "train", "trainer@1.2"}));
  EXPECT_THAT(v.inputs, ElementsAre(ArtifactRef{"data/base", 1}));  // "latest" resolved at commit
  EXPECT_EQ(v.quality, 0.75);
  EXPECT_EQ(v.scorer, "eval@3");
  EXPECT_GE(v.created, before - 1s);
  EXPECT_FALSE(v.pinned);
  EXPECT_EQ(v.tier, Tier::active);

  auto got = store_->get({"models/m1", 1});
  ASSERT_TRUE(got);
  EXPECT_EQ(got->digest, v.digest);
  EXPECT_EQ(got->producer, v.producer);
  EXPECT_EQ(read(v.digest), "weights");

  auto fd = store_->open_blob(v.digest);
  ASSERT_TRUE(fd);
  char buf[16] = {};
  EXPECT_EQ(::read(fd->get(), buf, sizeof buf), 7);
  EXPECT_EQ(std::string(buf), "weights");
}

TEST_F(ArtifactStoreTest, DefaultsMediaTypeAndKind) {
  open();
  VersionInfo v = put("x", "plain");
  EXPECT_EQ(v.media_type, "application/octet-stream");
  EXPECT_EQ(v.kind, "default");
  EXPECT_FALSE(v.quality);
}

TEST_F(ArtifactStoreTest, NumbersVersionsPerNameFromOne) {
  open();
  EXPECT_EQ(put("a1", "a").version, 1u);
  EXPECT_EQ(put("a2", "a").version, 2u);
  EXPECT_EQ(put("b1", "b").version, 1u);
  EXPECT_EQ(put("a3", "a").version, 3u);
  auto all = store_->versions("a");
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].version, 1u);
  EXPECT_EQ((*all)[2].version, 3u);
  EXPECT_EQ(read((*all)[1].digest), "a2");
  EXPECT_EQ(store_->get({"a", 0})->version, 3u);
}

TEST_F(ArtifactStoreTest, StoresIdenticalContentOnce) {
  open();
  VersionInfo a = put("same bytes", "a");
  VersionInfo b = put("same bytes", "b");
  VersionInfo a2 = put("same bytes", "a");
  EXPECT_EQ(a.digest, b.digest);
  EXPECT_EQ(count_entries(root() / "objects"), 1u);
  auto blob = store_->find_blob(a.digest);
  ASSERT_TRUE(blob);
  EXPECT_EQ(blob->versions, 3u);
  EXPECT_EQ(blob->size, 10u);
  StoreStats s = store_->stats();
  EXPECT_EQ(s.blobs, 1u);
  EXPECT_EQ(s.versions, 3u);
  EXPECT_EQ(s.names, 2u);
  EXPECT_EQ(s.dedup_hits, 2u);
  EXPECT_EQ(s.puts, 3u);
  EXPECT_EQ(a2.version, 2u);
  EXPECT_EQ(count_entries(root() / "tmp"), 0u);
}

TEST_F(ArtifactStoreTest, FindsLatestAndBlobFromTheIndex) {
  open();
  EXPECT_EQ(store_->find_latest("nothing"), nullptr);
  EXPECT_FALSE(store_->find_blob(Digest::of("nothing")));
  put("one", "n");
  VersionInfo two = put("two", "n");
  auto latest = store_->find_latest(std::string_view("n"));
  ASSERT_NE(latest, nullptr);
  EXPECT_EQ(latest->version, 2u);
  EXPECT_EQ(latest->digest, two.digest);
  auto blob = store_->find_blob(two.digest);
  ASSERT_TRUE(blob);
  EXPECT_EQ(blob->size, 3u);
  EXPECT_EQ(blob->versions, 1u);
}

TEST_F(ArtifactStoreTest, BestPrefersHighestQualityThenNewest) {
  open();
  put("unscored", "m");
  auto scored = [&](std::string data, double q) {
    PutOptions o;
    o.name = "m";
    o.quality = q;
    o.scorer = "judge";
    return put(data, o);
  };
  EXPECT_EQ(store_->best("m")->version, 1u);  // nothing scored: the newest
  scored("low", 0.2);
  VersionInfo high = scored("high", 0.9);
  scored("mid", 0.5);
  put("unscored again", "m");
  EXPECT_EQ(store_->best("m")->version, high.version);
  VersionInfo tie = scored("tie", 0.9);
  EXPECT_EQ(store_->best("m")->version, tie.version);
  EXPECT_THAT(store_->best("none").error().message(), HasSubstr("no artifact named 'none'"));
}

TEST_F(ArtifactStoreTest, ListsLatestOfEveryNameSortedWithPrefix) {
  open();
  put("1", "zeta");
  put("2", "models/b");
  put("3", "models/a");
  put("4", "models/a");
  auto all = store_->list();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].name, "models/a");
  EXPECT_EQ((*all)[0].version, 2u);
  EXPECT_EQ((*all)[1].name, "models/b");
  EXPECT_EQ((*all)[2].name, "zeta");
  auto models = store_->list("models/");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->size(), 2u);
  EXPECT_TRUE(store_->list("nope")->empty());
}

TEST_F(ArtifactStoreTest, LineageIsTransitiveBreadthFirstEachOnce) {
  open();
  // raw -> clean -> {features, stats} -> model (a diamond), plus config -> model.
  put("raw", "raw");
  put("cfg", "config");
  auto with_inputs = [&](std::string name, std::vector<ArtifactRef> inputs) {
    PutOptions o;
    o.name = std::move(name);
    o.inputs = std::move(inputs);
    return put(o.name + " bytes", o);
  };
  with_inputs("clean", {{"raw", 1}});
  with_inputs("features", {{"clean", 0}});
  with_inputs("stats", {{"clean", 1}});
  with_inputs("model", {{"features", 1}, {"stats", 1}, {"config", 0}});
  auto lineage = store_->lineage({"model", 0});
  ASSERT_TRUE(lineage) << lineage.error().message();
  std::vector<std::string> names;
  for (const VersionInfo& v : *lineage) names.push_back(v.name + "@" + std::to_string(v.version));
  EXPECT_THAT(names, ElementsAre("features@1", "stats@1", "config@1", "clean@1", "raw@1"));
  EXPECT_TRUE(store_->lineage({"raw", 1})->empty());
  EXPECT_THAT(store_->lineage({"model", 4}).error().message(), HasSubstr("'model' has version 1, not 4"));
}

TEST_F(ArtifactStoreTest, ByDigestListsEveryVersionWithThatContent) {
  open();
  VersionInfo a = put("shared", "a");
  put("other", "a");
  put("shared", "b");
  auto found = store_->by_digest(a.digest);
  ASSERT_TRUE(found);
  ASSERT_EQ(found->size(), 2u);
  EXPECT_EQ((*found)[0].name, "a");
  EXPECT_EQ((*found)[0].version, 1u);
  EXPECT_EQ((*found)[1].name, "b");
  EXPECT_TRUE(store_->by_digest(Digest::of("never stored"))->empty());
}

TEST_F(ArtifactStoreTest, StreamsALargeArtifactInChunks) {
  open();
  auto writer = store_->begin_put();
  ASSERT_TRUE(writer);
  std::string chunk(64 * 1024, '\0');
  Hasher hasher;
  for (int i = 0; i < 128; ++i) {  // 8 MiB
    for (std::size_t j = 0; j < chunk.size(); ++j) chunk[j] = static_cast<char>((i * 31 + j * 7) & 0xff);
    ASSERT_TRUE((*writer)->write(bytes_of(chunk)));
    hasher.update(chunk);
  }
  EXPECT_EQ((*writer)->size(), 8u << 20);
  PutOptions o;
  o.name = "big";
  auto v = (*writer)->commit(o);
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_EQ(v->digest, hasher.finish());
  EXPECT_EQ(v->size, 8u << 20);
  auto view = store_->map_blob(v->digest);
  ASSERT_TRUE(view);
  EXPECT_EQ(Digest::of(view->bytes()), v->digest);
  EXPECT_THAT((*writer)->write(bytes_of("more")).error().message(), HasSubstr("finished"));
}

TEST_F(ArtifactStoreTest, ZeroByteArtifactMapsEmpty) {
  open();
  VersionInfo v = put("", "empty");
  EXPECT_EQ(v.size, 0u);
  auto view = store_->map_blob(v.digest);
  ASSERT_TRUE(view);
  EXPECT_TRUE(view->bytes().empty());
}

TEST_F(ArtifactStoreTest, DroppedWriterLeavesNothingBehind) {
  open();
  {
    auto writer = store_->begin_put();
    ASSERT_TRUE(writer);
    ASSERT_TRUE((*writer)->write(bytes_of("abandoned")));
    EXPECT_EQ(count_entries(root() / "tmp"), 1u);
  }
  EXPECT_EQ(count_entries(root() / "tmp"), 0u);
  EXPECT_EQ(count_entries(root() / "objects"), 0u);
  EXPECT_EQ(store_->stats().versions, 0u);
}

TEST_F(ArtifactStoreTest, ReopenRebuildsEveryQuery) {
  open();
  put("r", "raw");
  PutOptions o;
  o.name = "model";
  o.inputs = {{"raw", 1}};
  o.quality = 0.5;
  o.scorer = "s";
  o.producer = {"wf", "st", "ext@1"};
  VersionInfo m = put("m", o);
  ASSERT_TRUE(store_->pin({"model", 1}));
  open();
  auto got = store_->get({"model", 1});
  ASSERT_TRUE(got);
  EXPECT_EQ(got->digest, m.digest);
  EXPECT_EQ(got->inputs, m.inputs);
  EXPECT_EQ(got->quality, 0.5);
  EXPECT_EQ(got->scorer, "s");
  EXPECT_EQ(got->producer, m.producer);
  EXPECT_TRUE(got->pinned);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::microseconds>(got->created - m.created).count(), 0);
  EXPECT_EQ(store_->find_latest("model")->version, 1u);
  EXPECT_EQ(store_->find_blob(m.digest)->versions, 1u);
  EXPECT_EQ(store_->lineage({"model", 0})->size(), 1u);
  EXPECT_EQ(read(m.digest), "m");
  EXPECT_EQ(put("m2", "model").version, 2u);
}

TEST_F(ArtifactStoreTest, NeverReusesAVersionNumber) {
  open();
  put("1", "x");
  put("2", "x");
  put("3", "x");
  ASSERT_TRUE(store_->remove_version({"x", 3}));
  EXPECT_EQ(put("4", "x").version, 4u);
  ASSERT_TRUE(store_->remove_version({"x", 2}));
  open();
  EXPECT_EQ(put("5", "x").version, 5u);
  EXPECT_THAT(store_->get({"x", 2}).error().message(), HasSubstr("'x' has versions 1, 4, 5, not 2"));
}

// ---------------------------------------------------------------------------
// Bad input

TEST_F(ArtifactStoreTest, UnknownNamesAndVersionsSayWhatExists) {
  open();
  EXPECT_EQ(store_->get({"x", 0}).error().message(), "no artifact named 'x'");
  put("1", "x");
  put("2", "x");
  put("3", "x");
  auto missing = store_->get({"x", 7});
  EXPECT_EQ(missing.error().message(), "'x' has versions 1–3, not 7");
  EXPECT_EQ(missing.error().code(), ENOENT);
  EXPECT_THAT(store_->versions("y").error().message(), HasSubstr("no artifact named 'y'"));
  EXPECT_THAT(store_->pin({"x", 9}).error().message(), HasSubstr("not 9"));
  EXPECT_THAT(store_->get({"bad name", 0}).error().message(), HasSubstr("' ' at position 4"));
}

TEST_F(ArtifactStoreTest, RejectsBadPutsAndKeepsStateIntact) {
  StoreOptions o = options();
  o.max_artifact_size = 16;
  open(o);
  put("good", "x");
  const StoreStats before = store_->stats();
  auto fails = [&](std::string_view data, PutOptions p, std::string_view message) {
    auto r = store_->put(bytes_of(data), p);
    ASSERT_FALSE(r) << "put '" << p.name << "' succeeded";
    EXPECT_THAT(r.error().message(), HasSubstr(std::string(message)));
  };
  PutOptions bad;
  bad.name = "has space";
  fails("d", bad, "' ' at position 4 is not allowed");
  bad.name = "q";
  bad.quality = 1.5;
  fails("d", bad, "quality 1.500000 of 'q' is outside [0, 1]");
  bad.quality = -0.01;
  fails("d", bad, "outside [0, 1]");
  bad.quality = std::nan("");
  fails("d", bad, "outside [0, 1]");
  bad.quality.reset();
  bad.inputs = {{"x", 4}};
  fails("d", bad, "input 'x@4': 'x' has version 1, not 4");
  bad.inputs = {{"ghost", 0}};
  fails("d", bad, "input 'ghost': no artifact named 'ghost'");
  bad.inputs = {{"bad//input", 1}};
  fails("d", bad, "\"//\" at position 4");
  bad.inputs.clear();
  bad.media_type = "nonsense";
  fails("d", bad, "media type 'nonsense'");
  bad.media_type.clear();
  bad.kind = "bad kind";
  fails("d", bad, "kind 'bad kind'");
  bad.kind.clear();
  fails("seventeen bytes!!", bad, "more than max_artifact_size (16 bytes)");

  // Streamed: the limit applies as the bytes arrive.
  auto writer = store_->begin_put();
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->write(bytes_of("0123456789")));
  auto over = (*writer)->write(bytes_of("0123456789"));
  EXPECT_THAT(over.error().message(), HasSubstr("larger than max_artifact_size"));
  EXPECT_EQ(over.error().code(), EFBIG);

  const StoreStats after = store_->stats();
  EXPECT_EQ(after.versions, before.versions);
  EXPECT_EQ(after.blobs, before.blobs);
  EXPECT_EQ(count_entries(root() / "tmp"), 0u);
  EXPECT_EQ(count_entries(root() / "objects"), 1u);
  EXPECT_EQ(put("next", "x").version, 2u);
}

TEST_F(ArtifactStoreTest, SecondOpenOfTheSameRootIsRefused) {
  open();
  auto second = ArtifactStore::open(options());
  ASSERT_FALSE(second);
  EXPECT_THAT(second.error().message(), HasSubstr("is open in another process"));
}

// ---------------------------------------------------------------------------
// Pins, holds, removal, gc

TEST_F(ArtifactStoreTest, PinsLatestOrExactVersionDurably) {
  open();
  put("1", "x");
  put("2", "x");
  ASSERT_TRUE(store_->pin({"x", 0}));
  EXPECT_TRUE(store_->get({"x", 2})->pinned);
  EXPECT_FALSE(store_->get({"x", 1})->pinned);
  EXPECT_TRUE(store_->find_latest("x")->pinned);
  EXPECT_EQ(store_->stats().pinned_versions, 1u);
  open();
  EXPECT_TRUE(store_->get({"x", 2})->pinned);
  ASSERT_TRUE(store_->unpin({"x", 2}));
  open();
  EXPECT_FALSE(store_->get({"x", 2})->pinned);
}

TEST_F(ArtifactStoreTest, RemoveVersionRefusesPinnedAndHeld) {
  open();
  VersionInfo v = put("keep", "x");
  put("other", "x");
  ASSERT_TRUE(store_->pin({"x", 1}));
  auto pinned = store_->remove_version({"x", 1});
  EXPECT_THAT(pinned.error().message(), HasSubstr("'x@1' is pinned"));
  ASSERT_TRUE(store_->unpin({"x", 1}));
  std::vector<Digest> held{v.digest};
  store_->hold("wf-42", held);
  EXPECT_EQ(store_->stats().held_blobs, 1u);
  auto busy = store_->remove_version({"x", 1});
  EXPECT_THAT(busy.error().message(), HasSubstr("'x@1' is held by 'wf-42'"));
  store_->release("wf-42");
  EXPECT_EQ(store_->stats().held_blobs, 0u);
  EXPECT_THAT(store_->remove_version({"x", 0}).error().message(), HasSubstr("name the version"));
  ASSERT_TRUE(store_->remove_version({"x", 1}));
  EXPECT_THAT(store_->get({"x", 1}).error().message(), HasSubstr("'x' has version 2, not 1"));
  EXPECT_EQ(store_->find_blob(v.digest)->versions, 0u);
  ASSERT_TRUE(store_->remove_version({"x", 2}));
  EXPECT_EQ(store_->get({"x", 0}).error().message(), "no artifact named 'x'");
  EXPECT_EQ(store_->find_latest("x"), nullptr);
}

TEST_F(ArtifactStoreTest, GcKeepsReferencedHeldAndYoungBlobs) {
  StoreOptions o = options();
  o.gc_grace = 3600s;
  open(o);
  VersionInfo a = put("aaa", "a");
  VersionInfo b = put("bbb", "b");
  VersionInfo p = put("ppp", "p");
  ASSERT_TRUE(store_->pin({"p", 1}));
  ASSERT_TRUE(store_->remove_version({"a", 1}));
  ASSERT_TRUE(store_->remove_version({"b", 1}));

  auto young = store_->gc(false);
  ASSERT_TRUE(young);
  EXPECT_EQ(young->blobs_removed, 0u);
  EXPECT_EQ(young->blobs_kept_grace, 2u);
  EXPECT_EQ(young->blobs_kept_pinned, 1u);

  o.gc_grace = 0s;
  open(o);
  std::vector<Digest> held{b.digest};
  store_->hold("wf", held);
  auto dry = store_->gc(true);
  ASSERT_TRUE(dry);
  EXPECT_EQ(dry->blobs_removed, 1u);
  EXPECT_EQ(dry->bytes_removed, 3u);
  EXPECT_THAT(dry->removed, ElementsAre(a.digest));
  EXPECT_EQ(dry->blobs_kept_held, 1u);
  EXPECT_TRUE(store_->find_blob(a.digest));  // a dry run removes nothing
  EXPECT_EQ(count_entries(root() / "objects"), 3u);

  auto real = store_->gc(false);
  ASSERT_TRUE(real);
  EXPECT_THAT(real->removed, ElementsAre(a.digest));
  EXPECT_FALSE(store_->find_blob(a.digest));
  EXPECT_EQ(count_entries(root() / "objects"), 2u);
  store_->release("wf");
  ASSERT_TRUE(store_->gc(false));
  EXPECT_FALSE(store_->find_blob(b.digest));
  EXPECT_TRUE(store_->find_blob(p.digest));
  EXPECT_EQ(count_entries(root() / "objects"), 1u);
  open(o);  // removal is durable
  EXPECT_FALSE(store_->find_blob(a.digest));
  EXPECT_EQ(read(p.digest), "ppp");
  // The same bytes can be stored again after their blob went.
  EXPECT_EQ(read(put("aaa", "a").digest), "aaa");
}

TEST_F(ArtifactStoreTest, MappedBlobStaysReadableAfterGcRemovesIt) {
  StoreOptions o = options();
  o.gc_grace = 0s;
  open(o);
  std::string data(100000, 'm');
  VersionInfo v = put(data, "m");
  auto view = store_->map_blob(v.digest);
  ASSERT_TRUE(view);
  ASSERT_TRUE(store_->remove_version({"m", 1}));
  ASSERT_EQ(store_->gc(false)->blobs_removed, 1u);
  EXPECT_EQ(count_entries(root() / "objects"), 0u);
  EXPECT_EQ(text_of(view->bytes()), data);
  EXPECT_THAT(store_->map_blob(v.digest).error().message(), HasSubstr("no blob"));
}

// ---------------------------------------------------------------------------
// For the stale manager

TEST_F(ArtifactStoreTest, CandidatesAreOldestFirstWithoutPinnedOrHeld) {
  open();
  VersionInfo a = put("a", "a");
  std::this_thread::sleep_for(2ms);
  put("b", "b");
  std::this_thread::sleep_for(2ms);
  put("c", "c");
  std::this_thread::sleep_for(2ms);
  VersionInfo d = put("d", "d");
  ASSERT_TRUE(store_->pin({"b", 1}));
  std::vector<Digest> held{a.digest};
  store_->hold("wf", held);
  auto now = std::chrono::system_clock::now();
  auto c = store_->candidates(Tier::active, now, 10);
  ASSERT_TRUE(c);
  std::vector<std::string> names;
  for (const auto& v : *c) names.push_back(v.name);
  EXPECT_THAT(names, ElementsAre("c", "d"));
  EXPECT_EQ(store_->candidates(Tier::active, now, 1)->size(), 1u);
  EXPECT_TRUE(store_->candidates(Tier::active, d.created, 10)->size() == 1);  // before d: only c
  EXPECT_TRUE(store_->candidates(Tier::archived, now, 10)->empty());
}

TEST_F(ArtifactStoreTest, GcFreesBytesOnlyArchivedVersionsNameAndAPutBringsThemBack) {
  StoreOptions o = options();
  o.gc_grace = 0s;
  open(o);
  VersionInfo moved = put("archived bytes", "moved");
  VersionInfo shared = put("shared bytes", "shared-archived");
  put("shared bytes", "shared-active");
  ASSERT_TRUE(store_->set_tier({"moved", 1}, Tier::archived, "/archive/moved@1.zst"));
  ASSERT_TRUE(store_->set_tier({"shared-archived", 1}, Tier::remote, "remote-key"));

  auto report = store_->gc(false);
  ASSERT_TRUE(report) << report.error().message();
  // Only "moved" lost its bytes: "shared bytes" is still named by an active version.
  EXPECT_THAT(report->removed, ElementsAre(moved.digest));
  EXPECT_FALSE(store_->find_blob(moved.digest));
  EXPECT_TRUE(store_->find_blob(shared.digest));
  EXPECT_EQ(store_->open_blob(moved.digest).error().code(), ENOENT);
  // The version itself is still there, in its tier.
  EXPECT_EQ(store_->get({"moved", 1})->tier, Tier::archived);
  EXPECT_EQ(store_->by_digest(moved.digest)->size(), 1u);

  // The same bytes put again are written again (not deduplicated against
  // bytes that are gone), and everything survives a reopen.
  VersionInfo again = put("archived bytes", "again");
  EXPECT_EQ(again.digest, moved.digest);
  EXPECT_EQ(read(moved.digest), "archived bytes");
  open(o);
  EXPECT_EQ(read(moved.digest), "archived bytes");
  EXPECT_EQ(store_->get({"moved", 1})->tier, Tier::archived);
  ASSERT_TRUE(store_->remove_version({"again", 1}));
  ASSERT_TRUE(store_->gc(false));
  EXPECT_FALSE(store_->find_blob(moved.digest));
  open(o);  // a version without bytes loads cleanly
  EXPECT_FALSE(store_->find_blob(moved.digest));
  EXPECT_EQ(store_->get({"moved", 1})->tier, Tier::archived);
  EXPECT_EQ(store_->stats().blobs, 1u);
}

TEST_F(ArtifactStoreTest, SetTierRecordsLocationDurablyAndRefusesPinned) {
  open();
  VersionInfo v = put("bytes", "x");
  put("pinned", "p");
  ASSERT_TRUE(store_->pin({"p", 1}));
  auto active = store_->tier_location({"x", 1});
  ASSERT_TRUE(active);
  EXPECT_EQ(*active, (root() / "objects" / v.digest.hex()).string());
  ASSERT_TRUE(store_->set_tier({"x", 1}, Tier::archived, "/archive/x-1.zst"));
  EXPECT_EQ(store_->get({"x", 1})->tier, Tier::archived);
  EXPECT_EQ(*store_->tier_location({"x", 1}), "/archive/x-1.zst");
  EXPECT_EQ(store_->candidates(Tier::archived, std::chrono::system_clock::now(), 5)->size(), 1u);
  auto refused = store_->set_tier({"p", 1}, Tier::archived, "/archive/p");
  EXPECT_THAT(refused.error().message(), HasSubstr("'p@1' is pinned"));
  open();
  EXPECT_EQ(store_->get({"x", 1})->tier, Tier::archived);
  EXPECT_EQ(*store_->tier_location({"x", 0}), "/archive/x-1.zst");
  EXPECT_EQ(store_->get({"p", 1})->tier, Tier::active);
  EXPECT_THAT(store_->tier_location({"nope", 1}).error().message(), HasSubstr("no artifact named 'nope'"));
}

// ---------------------------------------------------------------------------
// Recovery

TEST_F(ArtifactStoreTest, OpenRemovesTemporaryAndUnacknowledgedFiles) {
  open();
  VersionInfo kept = put("kept", "k");
  store_.reset();
  std::ofstream(root() / "tmp" / "put-1-1") << "half a put";
  std::ofstream(root() / "objects" / Digest::of("renamed, never committed").hex()) << "renamed, never committed";
  std::ofstream(root() / "objects" / "junk") << "?";
  open();
  EXPECT_EQ(count_entries(root() / "tmp"), 0u);
  EXPECT_EQ(count_entries(root() / "objects"), 1u);
  EXPECT_EQ(read(kept.digest), "kept");
}

// ---------------------------------------------------------------------------
// Injected failures: every stage of a put fails cleanly and the store keeps
// working afterwards.

struct Fault {
  FaultyIo::Op op;
  int err;
  std::size_t syncfs_threshold;  // 1: flush with syncfs even for one blob
  const char* what;              // in the message
  const char* where;             // the path in the message
};

class ArtifactStoreFaultTest : public ArtifactStoreTest, public ::testing::WithParamInterface<Fault> {};

TEST_P(ArtifactStoreFaultTest, FailedStageFailsThePutAndLeavesTheStoreConsistent) {
  const Fault& f = GetParam();
  auto io = std::make_shared<FaultyIo>();
  StoreOptions o = options();
  o.io = io;
  o.syncfs_threshold = f.syncfs_threshold;
  open(o);
  VersionInfo before = put("before", "x");

  io->arm(f.op, f.err);
  auto failed = store_->put(bytes_of("during"), PutOptions{.name = "x"});
  io->disarm();
  ASSERT_FALSE(failed);
  const std::string message = failed.error().message();
  EXPECT_THAT(message, HasSubstr("put 'x'"));
  EXPECT_THAT(message, HasSubstr(f.what));
  EXPECT_THAT(message, HasSubstr((root() / f.where).string()));
  EXPECT_THAT(message, HasSubstr(std::strerror(f.err)));
  EXPECT_EQ(failed.error().code(), f.err);

  EXPECT_EQ(store_->get({"x", 0})->version, 1u);
  EXPECT_FALSE(store_->find_blob(Digest::of("during")));
  EXPECT_EQ(count_entries(root() / "tmp"), 0u);
  EXPECT_EQ(count_entries(root() / "objects"), 1u);
  EXPECT_EQ(put("after", "x").version, 2u);
  open(o);
  EXPECT_EQ(read(before.digest), "before");
  EXPECT_EQ(read(store_->get({"x", 2})->digest), "after");
  EXPECT_EQ(store_->versions("x")->size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(
    EveryStage, ArtifactStoreFaultTest,
    ::testing::Values(Fault{FaultyIo::Op::open, ENOSPC, 2, "create", "tmp/put-"},
                      Fault{FaultyIo::Op::write, EIO, 2, "write", "tmp/put-"},
                      Fault{FaultyIo::Op::write, ENOSPC, 2, "write", "tmp/put-"},
                      Fault{FaultyIo::Op::fdatasync, EIO, 2, "fdatasync", "tmp/put-"},
                      Fault{FaultyIo::Op::fdatasync, ENOSPC, 2, "fdatasync", "tmp/put-"},
                      Fault{FaultyIo::Op::syncfs, EIO, 1, "syncfs", "objects"},
                      Fault{FaultyIo::Op::syncfs, ENOSPC, 1, "syncfs", "objects"},
                      Fault{FaultyIo::Op::rename, EIO, 2, "rename", "objects/"},
                      Fault{FaultyIo::Op::rename, ENOSPC, 2, "rename", "objects/"},
                      Fault{FaultyIo::Op::fsync, EIO, 2, "fsync", "objects"}),
    [](const auto& info) {
      std::string name = std::string(info.param.what) + "_" + (info.param.err == EIO ? "EIO" : "ENOSPC");
      return name;
    });

TEST_F(ArtifactStoreTest, ShortWritesStillStoreEveryByte) {
  auto io = std::make_shared<FaultyIo>();
  StoreOptions o = options();
  o.io = io;
  open(o);
  io->arm(FaultyIo::Op::short_write, 0);
  std::string data(1000, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 13);
  VersionInfo v = put(data, "short");
  io->disarm();
  EXPECT_EQ(v.digest, Digest::of(data));
  EXPECT_EQ(read(v.digest), data);
}

// Adds a trigger from a second connection so that every version insert
// fails: the batch's SQLite transaction aborts.
void set_insert_trigger(const std::filesystem::path& db_path, bool present) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  const char* sql = present ? "CREATE TRIGGER fail_inserts BEFORE INSERT ON versions "
                              "BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
                            : "DROP TRIGGER fail_inserts;";
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

TEST_F(ArtifactStoreTest, FailedMetadataCommitFailsEveryPutOfTheBatch) {
  StoreOptions o = options();
  o.max_batch_delay = 20ms;  // gather the threads into one batch
  open(o);
  VersionInfo before = put("before", "x");
  set_insert_trigger(root() / "meta.db", true);

  constexpr int kThreads = 6;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  std::mutex mu;
  std::vector<std::string> messages;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto r = store_->put(bytes_of("batch " + std::to_string(t)), PutOptions{.name = "x"});
      if (!r) {
        ++failures;
        std::lock_guard lock(mu);
        messages.push_back(r.error().message());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), kThreads);
  for (const auto& m : messages) EXPECT_THAT(m, HasSubstr("injected failure"));
  EXPECT_EQ(store_->get({"x", 0})->version, 1u);
  EXPECT_EQ(store_->stats().blobs, 1u);
  EXPECT_EQ(count_entries(root() / "objects"), 1u);
  EXPECT_EQ(count_entries(root() / "tmp"), 0u);

  set_insert_trigger(root() / "meta.db", false);
  EXPECT_EQ(put("after", "x").version, 2u);
  open(o);
  EXPECT_EQ(store_->versions("x")->size(), 2u);
  EXPECT_EQ(read(before.digest), "before");
}

// ---------------------------------------------------------------------------
// Concurrency

TEST_F(ArtifactStoreTest, ConcurrentPutsAreAllReadableAndShareCommits) {
  StoreOptions o = options();
  o.max_batch_delay = 500us;
  open(o);
  constexpr int kThreads = 8;
  constexpr int kPuts = 40;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::vector<VersionInfo> done;
  std::atomic<bool> stop{false};
  // Readers hammer the index meanwhile.
  std::thread reader([&] {
    while (!stop.load()) {
      auto latest = store_->find_latest("shared");
      if (latest) (void)store_->find_blob(latest->digest);
    }
  });
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPuts; ++i) {
        std::string data = "thread " + std::to_string(t) + " put " + std::to_string(i);
        PutOptions p;
        p.name = i % 2 ? "shared" : "t" + std::to_string(t);
        auto v = store_->put(bytes_of(data), p);
        ASSERT_TRUE(v) << v.error().message();
        std::lock_guard lock(mu);
        done.push_back(*v);
      }
    });
  }
  for (auto& t : threads) t.join();
  stop = true;
  reader.join();
  ASSERT_EQ(done.size(), std::size_t{kThreads * kPuts});
  auto check = [&] {
    for (const VersionInfo& v : done) {
      auto got = store_->get({v.name, v.version});
      ASSERT_TRUE(got);
      EXPECT_EQ(got->digest, v.digest);
      EXPECT_EQ(Digest::of(read(v.digest)), v.digest);
    }
    // Versions are dense: 1..N for each name.
    auto shared = store_->versions("shared");
    ASSERT_TRUE(shared);
    ASSERT_EQ(shared->size(), std::size_t{kThreads * kPuts / 2});
    for (std::size_t i = 0; i < shared->size(); ++i) EXPECT_EQ((*shared)[i].version, i + 1);
  };
  check();
  StoreStats s = store_->stats();
  EXPECT_EQ(s.puts, std::uint64_t{kThreads * kPuts});
  EXPECT_LT(s.commit_batches, s.puts) << "no two puts shared a commit";
  std::cout << "batching factor: " << double(s.puts) / double(s.commit_batches) << "\n";
  open(o);
  check();
}

}  // namespace
}  // namespace symphony::pit
