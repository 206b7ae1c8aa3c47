// One workflow's step graph and the state of every step in it: the hot
// structure of the DAG tracker. Completing a step costs O(out-degree): each
// step keeps a count of inputs not yet satisfied, and a dependent whose count
// reaches zero joins the ready set, a binary heap ordered by critical path
// (longest estimated-cost path to a sink) so the Conductor starts the steps
// that bound the workflow's length first.
//
// Threading: not thread-safe. The daemon owns each Workflow (through its
// DagTracker) on its event-loop thread and calls every method there.
//
// Errors: every method that changes state checks the transition against the
// table in step_state.h first; an illegal one changes nothing and returns
// EINVAL naming the workflow, the step, the from-state and the to-state.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "pit/dag/memo.h"
#include "pit/dag/step_spec.h"
#include "pit/dag/step_state.h"

namespace symphony::pit::dag {

class DagTracker;
class Journal;
struct JournalRecord;

// A step's position in its workflow: the order in which it was added.
using StepIndex = std::uint32_t;

enum class WorkflowState : std::uint8_t { running, succeeded, failed, cancelled };
std::string_view to_string(WorkflowState state);

// What fail() did: where the step went, and which other running steps the
// failure cancelled (fail_workflow policy) and the Conductor must now stop.
struct FailOutcome {
  StepState state = StepState::failed;  // retrying or failed
  std::vector<StepIndex> cancelled_running;
};

class Workflow {
 public:
  // A workflow with no steps, running. `memo` (not owned, may be null) is
  // consulted for every step with a MemoSpec as it becomes ready.
  Workflow(std::string id, FailurePolicy policy, MemoCache* memo = nullptr);
  Workflow(const Workflow&) = delete;
  Workflow& operator=(const Workflow&) = delete;

  // --- building (also while running) ---------------------------------------

  // Adds `steps` atomically: all or none. Inputs may name steps added before
  // or steps in the same batch, in any order. Refused (nothing added) when an
  // id is empty or taken, an input is unknown, a cost is negative or not
  // finite, max_attempts is 0, the batch has a cycle — the error names it,
  // "cycle: a → b → c → a", where "x → y" reads "x consumes y's output" — or
  // the workflow has failed or been cancelled. A new step whose inputs have
  // all succeeded (or were memoized) is ready at once; one with a failed or
  // skipped input is skipped, one with a cancelled input cancelled.
  // Returns the index of the first new step; the rest follow in order.
  Result<StepIndex> add_steps(std::span<const StepSpec> steps);

  // --- the scheduling loop --------------------------------------------------

  // The ready step with the longest critical path (ties: lowest index).
  std::optional<StepIndex> peek_ready() const {
    return heap_.empty() ? std::nullopt : std::optional<StepIndex>(heap_.front().step);
  }
  std::size_t ready_count() const { return heap_.size(); }
  // All ready steps, highest priority first (a copy; for status, not the loop).
  std::vector<StepIndex> ready_by_priority() const;

  // ready → running; counts an attempt.
  Result<void> start(StepIndex step);
  // running → succeeded with `outputs`; dependents whose inputs are now all
  // satisfied become ready (or memoized). The hot path: O(out-degree).
  Result<void> succeed(StepIndex step, std::vector<OutputRef> outputs = {});
  // running → retrying when attempts remain (and the failure is not
  // `final`: an error retrying cannot fix), else → failed and the failure
  // policy (the step's override or the workflow's) is applied.
  Result<FailOutcome> fail(StepIndex step, std::string message, bool final = false);
  // retrying → ready, after the Conductor's backoff.
  Result<void> retry(StepIndex step);
  // Cancels an unfinished step; its transitive dependents are cancelled too.
  // (When it was running, the caller stops it.)
  Result<void> cancel_step(StepIndex step);
  // Cancels every unfinished step; returns those that were running.
  Result<std::vector<StepIndex>> cancel();

  // --- queries ----------------------------------------------------------------

  const std::string& id() const { return id_; }
  FailurePolicy policy() const { return policy_; }
  WorkflowState state() const;
  std::size_t size() const { return nodes_.size(); }
  std::optional<StepIndex> find(std::string_view step_id) const;
  const StepSpec& spec(StepIndex step) const { return specs_[step]; }
  StepState state(StepIndex step) const { return nodes_[step].state; }
  SkipReason skip_reason(StepIndex step) const { return nodes_[step].reason; }
  // Attempts started so far (a retried step's second run is attempt 2).
  std::uint32_t attempts(StepIndex step) const { return nodes_[step].attempts; }
  // Outputs of a succeeded step, or the cached outputs of a memoized one.
  const std::vector<OutputRef>& outputs(StepIndex step) const { return outputs_[step]; }
  // The message of the last failed attempt ("" when none).
  const std::string& last_error(StepIndex step) const { return messages_[step]; }
  // Longest path from the step to a sink, summing estimated costs (the
  // step's own included).
  double critical_path(StepIndex step) const { return critical_[step]; }
  const std::vector<StepIndex>& dependents(StepIndex step) const { return dependents_[step]; }
  const std::vector<StepIndex>& inputs(StepIndex step) const { return inputs_[step]; }
  std::vector<StepIndex> steps_in(StepState state) const;
  // The memo key of a step with a MemoSpec whose inputs are all satisfied.
  std::optional<Digest> memo_key_of(StepIndex step) const;

 private:
  friend class DagTracker;

  struct Node {
    StepState state = StepState::pending;
    SkipReason reason = SkipReason::none;
    std::uint32_t unsatisfied = 0;  // inputs not yet succeeded or memoized
    std::uint32_t attempts = 0;
    std::uint32_t heap_pos = kNotInHeap;
  };
  static constexpr std::uint32_t kNotInHeap = UINT32_MAX;

  Error illegal(StepIndex step, StepState to) const;
  Result<void> check(StepIndex step, StepState to) const;
  bool satisfied(StepIndex step) const {
    return nodes_[step].state == StepState::succeeded ||
           (nodes_[step].state == StepState::skipped && nodes_[step].reason == SkipReason::memoized);
  }
  void set_state(StepIndex step, StepState to, SkipReason reason = SkipReason::none);
  // pending/retrying → ready; consults the memo cache and returns true on a
  // hit (the step is then skipped as memoized and its dependents are the
  // caller's to release).
  bool make_ready(StepIndex step);
  void mark_memoized(StepIndex step, std::vector<OutputRef> outputs);
  void release_dependents(StepIndex step);
  void release_cascade();
  void skip_or_cancel_dependents(StepIndex step, StepState to);
  void cancel_unfinished(std::vector<StepIndex>* running);
  void raise_critical_path(StepIndex step, double value);

  // Heap of ready steps: max critical path first, then lowest index. The
  // priority is copied into the entry so sifting never leaves the heap array.
  struct HeapEntry {
    double priority;
    StepIndex step;
  };
  static bool before(const HeapEntry& a, const HeapEntry& b) {
    return a.priority > b.priority || (a.priority == b.priority && a.step < b.step);
  }
  void heap_push(StepIndex step);
  void heap_remove(StepIndex step);
  void sift_up(std::uint32_t pos);
  void sift_down(std::uint32_t pos);

  // Records go to journal_ (set by the owning tracker); with none attached —
  // a free-standing workflow, or a replay — no record is ever built.
  void journal(const JournalRecord& record);
  Result<void> commit();
  // Replaces every step's state (compaction snapshot) and rebuilds the
  // counters and the ready heap from it.
  Result<void> restore(const JournalRecord& snapshot);

  std::string id_;
  FailurePolicy policy_;
  MemoCache* memo_;
  DagTracker* tracker_ = nullptr;
  Journal* journal_ = nullptr;  // set by the tracker; null while replaying
  bool cancelled_ = false;
  bool failed_ = false;  // a fail_workflow failure happened

  std::vector<Node> nodes_;
  std::vector<std::vector<StepIndex>> dependents_;
  std::vector<std::vector<StepIndex>> inputs_;
  std::vector<double> critical_;
  std::vector<StepSpec> specs_;
  std::vector<std::vector<OutputRef>> outputs_;
  std::vector<std::string> messages_;
  std::unordered_map<std::string, StepIndex> index_;
  std::vector<HeapEntry> heap_;
  std::vector<StepIndex> work_;  // scratch for cascades, kept to avoid allocation

  std::size_t terminal_ = 0;
  std::size_t n_failed_ = 0;     // failed or skipped for an upstream failure
  std::size_t n_cancelled_ = 0;
};

}  // namespace symphony::pit::dag
