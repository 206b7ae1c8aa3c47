// Workflow registry, journal replay and resumption, group commit and
// compaction for the DAG tracker.
#include "pit/dag/dag_tracker.h"

#include <utility>

namespace symphony::pit::dag {

DagTracker::DagTracker(TrackerOptions options) : options_(options) {}

DagTracker::DagTracker(TrackerOptions options, std::unique_ptr<Journal> journal)
    : options_(options), journal_(std::move(journal)) {}

DagTracker::~DagTracker() {
  if (journal_) (void)journal_->sync();
}

Result<std::unique_ptr<DagTracker>> DagTracker::open(const std::filesystem::path& path,
                                                     TrackerOptions options) {
  std::unique_ptr<DagTracker> tracker(new DagTracker(options));
  // Replay with no journal and no memo cache attached: records re-apply the
  // decisions made at the time (memo hits are records of their own), and
  // nothing is re-journaled.
  auto journal = FileJournal::open(path, [&](const JournalRecord& record, std::uint64_t) {
    return tracker->apply(record);
  });
  if (!journal) return std::move(journal).error();
  tracker->journal_ = std::move(*journal);
  for (auto& [id, wf] : tracker->workflows_) tracker->attach(*wf);
  if (auto r = tracker->resume(); !r) return std::move(r).error().wrap("resume from journal " + path.string());
  return tracker;
}

void DagTracker::attach(Workflow& wf) {
  wf.tracker_ = this;
  wf.journal_ = journal_.get();
  wf.memo_ = options_.memo;
}

// Steps that were running when the daemon stopped: their attempt is lost.
Result<void> DagTracker::resume() {
  for (auto& [id, wf] : workflows_) {
    for (StepIndex s : wf->steps_in(StepState::running)) {
      if (wf->state(s) != StepState::running) continue;  // cancelled by an earlier one's failure
      auto outcome = wf->fail(s, "interrupted: the daemon restarted while the step ran");
      if (!outcome) return std::move(outcome).error();
      interrupted_.push_back({id, s, outcome->state});
    }
  }
  return flush();
}

Result<void> DagTracker::apply(const JournalRecord& r) {
  if (r.kind == RecordKind::create_workflow) {
    if (r.workflow.empty() || workflows_.count(r.workflow)) {
      return Error::invalid("workflow '" + r.workflow + "' created twice");
    }
    auto wf = std::make_unique<Workflow>(r.workflow, r.policy, nullptr);
    workflows_.emplace(r.workflow, std::move(wf));
    return ok();
  }
  auto it = workflows_.find(r.workflow);
  if (it == workflows_.end()) return Error::invalid("record for unknown workflow '" + r.workflow + "'");
  Workflow& wf = *it->second;
  switch (r.kind) {
    case RecordKind::create_workflow: break;
    case RecordKind::add_steps: {
      auto added = wf.add_steps(r.steps);
      if (!added) return std::move(added).error();
      return ok();
    }
    case RecordKind::start_step: return wf.start(r.step);
    case RecordKind::succeed_step: return wf.succeed(r.step, r.outputs);
    case RecordKind::fail_step:
    case RecordKind::fail_step_final: {
      auto outcome = wf.fail(r.step, r.message, r.kind == RecordKind::fail_step_final);
      if (!outcome) return std::move(outcome).error();
      return ok();
    }
    case RecordKind::retry_step: return wf.retry(r.step);
    case RecordKind::cancel_step: return wf.cancel_step(r.step);
    case RecordKind::cancel_workflow: {
      auto running = wf.cancel();
      if (!running) return std::move(running).error();
      return ok();
    }
    case RecordKind::memo_hit:
      if (r.step >= wf.size() || wf.state(r.step) != StepState::ready) {
        return Error::invalid("workflow '" + r.workflow + "': memo hit for step #" + std::to_string(r.step) +
                              ", which is not ready");
      }
      wf.mark_memoized(r.step, r.outputs);
      wf.release_dependents(r.step);
      return ok();
    case RecordKind::remove_workflow: workflows_.erase(it); return ok();
    case RecordKind::workflow_state: return wf.restore(r);
  }
  return Error::invalid("unknown record kind");
}

Result<Workflow*> DagTracker::create_workflow(std::string id, FailurePolicy policy) {
  if (id.empty()) return Error::invalid("a workflow id must not be empty");
  if (workflows_.count(id)) return Error::invalid("workflow '" + id + "' exists already");
  auto wf = std::make_unique<Workflow>(id, policy, options_.memo);
  Workflow* raw = wf.get();
  attach(*raw);
  workflows_.emplace(id, std::move(wf));
  if (journal_) {
    JournalRecord r;
    r.kind = RecordKind::create_workflow;
    r.workflow = std::move(id);
    r.policy = policy;
    journal_->append(r);
    if (auto c = commit(); !c) return std::move(c).error();
  }
  return raw;
}

Workflow* DagTracker::workflow(std::string_view id) {
  auto it = workflows_.find(id);
  return it == workflows_.end() ? nullptr : it->second.get();
}

std::vector<std::string> DagTracker::workflow_ids() const {
  std::vector<std::string> ids;
  for (const auto& [id, wf] : workflows_) ids.push_back(id);
  return ids;
}

Result<void> DagTracker::remove_workflow(std::string_view id) {
  auto it = workflows_.find(id);
  if (it == workflows_.end()) return Error::invalid("no workflow '" + std::string(id) + "'");
  workflows_.erase(it);
  if (!journal_) return ok();
  JournalRecord r;
  r.kind = RecordKind::remove_workflow;
  r.workflow = std::string(id);
  journal_->append(r);
  return commit();
}

Result<void> DagTracker::commit() {
  if (options_.durability == Durability::batched) return ok();
  return flush();
}

Result<void> DagTracker::flush() {
  if (!journal_) return ok();
  if (auto r = journal_->sync(); !r) return r;
  if (journal_->bytes_since_rewrite() > options_.compact_after_bytes) return compact();
  return ok();
}

Result<void> DagTracker::compact() {
  if (!journal_) return ok();
  auto records = snapshot();
  return journal_->rewrite(records);
}

std::vector<JournalRecord> DagTracker::snapshot() const {
  std::vector<JournalRecord> out;
  for (const auto& [id, wf] : workflows_) {
    JournalRecord create;
    create.kind = RecordKind::create_workflow;
    create.workflow = id;
    create.policy = wf->policy_;
    out.push_back(std::move(create));
    if (wf->size() > 0) {
      JournalRecord add;
      add.kind = RecordKind::add_steps;
      add.workflow = id;
      add.steps = wf->specs_;
      out.push_back(std::move(add));
    }
    JournalRecord state;
    state.kind = RecordKind::workflow_state;
    state.workflow = id;
    state.cancelled = wf->cancelled_;
    state.failed = wf->failed_;
    state.snapshot.resize(wf->size());
    for (StepIndex s = 0; s < wf->size(); ++s) {
      StepSnapshot& snap = state.snapshot[s];
      snap.state = wf->nodes_[s].state;
      snap.reason = wf->nodes_[s].reason;
      snap.attempt = wf->nodes_[s].attempts;
      snap.outputs = wf->outputs_[s];
      snap.message = wf->messages_[s];
    }
    out.push_back(std::move(state));
  }
  return out;
}

}  // namespace symphony::pit::dag
