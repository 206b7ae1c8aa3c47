// The step state machine, table-driven: the legality table itself (all 64
// pairs against an independent expectation) and every operation of Workflow
// tried from every state — illegal ones must fail naming step, from and to,
// and leave the step where it was.
#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <string>

#include "pit/dag/step_state.h"
#include "pit/dag/workflow.h"

namespace symphony::pit::dag {
namespace {

using S = StepState;
constexpr std::array<S, 8> kAll = {S::pending, S::ready,   S::running, S::succeeded,
                                   S::failed,  S::retrying, S::skipped, S::cancelled};

// Written out by hand from the design (docs/pit/dag.md), not derived from
// transition_allowed().
bool expected_legal(S from, S to) {
  struct Edge { S from, to; };
  constexpr Edge legal[] = {
      {S::pending, S::ready},     {S::pending, S::skipped},   {S::pending, S::cancelled},
      {S::ready, S::running},     {S::ready, S::skipped},     {S::ready, S::cancelled},
      {S::running, S::succeeded}, {S::running, S::failed},    {S::running, S::retrying},
      {S::running, S::cancelled}, {S::retrying, S::ready},    {S::retrying, S::cancelled},
  };
  for (const Edge& e : legal) {
    if (e.from == from && e.to == to) return true;
  }
  return false;
}

TEST(StepStateMachine, TableMatchesTheDesignForAllPairs) {
  int legal = 0;
  for (S from : kAll) {
    for (S to : kAll) {
      EXPECT_EQ(transition_allowed(from, to), expected_legal(from, to))
          << to_string(from) << " → " << to_string(to);
      legal += transition_allowed(from, to) ? 1 : 0;
    }
  }
  EXPECT_EQ(legal, 12);
}

TEST(StepStateMachine, TerminalStatesHaveNoExit) {
  for (S from : kAll) {
    if (!is_terminal(from)) continue;
    for (S to : kAll) EXPECT_FALSE(transition_allowed(from, to)) << to_string(from);
  }
}

// A workflow with step "up" and step "s" (consumes up, two attempts), with
// "s" driven into `target`.
struct Driven {
  std::unique_ptr<Workflow> wf;
  StepIndex s = 0;
};

Driven drive_to(S target) {
  Driven d;
  d.wf = std::make_unique<Workflow>("w", FailurePolicy::continue_independent);
  StepSpec up{.id = "up"};
  StepSpec s{.id = "s", .inputs = {"up"}, .max_attempts = 2};
  auto base = d.wf->add_steps(std::array{up, s});
  EXPECT_TRUE(base.has_value());
  Workflow& wf = *d.wf;
  const StepIndex u = 0;
  d.s = 1;
  auto run_up = [&] {
    EXPECT_TRUE(wf.start(u).has_value());
    EXPECT_TRUE(wf.succeed(u).has_value());
  };
  switch (target) {
    case S::pending: break;
    case S::ready: run_up(); break;
    case S::running:
      run_up();
      EXPECT_TRUE(wf.start(d.s).has_value());
      break;
    case S::succeeded:
      run_up();
      EXPECT_TRUE(wf.start(d.s).has_value());
      EXPECT_TRUE(wf.succeed(d.s).has_value());
      break;
    case S::retrying:
      run_up();
      EXPECT_TRUE(wf.start(d.s).has_value());
      EXPECT_EQ(wf.fail(d.s, "boom")->state, S::retrying);
      break;
    case S::failed:
      run_up();
      EXPECT_TRUE(wf.start(d.s).has_value());
      EXPECT_TRUE(wf.fail(d.s, "boom").has_value());
      EXPECT_TRUE(wf.retry(d.s).has_value());
      EXPECT_TRUE(wf.start(d.s).has_value());
      EXPECT_EQ(wf.fail(d.s, "boom again")->state, S::failed);
      break;
    case S::skipped:
      EXPECT_TRUE(wf.start(u).has_value());
      EXPECT_TRUE(wf.fail(u, "upstream").has_value());
      break;
    case S::cancelled: EXPECT_TRUE(wf.cancel_step(d.s).has_value()); break;
  }
  EXPECT_EQ(wf.state(d.s), target);
  return d;
}

enum class Op { start, succeed, fail, retry, cancel };
struct OpCase {
  Op op;
  const char* name;
  S to;                    // the state the operation asks for
  std::array<bool, 8> ok;  // legal from kAll[i]
};

// pending ready running succeeded failed retrying skipped cancelled
const OpCase kOps[] = {
    {Op::start, "start", S::running, {false, true, false, false, false, false, false, false}},
    {Op::succeed, "succeed", S::succeeded, {false, false, true, false, false, false, false, false}},
    {Op::fail, "fail", S::failed, {false, false, true, false, false, false, false, false}},
    {Op::retry, "retry", S::ready, {false, false, false, false, false, true, false, false}},
    {Op::cancel, "cancel_step", S::cancelled, {true, true, true, false, false, true, false, false}},
};

Result<void> run(Workflow& wf, Op op, StepIndex s) {
  switch (op) {
    case Op::start: return wf.start(s);
    case Op::succeed: return wf.succeed(s);
    case Op::fail: {
      auto r = wf.fail(s, "x");
      if (!r) return std::move(r).error();
      return ok();
    }
    case Op::retry: return wf.retry(s);
    case Op::cancel: return wf.cancel_step(s);
  }
  return ok();
}

TEST(StepStateMachine, EveryOperationFromEveryState) {
  int illegal_checked = 0;
  for (const OpCase& c : kOps) {
    for (std::size_t i = 0; i < kAll.size(); ++i) {
      const S from = kAll[i];
      SCOPED_TRACE(std::string(c.name) + " from " + std::string(to_string(from)));
      Driven d = drive_to(from);
      auto r = run(*d.wf, c.op, d.s);
      if (c.ok[i]) {
        EXPECT_TRUE(r.has_value()) << r.error().message();
        continue;
      }
      ASSERT_FALSE(r.has_value());
      ++illegal_checked;
      EXPECT_EQ(r.error().code(), EINVAL);
      EXPECT_EQ(r.error().message(), "workflow 'w': step 's': illegal transition " +
                                         std::string(to_string(from)) + " → " + std::string(to_string(c.to)));
      EXPECT_EQ(d.wf->state(d.s), from) << "an illegal transition must change nothing";
    }
  }
  EXPECT_EQ(illegal_checked, 5 * 8 - 8);
}

TEST(StepStateMachine, UnknownStepIndexIsAnError) {
  Workflow wf("w", FailurePolicy::fail_workflow);
  auto r = wf.start(7);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "workflow 'w': no step #7");
}

TEST(StepStateMachine, NamesOfStates) {
  EXPECT_EQ(to_string(S::retrying), "retrying");
  EXPECT_EQ(to_string(SkipReason::memoized), "memoized");
  EXPECT_EQ(to_string(SkipReason::upstream_failed), "upstream failed");
}

}  // namespace
}  // namespace symphony::pit::dag
