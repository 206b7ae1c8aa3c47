// The DAG tracker: every workflow the daemon runs, the memo cache they
// share, and the journal that makes their state survive a restart. The
// daemon creates workflows here and drives each through its Workflow; on
// start-up, open() replays the journal, and steps that were running when the
// daemon died are failed as interrupted — retried (counted as an attempt)
// when attempts remain, failed otherwise.
//
// Durability: with Durability::each_change every Workflow method that
// changes state returns only after its journal record is on stable storage
// (one fdatasync per change). With Durability::batched records are queued and
// flush() makes everything before it durable (group commit: the daemon calls
// it once per event-loop turn, before acknowledging the turn's changes); a
// crash loses at most the changes since the last flush, never leaves a state
// the tracker could not have been in.
//
// Threading: not thread-safe; the daemon calls it, and its workflows, from
// its event-loop thread only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "pit/dag/journal.h"
#include "pit/dag/memo.h"
#include "pit/dag/workflow.h"

namespace symphony::pit::dag {

enum class Durability : std::uint8_t { each_change, batched };

struct TrackerOptions {
  MemoCache* memo = nullptr;  // not owned; outlives the tracker; null: no memoization
  Durability durability = Durability::each_change;
  // Rewrite the journal as a snapshot once this much was appended since the
  // last rewrite.
  std::uint64_t compact_after_bytes = 16u << 20;
};

// A step open() found running, and the state it was moved to.
struct InterruptedStep {
  std::string workflow;
  StepIndex step = 0;
  StepState now = StepState::failed;  // retrying or failed
};

class DagTracker {
 public:
  // In memory only: nothing is journaled.
  explicit DagTracker(TrackerOptions options = {});
  // Journals through `journal`, which must be empty (tests use fakes).
  DagTracker(TrackerOptions options, std::unique_ptr<Journal> journal);
  // Opens or creates the journal at `path`, replays it and resumes (see the
  // file comment). Errors name the file and the offset of the bad record.
  static Result<std::unique_ptr<DagTracker>> open(const std::filesystem::path& path,
                                                  TrackerOptions options = {});
  // Flushes queued records (best effort; call flush() to see errors).
  ~DagTracker();
  DagTracker(const DagTracker&) = delete;
  DagTracker& operator=(const DagTracker&) = delete;

  // A new, empty, running workflow; the pointer stays valid until
  // remove_workflow() or the tracker's destruction. Refused when `id` is
  // empty or taken.
  Result<Workflow*> create_workflow(std::string id, FailurePolicy policy);
  Workflow* workflow(std::string_view id);
  std::vector<std::string> workflow_ids() const;
  // Forgets a workflow (finished ones, once the daemon has reported them).
  Result<void> remove_workflow(std::string_view id);

  // Makes every change so far durable (batched mode; a no-op cost otherwise).
  Result<void> flush();
  // Rewrites the journal as one snapshot of the live workflows.
  Result<void> compact();

  const std::vector<InterruptedStep>& interrupted() const { return interrupted_; }
  bool journaled() const { return journal_ != nullptr; }

 private:
  friend class Workflow;

  Result<void> commit();  // after each Workflow change
  Result<void> apply(const JournalRecord& record);
  Result<void> resume();
  std::vector<JournalRecord> snapshot() const;
  void attach(Workflow& wf);

  TrackerOptions options_;
  std::unique_ptr<Journal> journal_;
  std::map<std::string, std::unique_ptr<Workflow>, std::less<>> workflows_;
  std::vector<InterruptedStep> interrupted_;
};

}  // namespace symphony::pit::dag
