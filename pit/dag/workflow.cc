// The workflow graph: batch addition with cycle naming, critical paths, the
// incremental ready set, and the transitions of the step state machine with
// their consequences (memoization, retries, failure and cancel propagation).
#include "pit/dag/workflow.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <unordered_set>
#include <utility>

#include "pit/dag/dag_tracker.h"
#include "pit/dag/journal.h"

namespace symphony::pit::dag {
namespace {

JournalRecord step_record(RecordKind kind, const std::string& workflow, StepIndex step) {
  JournalRecord r;
  r.kind = kind;
  r.workflow = workflow;
  r.step = step;
  return r;
}

}  // namespace

std::string_view to_string(WorkflowState state) {
  switch (state) {
    case WorkflowState::running: return "running";
    case WorkflowState::succeeded: return "succeeded";
    case WorkflowState::failed: return "failed";
    case WorkflowState::cancelled: return "cancelled";
  }
  return "invalid";
}

Workflow::Workflow(std::string id, FailurePolicy policy, MemoCache* memo)
    : id_(std::move(id)), policy_(policy), memo_(memo) {}

// --- errors -------------------------------------------------------------------

Error Workflow::illegal(StepIndex step, StepState to) const {
  return Error::invalid("workflow '" + id_ + "': step '" + specs_[step].id + "': illegal transition " +
                        std::string(to_string(nodes_[step].state)) + " → " + std::string(to_string(to)));
}

Result<void> Workflow::check(StepIndex step, StepState to) const {
  if (step >= nodes_.size()) {
    return Error::invalid("workflow '" + id_ + "': no step #" + std::to_string(step));
  }
  if (!transition_allowed(nodes_[step].state, to)) return illegal(step, to);
  return ok();
}

// --- building -----------------------------------------------------------------

Result<StepIndex> Workflow::add_steps(std::span<const StepSpec> steps) {
  const std::string where = "workflow '" + id_ + "'";
  if (cancelled_ || failed_) {
    return Error::invalid(where + " has " + (cancelled_ ? "been cancelled" : "failed") +
                          "; no steps can be added");
  }
  const auto base = static_cast<StepIndex>(nodes_.size());
  const std::size_t n = steps.size();
  if (n == 0) return base;
  if (nodes_.size() + n >= kNotInHeap) return Error::invalid(where + ": too many steps");

  // Validate and resolve every input to a global index before touching state.
  std::unordered_map<std::string_view, StepIndex> batch;
  for (std::size_t i = 0; i < n; ++i) {
    const StepSpec& s = steps[i];
    if (s.id.empty()) return Error::invalid(where + ": step #" + std::to_string(base + i) + " has an empty id");
    if (index_.count(s.id) || !batch.emplace(s.id, base + static_cast<StepIndex>(i)).second) {
      return Error::invalid(where + ": step '" + s.id + "' is defined twice");
    }
    if (!std::isfinite(s.cost) || s.cost < 0) {
      return Error::invalid(where + ": step '" + s.id + "': cost must be finite and ≥ 0");
    }
    if (s.max_attempts == 0) return Error::invalid(where + ": step '" + s.id + "': max_attempts must be ≥ 1");
  }
  std::vector<std::vector<StepIndex>> resolved(n);
  for (std::size_t i = 0; i < n; ++i) {
    for (const std::string& in : steps[i].inputs) {
      StepIndex target;
      if (auto it = batch.find(in); it != batch.end()) {
        target = it->second;
      } else if (auto old = index_.find(in); old != index_.end()) {
        target = old->second;
      } else {
        return Error::invalid(where + ": step '" + steps[i].id + "': unknown input '" + in + "'");
      }
      if (std::find(resolved[i].begin(), resolved[i].end(), target) != resolved[i].end()) {
        return Error::invalid(where + ": step '" + steps[i].id + "' lists input '" + in + "' twice");
      }
      resolved[i].push_back(target);
    }
  }

  // Cycles can only run through new steps (old steps never gain inputs).
  // Iterative DFS along input edges; a grey step met again closes a cycle,
  // which is the DFS path from it to the top of the stack. Post-order gives
  // a topological order, inputs first.
  enum : std::uint8_t { white, grey, black };
  std::vector<std::uint8_t> colour(n, white);
  std::vector<StepIndex> topo;
  topo.reserve(n);
  std::vector<std::pair<StepIndex, std::size_t>> stack;  // local index, next input
  for (std::size_t root = 0; root < n; ++root) {
    if (colour[root] != white) continue;
    stack.emplace_back(static_cast<StepIndex>(root), 0);
    colour[root] = grey;
    while (!stack.empty()) {
      auto& [u, next] = stack.back();
      if (next == resolved[u].size()) {
        colour[u] = black;
        topo.push_back(u);
        stack.pop_back();
        continue;
      }
      StepIndex target = resolved[u][next++];
      if (target < base) continue;
      StepIndex v = target - base;
      if (colour[v] == grey) {
        std::string cycle = "cycle: ";
        auto from = std::find_if(stack.begin(), stack.end(), [&](const auto& f) { return f.first == v; });
        for (auto it = from; it != stack.end(); ++it) cycle += steps[it->first].id + " → ";
        cycle += steps[v].id;
        return Error::invalid(where + ": " + cycle);
      }
      if (colour[v] == white) {
        colour[v] = grey;
        stack.emplace_back(v, 0);
      }
    }
  }

  // Commit: nothing below can fail.
  if (journal_) {
    JournalRecord r;
    r.kind = RecordKind::add_steps;
    r.workflow = id_;
    r.steps.assign(steps.begin(), steps.end());
    journal(r);
  }
  const std::size_t total = nodes_.size() + n;
  nodes_.resize(total);
  dependents_.resize(total);
  inputs_.resize(total);
  critical_.resize(total, 0.0);
  outputs_.resize(total);
  messages_.resize(total);
  for (std::size_t i = 0; i < n; ++i) {
    const StepIndex s = base + static_cast<StepIndex>(i);
    specs_.push_back(steps[i]);
    index_.emplace(steps[i].id, s);
    inputs_[s] = std::move(resolved[i]);
    for (StepIndex in : inputs_[s]) {
      dependents_[in].push_back(s);
      if (!satisfied(in)) ++nodes_[s].unsatisfied;
    }
  }
  // Critical paths: new steps dependents-first (their dependents are all new),
  // then raise the old ancestors.
  for (auto it = topo.rbegin(); it != topo.rend(); ++it) {
    const StepIndex s = base + *it;
    double longest = 0;
    for (StepIndex d : dependents_[s]) longest = std::max(longest, critical_[d]);
    critical_[s] = specs_[s].cost + longest;
  }
  for (StepIndex s = base; s < total; ++s) {
    for (StepIndex in : inputs_[s]) {
      if (in < base) raise_critical_path(in, specs_[in].cost + critical_[s]);
    }
  }
  // Initial states, inputs first so that a new step sees its new inputs'.
  for (StepIndex local : topo) {
    const StepIndex s = base + local;
    if (nodes_[s].state != StepState::pending) continue;  // released by a memo hit
    bool upstream_failed = false, upstream_cancelled = false;
    for (StepIndex in : inputs_[s]) {
      const Node& i = nodes_[in];
      upstream_failed |= i.state == StepState::failed ||
                         (i.state == StepState::skipped && i.reason == SkipReason::upstream_failed);
      upstream_cancelled |= i.state == StepState::cancelled;
    }
    if (upstream_failed) {
      set_state(s, StepState::skipped, SkipReason::upstream_failed);
    } else if (upstream_cancelled) {
      set_state(s, StepState::cancelled);
    } else if (nodes_[s].unsatisfied == 0 && make_ready(s)) {
      release_dependents(s);
    }
  }
  if (auto r = commit(); !r) return std::move(r).error();
  return base;
}

void Workflow::raise_critical_path(StepIndex step, double value) {
  std::vector<std::pair<StepIndex, double>> todo{{step, value}};
  while (!todo.empty()) {
    auto [s, v] = todo.back();
    todo.pop_back();
    if (v <= critical_[s]) continue;
    critical_[s] = v;
    if (const std::uint32_t pos = nodes_[s].heap_pos; pos != kNotInHeap) {
      heap_[pos].priority = v;
      sift_up(pos);
    }
    for (StepIndex in : inputs_[s]) todo.emplace_back(in, specs_[in].cost + v);
  }
}

// --- transitions ----------------------------------------------------------------

void Workflow::set_state(StepIndex step, StepState to, SkipReason reason) {
  Node& node = nodes_[step];
  assert(transition_allowed(node.state, to));
  node.state = to;
  node.reason = reason;
  if (is_terminal(to)) {
    ++terminal_;
    if (to == StepState::failed || reason == SkipReason::upstream_failed) ++n_failed_;
    if (to == StepState::cancelled) ++n_cancelled_;
  }
}

bool Workflow::make_ready(StepIndex step) {
  set_state(step, StepState::ready);
  if (memo_ != nullptr && specs_[step].memo) {
    if (auto key = memo_key_of(step)) {
      if (auto hit = memo_->lookup(*key)) {
        if (journal_) {
          JournalRecord r = step_record(RecordKind::memo_hit, id_, step);
          r.outputs = *hit;
          journal(r);
        }
        mark_memoized(step, std::move(*hit));
        return true;
      }
    }
  }
  heap_push(step);
  return false;
}

void Workflow::mark_memoized(StepIndex step, std::vector<OutputRef> outputs) {
  if (nodes_[step].heap_pos != kNotInHeap) heap_remove(step);
  set_state(step, StepState::skipped, SkipReason::memoized);
  outputs_[step] = std::move(outputs);
}

// The hot path: one decrement per dependent; the cascade stack is touched
// only when a memo hit satisfied a step without running it.
void Workflow::release_dependents(StepIndex step) {
  for (StepIndex d : dependents_[step]) {
    Node& node = nodes_[d];
    if (--node.unsatisfied == 0 && node.state == StepState::pending && make_ready(d)) work_.push_back(d);
  }
  if (!work_.empty()) release_cascade();
}

void Workflow::release_cascade() {
  while (!work_.empty()) {
    StepIndex s = work_.back();
    work_.pop_back();
    for (StepIndex d : dependents_[s]) {
      Node& node = nodes_[d];
      if (--node.unsatisfied == 0 && node.state == StepState::pending && make_ready(d)) work_.push_back(d);
    }
  }
}

Result<void> Workflow::start(StepIndex step) {
  if (auto r = check(step, StepState::running); !r) return r;
  if (journal_) journal(step_record(RecordKind::start_step, id_, step));
  heap_remove(step);
  set_state(step, StepState::running);
  ++nodes_[step].attempts;
  return commit();
}

Result<void> Workflow::succeed(StepIndex step, std::vector<OutputRef> outputs) {
  if (auto r = check(step, StepState::succeeded); !r) return r;
  if (journal_) {
    JournalRecord r = step_record(RecordKind::succeed_step, id_, step);
    r.outputs = outputs;
    journal(r);
  }
  set_state(step, StepState::succeeded);
  outputs_[step] = std::move(outputs);
  if (memo_ != nullptr && specs_[step].memo) {
    if (auto key = memo_key_of(step)) memo_->store(*key, outputs_[step]);
  }
  release_dependents(step);
  return commit();
}

Result<FailOutcome> Workflow::fail(StepIndex step, std::string message, bool final) {
  if (auto r = check(step, StepState::failed); !r) return std::move(r).error();
  if (journal_) {
    JournalRecord r = step_record(final ? RecordKind::fail_step_final : RecordKind::fail_step, id_, step);
    r.message = message;
    journal(r);
  }
  messages_[step] = std::move(message);
  FailOutcome outcome;
  if (!final && nodes_[step].attempts < specs_[step].max_attempts) {
    set_state(step, StepState::retrying);
    outcome.state = StepState::retrying;
  } else {
    set_state(step, StepState::failed);
    outcome.state = StepState::failed;
    skip_or_cancel_dependents(step, StepState::skipped);
    if (specs_[step].failure_policy.value_or(policy_) == FailurePolicy::fail_workflow) {
      failed_ = true;
      cancel_unfinished(&outcome.cancelled_running);
    }
  }
  if (auto r = commit(); !r) return std::move(r).error();
  return outcome;
}

Result<void> Workflow::retry(StepIndex step) {
  if (auto r = check(step, StepState::ready); !r) return r;
  // The table also allows pending → ready, but only the tracker makes that one.
  if (nodes_[step].state != StepState::retrying) return illegal(step, StepState::ready);
  if (journal_) journal(step_record(RecordKind::retry_step, id_, step));
  set_state(step, StepState::ready);
  heap_push(step);
  return commit();
}

Result<void> Workflow::cancel_step(StepIndex step) {
  if (auto r = check(step, StepState::cancelled); !r) return r;
  if (journal_) journal(step_record(RecordKind::cancel_step, id_, step));
  if (nodes_[step].heap_pos != kNotInHeap) heap_remove(step);
  set_state(step, StepState::cancelled);
  skip_or_cancel_dependents(step, StepState::cancelled);
  return commit();
}

Result<std::vector<StepIndex>> Workflow::cancel() {
  if (WorkflowState s = state(); s != WorkflowState::running) {
    return Error::invalid("workflow '" + id_ + "' is " + std::string(to_string(s)) + "; nothing to cancel");
  }
  if (journal_) {
    JournalRecord r;
    r.kind = RecordKind::cancel_workflow;
    r.workflow = id_;
    journal(r);
  }
  cancelled_ = true;
  std::vector<StepIndex> running;
  cancel_unfinished(&running);
  if (auto r = commit(); !r) return std::move(r).error();
  return running;
}

// Unfinished transitive dependents of a failed (→ skipped) or cancelled
// (→ cancelled) step. They are all pending: none can have started without it.
void Workflow::skip_or_cancel_dependents(StepIndex root, StepState to) {
  const SkipReason reason = to == StepState::skipped ? SkipReason::upstream_failed : SkipReason::none;
  std::vector<StepIndex> todo{root};
  while (!todo.empty()) {
    StepIndex s = todo.back();
    todo.pop_back();
    for (StepIndex d : dependents_[s]) {
      if (is_terminal(nodes_[d].state)) continue;
      if (nodes_[d].heap_pos != kNotInHeap) heap_remove(d);
      set_state(d, to, reason);
      todo.push_back(d);
    }
  }
}

void Workflow::cancel_unfinished(std::vector<StepIndex>* running) {
  for (StepIndex s = 0; s < nodes_.size(); ++s) {
    if (is_terminal(nodes_[s].state)) continue;
    if (nodes_[s].state == StepState::running) running->push_back(s);
    if (nodes_[s].heap_pos != kNotInHeap) heap_remove(s);
    set_state(s, StepState::cancelled);
  }
}

// --- queries ----------------------------------------------------------------------

WorkflowState Workflow::state() const {
  if (cancelled_) return WorkflowState::cancelled;
  if (failed_) return WorkflowState::failed;
  if (terminal_ < nodes_.size()) return WorkflowState::running;
  if (n_failed_ > 0) return WorkflowState::failed;
  if (n_cancelled_ > 0) return WorkflowState::cancelled;
  return WorkflowState::succeeded;
}

std::optional<StepIndex> Workflow::find(std::string_view step_id) const {
  auto it = index_.find(std::string(step_id));
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

std::vector<StepIndex> Workflow::ready_by_priority() const {
  std::vector<HeapEntry> sorted = heap_;
  std::sort(sorted.begin(), sorted.end(), before);
  std::vector<StepIndex> out;
  out.reserve(sorted.size());
  for (const HeapEntry& e : sorted) out.push_back(e.step);
  return out;
}

std::vector<StepIndex> Workflow::steps_in(StepState state) const {
  std::vector<StepIndex> out;
  for (StepIndex s = 0; s < nodes_.size(); ++s) {
    if (nodes_[s].state == state) out.push_back(s);
  }
  return out;
}

std::optional<Digest> Workflow::memo_key_of(StepIndex step) const {
  if (step >= nodes_.size() || !specs_[step].memo) return std::nullopt;
  const MemoSpec& m = *specs_[step].memo;
  MemoKeyInput key{m.extension_id, m.extension_version, m.capability, m.canonical_params, {}};
  for (StepIndex in : inputs_[step]) {
    if (!satisfied(in)) return std::nullopt;
    for (const OutputRef& o : outputs_[in]) key.input_digests.push_back(o.digest);
  }
  key.input_digests.insert(key.input_digests.end(), m.external_inputs.begin(), m.external_inputs.end());
  return memo_key(key);
}

// --- the ready heap ---------------------------------------------------------------

void Workflow::heap_push(StepIndex step) {
  heap_.push_back({critical_[step], step});
  sift_up(static_cast<std::uint32_t>(heap_.size() - 1));
}

void Workflow::heap_remove(StepIndex step) {
  const std::uint32_t pos = nodes_[step].heap_pos;
  nodes_[step].heap_pos = kNotInHeap;
  const HeapEntry last = heap_.back();
  heap_.pop_back();
  if (pos == heap_.size()) return;
  heap_[pos] = last;
  nodes_[last.step].heap_pos = pos;
  sift_up(pos);
  sift_down(nodes_[last.step].heap_pos);
}

void Workflow::sift_up(std::uint32_t pos) {
  const HeapEntry e = heap_[pos];
  while (pos > 0) {
    const std::uint32_t parent = (pos - 1) / 2;
    if (!before(e, heap_[parent])) break;
    heap_[pos] = heap_[parent];
    nodes_[heap_[pos].step].heap_pos = pos;
    pos = parent;
  }
  heap_[pos] = e;
  nodes_[e.step].heap_pos = pos;
}

void Workflow::sift_down(std::uint32_t pos) {
  const HeapEntry e = heap_[pos];
  const auto size = static_cast<std::uint32_t>(heap_.size());
  for (;;) {
    std::uint32_t child = 2 * pos + 1;
    if (child >= size) break;
    if (child + 1 < size && before(heap_[child + 1], heap_[child])) ++child;
    if (!before(heap_[child], e)) break;
    heap_[pos] = heap_[child];
    nodes_[heap_[pos].step].heap_pos = pos;
    pos = child;
  }
  heap_[pos] = e;
  nodes_[e.step].heap_pos = pos;
}

// --- journaling -------------------------------------------------------------------

void Workflow::journal(const JournalRecord& record) { journal_->append(record); }

Result<void> Workflow::commit() {
  if (journal_ == nullptr) return ok();
  return tracker_->commit();
}

Result<void> Workflow::restore(const JournalRecord& snap) {
  if (snap.snapshot.size() != nodes_.size()) {
    return Error::invalid("workflow '" + id_ + "': snapshot has " + std::to_string(snap.snapshot.size()) +
                          " steps, the workflow " + std::to_string(nodes_.size()));
  }
  cancelled_ = snap.cancelled;
  failed_ = snap.failed;
  heap_.clear();
  terminal_ = n_failed_ = n_cancelled_ = 0;
  for (StepIndex s = 0; s < nodes_.size(); ++s) {
    const StepSnapshot& in = snap.snapshot[s];
    Node& node = nodes_[s];
    node.state = in.state;
    node.reason = in.state == StepState::skipped ? in.reason : SkipReason::none;
    node.attempts = in.attempt;
    node.heap_pos = kNotInHeap;
    outputs_[s] = in.outputs;
    messages_[s] = in.message;
  }
  for (StepIndex s = 0; s < nodes_.size(); ++s) {
    Node& node = nodes_[s];
    node.unsatisfied = 0;
    for (StepIndex in : inputs_[s]) node.unsatisfied += satisfied(in) ? 0 : 1;
    const bool needs_inputs = node.state == StepState::ready || node.state == StepState::running ||
                              node.state == StepState::succeeded || node.state == StepState::retrying ||
                              (node.state == StepState::skipped && node.reason == SkipReason::memoized);
    if (needs_inputs && node.unsatisfied != 0) {
      return Error::invalid("workflow '" + id_ + "': snapshot has step '" + specs_[s].id + "' " +
                            std::string(to_string(node.state)) + " with unfinished inputs");
    }
    if (is_terminal(node.state)) {
      ++terminal_;
      if (node.state == StepState::failed || node.reason == SkipReason::upstream_failed) ++n_failed_;
      if (node.state == StepState::cancelled) ++n_cancelled_;
    }
    if (node.state == StepState::ready) heap_push(s);
  }
  return ok();
}

}  // namespace symphony::pit::dag
