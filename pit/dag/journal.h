// The DAG tracker's write-ahead journal: every state change of every
// workflow as a logical record, so a restarted daemon replays the file and
// resumes. Journal is the interface the tracker writes through (so the
// in-memory tracker pays nothing when none is attached); FileJournal is the
// implementation: an append-only file of length + CRC-32 framed records,
// fdatasync'd on sync(), rewritten whole (write, flush, rename) on compaction.
// The format and the recovery rules are in docs/pit/dag.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "pit/dag/memo.h"
#include "pit/dag/step_spec.h"
#include "pit/dag/step_state.h"

namespace symphony::pit::dag {

enum class RecordKind : std::uint8_t {
  create_workflow = 1,  // workflow, policy
  add_steps = 2,        // workflow, steps
  start_step = 3,       // workflow, step
  succeed_step = 4,     // workflow, step, outputs
  fail_step = 5,        // workflow, step, message
  retry_step = 6,       // workflow, step
  cancel_step = 7,      // workflow, step
  cancel_workflow = 8,  // workflow
  memo_hit = 9,         // workflow, step, outputs (decided once, replayed as decided)
  remove_workflow = 10, // workflow
  workflow_state = 11,  // workflow, flags, snapshot (written by compaction)
  fail_step_final = 12, // workflow, step, message: a failure that must not be retried
};

// One step's state as compaction writes it.
struct StepSnapshot {
  StepState state = StepState::pending;
  SkipReason reason = SkipReason::none;
  std::uint32_t attempt = 0;
  std::vector<OutputRef> outputs;
  std::string message;
  friend bool operator==(const StepSnapshot&, const StepSnapshot&) = default;
};

// A record; only the fields its kind names are meaningful (and encoded).
struct JournalRecord {
  RecordKind kind = RecordKind::create_workflow;
  std::string workflow;
  FailurePolicy policy = FailurePolicy::fail_workflow;
  std::vector<StepSpec> steps;
  std::uint32_t step = 0;  // step index: its position in the order steps were added
  std::vector<OutputRef> outputs;
  std::string message;
  bool cancelled = false;  // workflow_state
  bool failed = false;     // workflow_state
  std::vector<StepSnapshot> snapshot;
};

// The payload bytes of a record (without the frame), and back. decode()
// errors say which field is malformed.
std::string encode_record(const JournalRecord& record);
Result<JournalRecord> decode_record(std::string_view payload);

// CRC-32 (ISO-HDLC, the polynomial of zlib, PNG and Ethernet).
std::uint32_t crc32(std::string_view data, std::uint32_t crc = 0);

class Journal {
 public:
  virtual ~Journal() = default;
  // Queues a record; nothing is durable until sync() returns.
  virtual void append(const JournalRecord& record) = 0;
  // Writes the queued records and flushes them to stable storage. After an
  // error the journal refuses further syncs (the file's tail is unknown).
  virtual Result<void> sync() = 0;
  // Replaces the whole content with `records`, atomically (compaction).
  virtual Result<void> rewrite(std::span<const JournalRecord> records) = 0;
  // Bytes appended since open or the last rewrite: the compaction trigger.
  virtual std::uint64_t bytes_since_rewrite() const = 0;
};

class FileJournal final : public Journal {
 public:
  // Called for each intact record in file order with the record's offset;
  // an error stops the replay and is returned by open(), naming the offset.
  using Visitor = std::function<Result<void>(const JournalRecord&, std::uint64_t offset)>;

  // Opens or creates the journal at `path` and replays it through `visit`.
  // A torn final record (a frame cut short by a crash, or a bad frame
  // followed only by zero bytes) is ignored and truncated away; any other
  // bad content is an error naming the file and the offset.
  static Result<std::unique_ptr<FileJournal>> open(const std::filesystem::path& path,
                                                   const Visitor& visit);

  void append(const JournalRecord& record) override;
  Result<void> sync() override;
  Result<void> rewrite(std::span<const JournalRecord> records) override;
  std::uint64_t bytes_since_rewrite() const override { return appended_; }

  const std::filesystem::path& path() const { return path_; }
  // Bytes of a record that open() found torn and dropped (0 when none).
  std::uint64_t torn_bytes_dropped() const { return torn_dropped_; }

 private:
  FileJournal(std::filesystem::path path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

  std::filesystem::path path_;
  UniqueFd fd_;
  std::string pending_;  // framed records not yet written
  std::uint64_t appended_ = 0;
  std::uint64_t torn_dropped_ = 0;
  bool broken_ = false;
};

}  // namespace symphony::pit::dag
