// Tests of write-conflict resolution and the decision log: every policy,
// clean and conflicting three-way merges, the log's round trip, fsync before
// return, and corrupt lines reported with file:line.
#include "pit/arbiter/conflict_resolver.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "pit/digest.h"
#include "tests/support/temp_dir.h"

namespace symphony::pit {
namespace {

using namespace std::chrono_literals;
using symphony::testing::TempDir;
using SysClock = std::chrono::system_clock;

const SysClock::time_point kT0 = SysClock::time_point(std::chrono::milliseconds(1'700'000'000'000));

VersionCandidate cand(std::string ref, std::optional<double> q, SysClock::time_point t,
                      std::optional<std::string> text = std::nullopt) {
  return VersionCandidate{std::move(ref), q, t, std::move(text)};
}

ConflictInput input(VersionCandidate a, VersionCandidate b, std::optional<VersionCandidate> base = std::nullopt) {
  return ConflictInput{"report", std::move(base), std::move(a), std::move(b)};
}

std::unique_ptr<ConflictResolver> resolver(DecisionLog& log, ConflictPolicy p,
                                           ConflictPolicy fallback = ConflictPolicy::keep_both) {
  auto r = ConflictResolver::create(ResolverOptions{p, fallback}, log);
  EXPECT_TRUE(r);
  return std::move(*r);
}

struct CountingIo : DecisionLogIo {
  int fsyncs = 0;
  int writes = 0;
  int fail_write_errno = 0;
  ssize_t write(int fd, const void* data, std::size_t size) override {
    ++writes;
    if (fail_write_errno != 0) {
      errno = fail_write_errno;
      return -1;
    }
    return DecisionLogIo::write(fd, data, size);
  }
  int fsync(int fd) override {
    ++fsyncs;
    return DecisionLogIo::fsync(fd);
  }
};

TEST(ConflictResolver, HighestQualityWins) {
  MemoryDecisionLog log;
  auto r = resolver(log, ConflictPolicy::highest_quality);
  auto d = r->resolve(input(cand("report@4", 0.91, kT0), cand("report@5", 0.85, kT0 + 1s)));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->record.outcome, DecisionOutcome::take_a);
  EXPECT_EQ(d->record.winner, "report@4");
  EXPECT_NE(d->record.reason.find("report@4 has quality 0.91, report@5 has 0.85"), std::string::npos) << d->record.reason;

  auto unscored = r->resolve(input(cand("report@4", std::nullopt, kT0 + 5s), cand("report@5", 0.1, kT0)));
  ASSERT_TRUE(unscored);
  EXPECT_EQ(unscored->record.winner, "report@5") << "any score beats none";

  auto tie = r->resolve(input(cand("report@4", 0.5, kT0 + 2s), cand("report@5", 0.5, kT0)));
  ASSERT_TRUE(tie);
  EXPECT_EQ(tie->record.winner, "report@4") << "equal quality: the newer";
  EXPECT_NE(tie->record.reason.find("equal quality"), std::string::npos);
}

TEST(ConflictResolver, LatestWins) {
  MemoryDecisionLog log;
  auto r = resolver(log, ConflictPolicy::latest);
  auto d = r->resolve(input(cand("report@4", 0.99, kT0 + 1500ms), cand("report@5", 0.1, kT0)));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->record.outcome, DecisionOutcome::take_a);
  EXPECT_NE(d->record.reason.find("created 1500 ms after report@5"), std::string::npos) << d->record.reason;
  auto same = r->resolve(input(cand("report@4", 0.2, kT0), cand("report@5", 0.3, kT0)));
  ASSERT_TRUE(same);
  EXPECT_EQ(same->record.outcome, DecisionOutcome::take_b);
  EXPECT_NE(same->record.reason.find("same creation time"), std::string::npos);
}

TEST(ConflictResolver, KeepBothMarksTheAlternative) {
  MemoryDecisionLog log;
  auto r = resolver(log, ConflictPolicy::keep_both);
  auto d = r->resolve(input(cand("report@4", 0.4, kT0), cand("report@5", 0.8, kT0)));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->record.outcome, DecisionOutcome::keep_both);
  EXPECT_EQ(d->record.winner, "report@5");
  EXPECT_EQ(d->record.alternative, "report@4");
  EXPECT_NE(d->record.reason.find("report@4 its alternative"), std::string::npos) << d->record.reason;
}

TEST(ConflictResolver, Merge3CleanMerge) {
  MemoryDecisionLog log;
  auto r = resolver(log, ConflictPolicy::merge3);
  const std::string base = "one\ntwo\nthree\nfour\nfive\n";
  const std::string ours = "ONE\ntwo\nthree\nfour\nfive\n";
  const std::string theirs = "one\ntwo\nthree\nfour\nFIVE\n";
  auto d = r->resolve(input(cand("report@4", 0.5, kT0, ours), cand("report@5", 0.5, kT0, theirs),
                            cand("report@3", std::nullopt, kT0 - 1h, base)));
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(d->record.outcome, DecisionOutcome::merged);
  EXPECT_EQ(d->merged, "ONE\ntwo\nthree\nfour\nFIVE\n");
  EXPECT_FALSE(d->record.fell_back);
  EXPECT_EQ(d->record.applied, ConflictPolicy::merge3);
  EXPECT_EQ(d->record.merged_digest, Digest::of(std::string_view(d->merged)).to_string());
  EXPECT_EQ(d->record.merged_size, d->merged.size());
  EXPECT_EQ(d->record.base, "report@3");
  EXPECT_EQ(r->stats().resolved_by_policy[static_cast<std::size_t>(ConflictPolicy::merge3)], 1u);
}

TEST(ConflictResolver, Merge3ConflictFallsBackAndSaysSo) {
  MemoryDecisionLog log;
  auto r = resolver(log, ConflictPolicy::merge3, ConflictPolicy::latest);
  auto d = r->resolve(input(cand("report@4", 0.5, kT0, "x = 1\n"), cand("report@5", 0.5, kT0 + 1s, "x = 2\n"),
                            cand("report@3", std::nullopt, kT0 - 1h, "x = 0\n")));
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->record.fell_back);
  EXPECT_EQ(d->record.policy, ConflictPolicy::merge3);
  EXPECT_EQ(d->record.applied, ConflictPolicy::latest);
  EXPECT_EQ(d->record.outcome, DecisionOutcome::take_b);
  EXPECT_TRUE(d->merged.empty());
  EXPECT_NE(d->record.reason.find("conflicts"), std::string::npos) << d->record.reason;
  EXPECT_NE(d->record.reason.find("fell back to latest"), std::string::npos) << d->record.reason;
  ConflictStats s = r->stats();
  EXPECT_EQ(s.merge_fallbacks, 1u);
  EXPECT_EQ(s.resolved_by_policy[static_cast<std::size_t>(ConflictPolicy::latest)], 1u);
}

TEST(ConflictResolver, Merge3WithoutTextOrBaseFallsBack) {
  MemoryDecisionLog log;
  auto r = resolver(log, ConflictPolicy::merge3, ConflictPolicy::highest_quality);
  auto no_base = r->resolve(input(cand("m@2", 0.9, kT0, "a\n"), cand("m@3", 0.1, kT0, "b\n")));
  ASSERT_TRUE(no_base);
  EXPECT_TRUE(no_base->record.fell_back);
  EXPECT_EQ(no_base->record.winner, "m@2");
  EXPECT_NE(no_base->record.reason.find("no base text"), std::string::npos);
  auto binary = r->resolve(input(cand("m@2", 0.1, kT0, std::string("a\0b", 3)), cand("m@3", 0.9, kT0, "b\n"),
                                 cand("m@1", std::nullopt, kT0, "c\n")));
  ASSERT_TRUE(binary);
  EXPECT_TRUE(binary->record.fell_back);
  EXPECT_NE(binary->record.reason.find("binary"), std::string::npos) << binary->record.reason;
}

TEST(ConflictResolver, RejectsMerge3AsItsOwnFallback) {
  MemoryDecisionLog log;
  auto r = ConflictResolver::create(ResolverOptions{ConflictPolicy::merge3, ConflictPolicy::merge3}, log);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EINVAL);
}

TEST(ConflictResolver, PolicyNamesRoundTrip) {
  for (auto p : {ConflictPolicy::highest_quality, ConflictPolicy::latest, ConflictPolicy::keep_both, ConflictPolicy::merge3}) {
    auto parsed = parse_conflict_policy(to_string(p));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, p);
  }
  EXPECT_FALSE(parse_conflict_policy("newest"));
}

TEST(DecisionLog, FileRoundTripAfterReopen) {
  TempDir dir("pit-arbiter", std::filesystem::temp_directory_path());
  auto path = dir.path() / "decisions.jsonl";
  std::vector<DecisionRecord> decided;
  {
    auto log = FileDecisionLog::open(path);
    ASSERT_TRUE(log) << log.error().message();
    for (auto policy : {ConflictPolicy::highest_quality, ConflictPolicy::latest, ConflictPolicy::keep_both, ConflictPolicy::merge3}) {
      auto r = resolver(**log, policy);
      auto d = r->resolve(input(cand("report@4", 0.25, kT0, "a\nb\n"), cand("report@5", std::nullopt, kT0 + 3ms, "a\nc\n"),
                                cand("report@3", 0.5, kT0 - 1s, "a\nb\n")));
      ASSERT_TRUE(d);
      decided.push_back(d->record);
    }
  }
  auto reopened = FileDecisionLog::open(path);
  ASSERT_TRUE(reopened);
  auto contents = (*reopened)->read_all();
  ASSERT_TRUE(contents);
  EXPECT_TRUE(contents->bad_lines.empty());
  EXPECT_EQ(contents->records, decided);
  EXPECT_EQ(contents->records[3].outcome, DecisionOutcome::merged);
}

TEST(DecisionLog, FsyncsBeforeReturning) {
  TempDir dir("pit-arbiter", std::filesystem::temp_directory_path());
  CountingIo io;
  auto path = dir.path() / "d.jsonl";
  auto log = FileDecisionLog::open(path, &io);
  ASSERT_TRUE(log);
  EXPECT_EQ(io.fsyncs, 1) << "the directory of a new log is flushed";
  auto r = resolver(**log, ConflictPolicy::latest);
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(r->resolve(input(cand("x@1", 0.1, kT0), cand("x@2", 0.2, kT0 + 1s))));
    EXPECT_EQ(io.fsyncs, 1 + i);
    // The record is in the file by the time resolve() returns.
    std::ifstream in(path);
    int lines = 0;
    for (std::string l; std::getline(in, l);) ++lines;
    EXPECT_EQ(lines, i);
  }
}

TEST(DecisionLog, WriteFailureIsReturnedNotSwallowed) {
  TempDir dir("pit-arbiter", std::filesystem::temp_directory_path());
  CountingIo io;
  auto log = FileDecisionLog::open(dir.path() / "d.jsonl", &io);
  ASSERT_TRUE(log);
  io.fail_write_errno = ENOSPC;
  auto r = resolver(**log, ConflictPolicy::latest);
  auto d = r->resolve(input(cand("x@1", 0.1, kT0), cand("x@2", 0.2, kT0)));
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code(), ENOSPC);
  EXPECT_NE(d.error().message().find("record conflict decision for report"), std::string::npos) << d.error().message();
  EXPECT_EQ(r->stats().log_failures, 1u);
}

TEST(DecisionLog, CorruptLinesAreReportedWithFileAndLine) {
  TempDir dir("pit-arbiter", std::filesystem::temp_directory_path());
  auto path = dir.path() / "d.jsonl";
  DecisionRecord good;
  {
    auto log = FileDecisionLog::open(path);
    ASSERT_TRUE(log);
    auto r = resolver(**log, ConflictPolicy::latest);
    auto d = r->resolve(input(cand("x@1", 0.1, kT0), cand("x@2", 0.2, kT0 + 1s)));
    ASSERT_TRUE(d);
    good = d->record;
  }
  {
    std::ofstream out(path, std::ios::app);
    out << "{not json\n";
    out << R"({"v":1,"seq":2})" << "\n";
    out << "[1,2]\n";
    out << R"({"v":1,"seq":3,"time_ms":1,"artifact":"x","policy":"best","applied":"latest","outcome":"take_a")"
           R"(,"winner":"","alternative":"","a":{"ref":"x@1","created_ms":0},"b":{"ref":"x@2","created_ms":0})"
           R"(,"merged_digest":"","merged_size":0,"fell_back":false,"reason":"","base":null})" << "\n";
    out << R"({"v":1,"seq":9,"time_ms")";  // torn by a crash: no newline
  }
  auto log = FileDecisionLog::open(path);
  ASSERT_TRUE(log);
  auto r = resolver(**log, ConflictPolicy::latest);
  auto after = r->resolve(input(cand("x@1", 0.1, kT0), cand("x@2", 0.2, kT0 + 1s)));
  ASSERT_TRUE(after);
  auto contents = (*log)->read_all();
  ASSERT_TRUE(contents);
  ASSERT_EQ(contents->records.size(), 2u) << "the append after the torn line starts on a new line";
  EXPECT_EQ(contents->records[0], good);
  EXPECT_EQ(contents->records[1], after->record);
  ASSERT_EQ(contents->bad_lines.size(), 5u);
  const std::string p = path.string();
  EXPECT_NE(contents->bad_lines[0].message().find(p + ":2: not valid JSON"), std::string::npos)
      << contents->bad_lines[0].message();
  EXPECT_NE(contents->bad_lines[1].message().find(p + ":3: field \"time_ms\" missing"), std::string::npos)
      << contents->bad_lines[1].message();
  EXPECT_NE(contents->bad_lines[2].message().find(p + ":4: not a JSON object"), std::string::npos);
  EXPECT_NE(contents->bad_lines[3].message().find(p + ":5: unknown conflict policy \"best\""), std::string::npos)
      << contents->bad_lines[3].message();
  EXPECT_NE(contents->bad_lines[4].message().find(p + ":6: not valid JSON"), std::string::npos);
}

TEST(DecisionLog, OpenFailsCleanlyOnAMissingDirectory) {
  auto log = FileDecisionLog::open("/nonexistent-dir-for-pit-test/d.jsonl");
  ASSERT_FALSE(log);
  EXPECT_EQ(log.error().code(), ENOENT);
  EXPECT_NE(log.error().message().find("open decision log"), std::string::npos);
}

}  // namespace
}  // namespace symphony::pit
