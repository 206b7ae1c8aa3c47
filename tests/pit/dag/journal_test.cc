// The journal: record encoding, CRC-32, and the tracker's replay and resume
// across "restarts" (destroying the tracker and opening its file again),
// including a torn final record, garbage, compaction and group commit.
#include "pit/dag/journal.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "pit/dag/dag_tracker.h"
#include "tests/support/temp_dir.h"

namespace symphony::pit::dag {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using symphony::testing::TempDir;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_file(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

OutputRef out(std::string name, std::string_view content) {
  return OutputRef{std::move(name), 3, Digest::of(content)};
}

TEST(Crc32, MatchesTheStandardCheckValue) {
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(crc32(""), 0u);
}

TEST(JournalRecord, EveryKindRoundTrips) {
  std::vector<JournalRecord> records;
  JournalRecord r;
  r.workflow = "wf-1";
  r.kind = RecordKind::create_workflow;
  r.policy = FailurePolicy::continue_independent;
  records.push_back(r);
  r.kind = RecordKind::add_steps;
  r.steps = {StepSpec{.id = "a", .inputs = {"x", "y"}, .cost = 2.5, .max_attempts = 3,
                      .failure_policy = FailurePolicy::fail_workflow,
                      .memo = MemoSpec{"ext", "1", "cap", std::string("p\0q", 3), {Digest::of(std::string_view("d"))}}},
             StepSpec{.id = "b"}};
  records.push_back(r);
  for (RecordKind k : {RecordKind::start_step, RecordKind::retry_step, RecordKind::cancel_step,
                       RecordKind::succeed_step, RecordKind::memo_hit, RecordKind::fail_step,
                       RecordKind::fail_step_final, RecordKind::cancel_workflow, RecordKind::remove_workflow, RecordKind::workflow_state}) {
    JournalRecord x;
    x.kind = k;
    x.workflow = "wf-1";
    x.step = 7;
    if (k == RecordKind::succeed_step || k == RecordKind::memo_hit) x.outputs = {out("o", "O"), out("p", "P")};
    if (k == RecordKind::fail_step || k == RecordKind::fail_step_final) x.message = "exit 3";
    if (k == RecordKind::workflow_state) {
      x.step = 0;
      x.failed = true;
      x.snapshot = {StepSnapshot{StepState::skipped, SkipReason::memoized, 1, {out("o", "O")}, ""},
                    StepSnapshot{StepState::failed, SkipReason::none, 2, {}, "boom"}};
    }
    if (k == RecordKind::cancel_workflow || k == RecordKind::remove_workflow) x.step = 0;
    records.push_back(x);
  }
  for (const JournalRecord& rec : records) {
    auto back = decode_record(encode_record(rec));
    ASSERT_TRUE(back.has_value()) << back.error().message();
    EXPECT_EQ(back->kind, rec.kind);
    EXPECT_EQ(back->workflow, rec.workflow);
    EXPECT_EQ(back->steps, rec.steps);
    EXPECT_EQ(back->step, rec.step);
    EXPECT_EQ(back->outputs, rec.outputs);
    EXPECT_EQ(back->message, rec.message);
    EXPECT_EQ(back->snapshot, rec.snapshot);
    EXPECT_EQ(back->failed, rec.failed);
    if (rec.kind == RecordKind::create_workflow) {
      EXPECT_EQ(back->policy, rec.policy);
    }
  }
}

TEST(JournalRecord, MalformedPayloadsAreErrorsNotCrashes) {
  EXPECT_THAT(decode_record("").error().message(), HasSubstr("truncated kind"));
  EXPECT_THAT(decode_record(std::string("\x63", 1)).error().message(), HasSubstr("unknown record kind 99"));
  std::string good = encode_record(JournalRecord{.kind = RecordKind::fail_step, .workflow = "w", .message = "m"});
  EXPECT_THAT(decode_record(good + "x").error().message(), HasSubstr("trailing bytes"));
  EXPECT_THAT(decode_record(good.substr(0, good.size() - 1)).error().message(), HasSubstr("truncated message"));
  // A huge element count must not allocate: it is bounded by the payload.
  std::string add = encode_record(JournalRecord{.kind = RecordKind::add_steps, .workflow = "w"});
  add.replace(add.size() - 4, 4, "\xff\xff\xff\x7f", 4);
  EXPECT_THAT(decode_record(add).error().message(), HasSubstr("count of steps exceeds"));
  // Random bytes: any answer but a crash (ASan/UBSan watch this one).
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string junk(rng() % 64, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    if (!junk.empty()) junk[0] = static_cast<char>(1 + rng() % 11);
    (void)decode_record(junk);
  }
}

// A small scenario: "a" done with outputs, "b" running (1 of 2 attempts),
// "c" running (1 of 1), "d" waits on b, "e" ready.
void build_scenario(DagTracker& tracker) {
  auto wf = tracker.create_workflow("wf", FailurePolicy::continue_independent);
  ASSERT_TRUE(wf.has_value());
  Workflow& w = **wf;
  ASSERT_TRUE(w.add_steps(std::vector{StepSpec{.id = "a"}, StepSpec{.id = "b", .inputs = {"a"}, .max_attempts = 2},
                                      StepSpec{.id = "c", .inputs = {"a"}}, StepSpec{.id = "d", .inputs = {"b"}},
                                      StepSpec{.id = "e"}})
                  .has_value());
  ASSERT_TRUE(w.start(0).has_value());
  ASSERT_TRUE(w.succeed(0, {out("a.out", "A")}).has_value());
  ASSERT_TRUE(w.start(1).has_value());
  ASSERT_TRUE(w.start(2).has_value());
}

void expect_resumed(DagTracker& tracker) {
  Workflow* w = tracker.workflow("wf");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->state(0), StepState::succeeded);
  EXPECT_EQ(w->outputs(0), std::vector{out("a.out", "A")});
  EXPECT_EQ(w->state(1), StepState::retrying) << "interrupted with an attempt left";
  EXPECT_EQ(w->attempts(1), 1u);
  EXPECT_EQ(w->state(2), StepState::failed) << "interrupted on its last attempt";
  EXPECT_THAT(w->last_error(2), HasSubstr("interrupted"));
  EXPECT_EQ(w->state(3), StepState::pending);
  EXPECT_EQ(w->state(4), StepState::ready);
  EXPECT_EQ(w->peek_ready(), 4u);
  ASSERT_EQ(tracker.interrupted().size(), 2u);
  EXPECT_EQ(tracker.interrupted()[0].now, StepState::retrying);
  EXPECT_EQ(tracker.interrupted()[1].now, StepState::failed);
}

TEST(JournalReplay, RunningStepsAreRetriedOrFailedAfterARestart) {
  TempDir dir("pit-dag-test", fs::temp_directory_path());
  const fs::path path = dir.path() / "dag.journal";
  {
    auto tracker = DagTracker::open(path);
    ASSERT_TRUE(tracker.has_value()) << tracker.error().message();
    build_scenario(**tracker);
  }
  auto tracker = DagTracker::open(path);
  ASSERT_TRUE(tracker.has_value()) << tracker.error().message();
  expect_resumed(**tracker);
  // The resumed workflow carries on, and a second restart sees the recovery
  // itself (not a second interruption).
  Workflow* w = (*tracker)->workflow("wf");
  ASSERT_TRUE(w->retry(1).has_value());
  ASSERT_TRUE(w->start(1).has_value());
  ASSERT_TRUE(w->succeed(1).has_value());
  EXPECT_EQ(w->state(3), StepState::ready);
  tracker->reset();
  auto again = DagTracker::open(path);
  ASSERT_TRUE(again.has_value()) << again.error().message();
  Workflow* w2 = (*again)->workflow("wf");
  EXPECT_EQ(w2->state(1), StepState::succeeded);
  EXPECT_EQ(w2->attempts(1), 2u);
  EXPECT_EQ(w2->state(3), StepState::ready);
  EXPECT_TRUE((*again)->interrupted().empty());
}

TEST(JournalReplay, AFinalFailureReplaysAsFinal) {
  TempDir dir("pit-dag-test", fs::temp_directory_path());
  const fs::path path = dir.path() / "dag.journal";
  {
    auto tracker = DagTracker::open(path);
    ASSERT_TRUE(tracker.has_value()) << tracker.error().message();
    auto wf = (*tracker)->create_workflow("wf", FailurePolicy::continue_independent);
    ASSERT_TRUE(wf.has_value());
    ASSERT_TRUE((*wf)->add_steps(std::vector{StepSpec{.id = "a", .max_attempts = 4}, StepSpec{.id = "b"}}).has_value());
    ASSERT_TRUE((*wf)->start(0).has_value());
    ASSERT_TRUE((*wf)->fail(0, "invalid params", true).has_value());
  }
  auto tracker = DagTracker::open(path);
  ASSERT_TRUE(tracker.has_value()) << tracker.error().message();
  Workflow* w = (*tracker)->workflow("wf");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->state(0), StepState::failed) << "replayed as final, not as a retry with attempts left";
  EXPECT_EQ(w->last_error(0), "invalid params");
  EXPECT_EQ(w->state(1), StepState::ready);
}

TEST(JournalReplay, TornFinalRecordIsIgnoredAndTheRestReplayed) {
  TempDir dir("pit-dag-test", fs::temp_directory_path());
  const fs::path path = dir.path() / "dag.journal";
  std::uintmax_t size_before_last = 0;
  {
    auto tracker = DagTracker::open(path);
    ASSERT_TRUE(tracker.has_value());
    build_scenario(**tracker);
    size_before_last = fs::file_size(path);
    ASSERT_TRUE((*tracker)->workflow("wf")->start(4).has_value());  // the record we will tear
  }
  const std::uintmax_t full = fs::file_size(path);
  ASSERT_GT(full, size_before_last);
  for (std::uintmax_t cut : {std::uintmax_t{1}, std::uintmax_t{5}, full - size_before_last - 1}) {
    fs::path copy = dir.path() / ("torn-" + std::to_string(cut));
    fs::copy_file(path, copy);
    fs::resize_file(copy, full - cut);
    auto tracker = DagTracker::open(copy);
    ASSERT_TRUE(tracker.has_value()) << tracker.error().message();
    expect_resumed(**tracker);  // "e" is still ready: its start was torn off
    // The torn bytes are gone, so new records land on a clean frame boundary.
    ASSERT_TRUE((*tracker)->workflow("wf")->start(4).has_value());
    tracker->reset();
    auto reopened = DagTracker::open(copy);
    ASSERT_TRUE(reopened.has_value()) << reopened.error().message();
    EXPECT_EQ((*reopened)->workflow("wf")->state(4), StepState::failed) << "interrupted, no attempts left";
  }
}

TEST(JournalReplay, ZeroFilledTailIsATornWrite) {
  TempDir dir("pit-dag-test", fs::temp_directory_path());
  const fs::path path = dir.path() / "dag.journal";
  { ASSERT_TRUE(DagTracker::open(path).has_value()); }
  {
    auto tracker = DagTracker::open(path);
    build_scenario(**tracker);
  }
  write_file(path, read_file(path) + std::string(100, '\0'));
  auto tracker = DagTracker::open(path);
  ASSERT_TRUE(tracker.has_value()) << tracker.error().message();
  expect_resumed(**tracker);
}

TEST(JournalReplay, CorruptRecordInTheMiddleNamesFileAndOffset) {
  TempDir dir("pit-dag-test", fs::temp_directory_path());
  const fs::path path = dir.path() / "dag.journal";
  {
    auto tracker = DagTracker::open(path);
    build_scenario(**tracker);
  }
  std::string data = read_file(path);
  // The second record starts after the magic (8) and the first frame.
  const std::size_t first_len = static_cast<unsigned char>(data[8]) | (static_cast<unsigned char>(data[9]) << 8);
  const std::size_t second = 8 + 8 + first_len;
  data[second + 8 + 2] ^= 0x55;
  write_file(path, data);
  auto tracker = DagTracker::open(path);
  ASSERT_FALSE(tracker.has_value());
  EXPECT_THAT(tracker.error().message(), HasSubstr(path.string()));
  EXPECT_THAT(tracker.error().message(), HasSubstr("offset " + std::to_string(second) + ": corrupt record"));
}

TEST(JournalReplay, GarbageAndBadMagicAreErrors) {
  TempDir dir("pit-dag-test", fs::temp_directory_path());
  const fs::path path = dir.path() / "dag.journal";
  write_file(path, "not a journal at all");
  auto bad_magic = DagTracker::open(path);
  ASSERT_FALSE(bad_magic.has_value());
  EXPECT_THAT(bad_magic.error().message(), HasSubstr(path.string() + ": offset 0: not a DAG journal"));

  // A well-framed record whose payload does not decode.
  std::string payload = "\x04garbage";
  std::string frame;
  for (std::uint32_t v : {static_cast<std::uint32_t>(payload.size()), crc32(payload)}) {
    for (int i = 0; i < 4; ++i) frame.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  write_file(path, "SYMDAGJ1" + frame + payload);
  auto bad_payload = DagTracker::open(path);
  ASSERT_FALSE(bad_payload.has_value());
  EXPECT_THAT(bad_payload.error().message(), HasSubstr(path.string() + ": offset 8: "));

  // A well-formed record the state machine rejects.
  JournalRecord start{.kind = RecordKind::start_step, .workflow = "ghost"};
  payload = encode_record(start);
  frame.clear();
  for (std::uint32_t v : {static_cast<std::uint32_t>(payload.size()), crc32(payload)}) {
    for (int i = 0; i < 4; ++i) frame.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  write_file(path, "SYMDAGJ1" + frame + payload);
  auto unknown = DagTracker::open(path);
  ASSERT_FALSE(unknown.has_value());
  EXPECT_THAT(unknown.error().message(), HasSubstr("offset 8: record for unknown workflow 'ghost'"));

  // Random garbage after the header: an error or a torn tail, never a crash.
  std::mt19937 rng(11);
  for (int i = 0; i < 200; ++i) {
    std::string junk(1 + rng() % 200, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    write_file(path, "SYMDAGJ1" + junk);
    (void)DagTracker::open(path);
  }
}

TEST(JournalReplay, MemoHitsReplayAsDecidedWithoutTheCache) {
  TempDir dir("pit-dag-test", fs::temp_directory_path());
  const fs::path path = dir.path() / "dag.journal";
  InMemoryMemoCache cache;
  auto memo_spec = MemoSpec{"ext", "1", "cap", "p", {}};
  std::vector<StepSpec> specs{StepSpec{.id = "a", .memo = memo_spec}, StepSpec{.id = "b", .inputs = {"a"}}};
  {
    auto tracker = DagTracker::open(path, TrackerOptions{.memo = &cache});
    auto first = (*tracker)->create_workflow("first", FailurePolicy::fail_workflow);
    ASSERT_TRUE((*first)->add_steps(specs).has_value());
    ASSERT_TRUE((*first)->start(0).has_value());
    ASSERT_TRUE((*first)->succeed(0, {out("a", "A")}).has_value());
    auto second = (*tracker)->create_workflow("second", FailurePolicy::fail_workflow);
    ASSERT_TRUE((*second)->add_steps(specs).has_value());
    ASSERT_EQ((*second)->skip_reason(0), SkipReason::memoized);
  }
  auto tracker = DagTracker::open(path);  // no cache this time
  ASSERT_TRUE(tracker.has_value()) << tracker.error().message();
  Workflow* second = (*tracker)->workflow("second");
  EXPECT_EQ(second->skip_reason(0), SkipReason::memoized);
  EXPECT_EQ(second->outputs(0), std::vector{out("a", "A")});
  EXPECT_EQ(second->state(1), StepState::ready);
}

TEST(JournalCompaction, SnapshotReplaysToTheSameStateAndShrinksTheFile) {
  TempDir dir("pit-dag-test", fs::temp_directory_path());
  const fs::path path = dir.path() / "dag.journal";
  {
    auto tracker = DagTracker::open(path);
    build_scenario(**tracker);
    auto done = (*tracker)->create_workflow("done", FailurePolicy::fail_workflow);
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE((*done)->add_steps(std::vector{StepSpec{.id = "s" + std::to_string(i)}}).has_value());
      ASSERT_TRUE((*done)->start(static_cast<StepIndex>(i)).has_value());
      ASSERT_TRUE((*done)->succeed(static_cast<StepIndex>(i)).has_value());
    }
    ASSERT_TRUE((*tracker)->remove_workflow("done").has_value());
    const auto before = fs::file_size(path);
    ASSERT_TRUE((*tracker)->compact().has_value());
    EXPECT_LT(fs::file_size(path), before / 4);
    EXPECT_FALSE(fs::exists(dir.path() / "dag.journal.compact"));
  }
  auto tracker = DagTracker::open(path);
  ASSERT_TRUE(tracker.has_value()) << tracker.error().message();
  expect_resumed(**tracker);
  EXPECT_EQ((*tracker)->workflow_ids(), std::vector<std::string>{"wf"});
}

TEST(JournalCompaction, HappensAutomaticallyPastTheThreshold) {
  TempDir dir("pit-dag-test", fs::temp_directory_path());
  const fs::path path = dir.path() / "dag.journal";
  auto tracker = DagTracker::open(path, TrackerOptions{.compact_after_bytes = 4096});
  auto wf = (*tracker)->create_workflow("w", FailurePolicy::fail_workflow);
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE((*wf)->add_steps(std::vector{StepSpec{.id = "s" + std::to_string(i)}}).has_value());
    ASSERT_TRUE((*wf)->start(static_cast<StepIndex>(i)).has_value());
    ASSERT_TRUE((*wf)->succeed(static_cast<StepIndex>(i)).has_value());
  }
  // 200 steps' worth of records is far more than 4 KiB; the file stays near one snapshot.
  EXPECT_LT(fs::file_size(path), 3 * 4096u);
  tracker->reset();
  auto reopened = DagTracker::open(path);
  ASSERT_TRUE(reopened.has_value()) << reopened.error().message();
  EXPECT_EQ((*reopened)->workflow("w")->size(), 200u);
  EXPECT_EQ((*reopened)->workflow("w")->state(), WorkflowState::succeeded);
}

TEST(JournalGroupCommit, BatchedChangesAreDurableOnlyAfterFlush) {
  TempDir dir("pit-dag-test", fs::temp_directory_path());
  const fs::path path = dir.path() / "dag.journal";
  const fs::path crash_copy = dir.path() / "crash.journal";
  auto tracker = DagTracker::open(path, TrackerOptions{.durability = Durability::batched});
  auto wf = (*tracker)->create_workflow("w", FailurePolicy::fail_workflow);
  ASSERT_TRUE((*wf)->add_steps(std::vector{StepSpec{.id = "a"}, StepSpec{.id = "b", .inputs = {"a"}}}).has_value());
  ASSERT_TRUE((*tracker)->flush().has_value());
  ASSERT_TRUE((*wf)->start(0).has_value());
  ASSERT_TRUE((*wf)->succeed(0).has_value());
  fs::copy_file(path, crash_copy);  // what a crash now would leave
  ASSERT_TRUE((*tracker)->flush().has_value());

  auto crashed = DagTracker::open(crash_copy);
  ASSERT_TRUE(crashed.has_value()) << crashed.error().message();
  EXPECT_EQ((*crashed)->workflow("w")->state(0), StepState::ready);
  auto flushed = DagTracker::open(path);
  ASSERT_TRUE(flushed.has_value());
  EXPECT_EQ((*flushed)->workflow("w")->state(0), StepState::succeeded);
  EXPECT_EQ((*flushed)->workflow("w")->state(1), StepState::ready);
}

class FailingJournal final : public Journal {
 public:
  void append(const JournalRecord&) override { ++appended; }
  Result<void> sync() override { return Error(EIO, "sync test journal"); }
  Result<void> rewrite(std::span<const JournalRecord>) override { return ok(); }
  std::uint64_t bytes_since_rewrite() const override { return 0; }
  int appended = 0;
};

TEST(JournalFailure, SyncErrorsReachTheCaller) {
  auto journal = std::make_unique<FailingJournal>();
  FailingJournal* raw = journal.get();
  DagTracker tracker(TrackerOptions{}, std::move(journal));
  auto wf = tracker.create_workflow("w", FailurePolicy::fail_workflow);
  ASSERT_FALSE(wf.has_value());
  EXPECT_EQ(wf.error().code(), EIO);
  Workflow* w = tracker.workflow("w");
  ASSERT_NE(w, nullptr);
  auto added = w->add_steps(std::vector{StepSpec{.id = "a"}});
  ASSERT_FALSE(added.has_value());
  EXPECT_THAT(added.error().message(), HasSubstr("sync test journal"));
  EXPECT_EQ(raw->appended, 2);
}

}  // namespace
}  // namespace symphony::pit::dag
