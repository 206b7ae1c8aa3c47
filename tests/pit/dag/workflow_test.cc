// Workflow behaviour: building and validation, cycle naming, critical paths
// and ready order, dynamic addition, retries, cancellation and the failure
// policies.
#include "pit/dag/workflow.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace symphony::pit::dag {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

StepSpec step(std::string id, std::vector<std::string> inputs = {}, double cost = 1.0) {
  return StepSpec{.id = std::move(id), .inputs = std::move(inputs), .cost = cost};
}

StepIndex idx(const Workflow& wf, std::string_view id) {
  auto s = wf.find(id);
  EXPECT_TRUE(s.has_value()) << id;
  return s.value_or(0);
}

void run_ok(Workflow& wf, std::string_view id) {
  StepIndex s = idx(wf, id);
  ASSERT_TRUE(wf.start(s).has_value()) << id;
  ASSERT_TRUE(wf.succeed(s).has_value()) << id;
}

std::vector<std::string> ready_ids(const Workflow& wf) {
  std::vector<std::string> out;
  for (StepIndex s : wf.ready_by_priority()) out.push_back(wf.spec(s).id);
  return out;
}

TEST(Workflow, StepsWithoutInputsAreReadyAtOnce) {
  Workflow wf("w", FailurePolicy::fail_workflow);
  ASSERT_TRUE(wf.add_steps(std::vector{step("a"), step("b", {"a"})}).has_value());
  EXPECT_EQ(wf.state(idx(wf, "a")), StepState::ready);
  EXPECT_EQ(wf.state(idx(wf, "b")), StepState::pending);
  run_ok(wf, "a");
  EXPECT_EQ(wf.state(idx(wf, "b")), StepState::ready);
  EXPECT_EQ(wf.state(), WorkflowState::running);
  run_ok(wf, "b");
  EXPECT_EQ(wf.state(), WorkflowState::succeeded);
}

TEST(Workflow, CycleIsNamed) {
  Workflow wf("w", FailurePolicy::fail_workflow);
  auto r = wf.add_steps(std::vector{step("a", {"b"}), step("b", {"c"}), step("c", {"a"}), step("d")});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "workflow 'w': cycle: a → b → c → a");
  EXPECT_EQ(wf.size(), 0u) << "a refused batch adds nothing";
}

TEST(Workflow, SelfLoopIsACycle) {
  Workflow wf("w", FailurePolicy::fail_workflow);
  auto r = wf.add_steps(std::vector{step("x"), step("loop", {"x", "loop"})});
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message(), HasSubstr("cycle: loop → loop"));
}

TEST(Workflow, ValidationErrorsNameTheStep) {
  Workflow wf("w", FailurePolicy::fail_workflow);
  EXPECT_THAT(wf.add_steps(std::vector{step("a"), step("a")}).error().message(),
              HasSubstr("step 'a' is defined twice"));
  EXPECT_THAT(wf.add_steps(std::vector{step("a", {"nope"})}).error().message(),
              HasSubstr("step 'a': unknown input 'nope'"));
  EXPECT_THAT(wf.add_steps(std::vector{step("a", {}, -1)}).error().message(), HasSubstr("cost must be"));
  EXPECT_THAT(wf.add_steps(std::vector{step("")}).error().message(), HasSubstr("empty id"));
  EXPECT_THAT(wf.add_steps(std::vector{step("a"), step("b", {"a", "a"})}).error().message(),
              HasSubstr("lists input 'a' twice"));
  StepSpec zero = step("z");
  zero.max_attempts = 0;
  EXPECT_THAT(wf.add_steps(std::vector{zero}).error().message(), HasSubstr("max_attempts"));
  ASSERT_TRUE(wf.add_steps(std::vector{step("a")}).has_value());
  EXPECT_THAT(wf.add_steps(std::vector{step("a")}).error().message(), HasSubstr("defined twice"));
}

// a(2) → b(3) → d(1);  a → c(5) → d;  e(1) alone.  Longest paths to a sink.
TEST(Workflow, CriticalPathsAndReadyOrder) {
  Workflow wf("w", FailurePolicy::fail_workflow);
  ASSERT_TRUE(wf.add_steps(std::vector{step("d", {"b", "c"}, 1), step("b", {"a"}, 3), step("c", {"a"}, 5),
                                       step("a", {}, 2), step("e", {}, 1), step("f", {}, 9)})
                  .has_value());
  EXPECT_DOUBLE_EQ(wf.critical_path(idx(wf, "d")), 1);
  EXPECT_DOUBLE_EQ(wf.critical_path(idx(wf, "b")), 4);
  EXPECT_DOUBLE_EQ(wf.critical_path(idx(wf, "c")), 6);
  EXPECT_DOUBLE_EQ(wf.critical_path(idx(wf, "a")), 8);
  EXPECT_DOUBLE_EQ(wf.critical_path(idx(wf, "e")), 1);
  EXPECT_THAT(ready_ids(wf), ElementsAre("f", "a", "e"));
  EXPECT_EQ(wf.peek_ready(), idx(wf, "f"));
  run_ok(wf, "a");
  EXPECT_THAT(ready_ids(wf), ElementsAre("f", "c", "b", "e"));
}

TEST(Workflow, AddingStepsRaisesAncestorsCriticalPathsAndReordersReadySet) {
  Workflow wf("w", FailurePolicy::fail_workflow);
  ASSERT_TRUE(wf.add_steps(std::vector{step("a"), step("b", {}, 3)}).has_value());
  EXPECT_THAT(ready_ids(wf), ElementsAre("b", "a"));
  ASSERT_TRUE(wf.add_steps(std::vector{step("long", {"mid"}, 10), step("mid", {"a"}, 1)}).has_value());
  EXPECT_DOUBLE_EQ(wf.critical_path(idx(wf, "a")), 12);
  EXPECT_THAT(ready_ids(wf), ElementsAre("a", "b"));
}

TEST(Workflow, StepAddedAfterItsInputSucceededIsReadyAtOnce) {
  Workflow wf("w", FailurePolicy::fail_workflow);
  ASSERT_TRUE(wf.add_steps(std::vector{step("a"), step("b")}).has_value());
  run_ok(wf, "a");
  auto first = wf.add_steps(std::vector{step("c", {"a"}), step("d", {"a", "b"}), step("e", {"c"})});
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, 2u);
  EXPECT_EQ(wf.state(idx(wf, "c")), StepState::ready);
  EXPECT_EQ(wf.state(idx(wf, "d")), StepState::pending);
  EXPECT_EQ(wf.state(idx(wf, "e")), StepState::pending);
  run_ok(wf, "b");
  EXPECT_EQ(wf.state(idx(wf, "d")), StepState::ready);
}

TEST(Workflow, DynamicAdditionWithACycleIsRefused) {
  Workflow wf("w", FailurePolicy::fail_workflow);
  ASSERT_TRUE(wf.add_steps(std::vector{step("a")}).has_value());
  auto r = wf.add_steps(std::vector{step("x", {"a", "y"}), step("y", {"x"})});
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message(), HasSubstr("cycle: x → y → x"));
  EXPECT_EQ(wf.size(), 1u);
  EXPECT_TRUE(wf.dependents(0).empty());
}

TEST(Workflow, FinishedWorkflowReopensWhenStepsAreAdded) {
  Workflow wf("w", FailurePolicy::fail_workflow);
  ASSERT_TRUE(wf.add_steps(std::vector{step("a")}).has_value());
  run_ok(wf, "a");
  EXPECT_EQ(wf.state(), WorkflowState::succeeded);
  ASSERT_TRUE(wf.add_steps(std::vector{step("b", {"a"})}).has_value());
  EXPECT_EQ(wf.state(), WorkflowState::running);
}

TEST(Workflow, RetriesCountAttemptsUntilTheBudgetIsSpent) {
  Workflow wf("w", FailurePolicy::fail_workflow);
  StepSpec flaky = step("flaky");
  flaky.max_attempts = 3;
  ASSERT_TRUE(wf.add_steps(std::vector{flaky, step("after", {"flaky"})}).has_value());
  const StepIndex s = 0;
  for (std::uint32_t attempt = 1; attempt <= 2; ++attempt) {
    ASSERT_TRUE(wf.start(s).has_value());
    EXPECT_EQ(wf.attempts(s), attempt);
    auto out = wf.fail(s, "attempt " + std::to_string(attempt));
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(out->state, StepState::retrying);
    EXPECT_EQ(wf.ready_count(), 0u) << "retrying is not ready until the backoff is over";
    ASSERT_TRUE(wf.retry(s).has_value());
    EXPECT_EQ(wf.peek_ready(), s);
  }
  ASSERT_TRUE(wf.start(s).has_value());
  EXPECT_EQ(wf.attempts(s), 3u);
  auto out = wf.fail(s, "third time");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->state, StepState::failed);
  EXPECT_EQ(wf.last_error(s), "third time");
  EXPECT_EQ(wf.state(1), StepState::skipped);
  EXPECT_EQ(wf.skip_reason(1), SkipReason::upstream_failed);
  EXPECT_EQ(wf.state(), WorkflowState::failed);
}

TEST(Workflow, AFinalFailureIsNotRetriedWhateverTheBudget) {
  Workflow wf("w", FailurePolicy::fail_workflow);
  StepSpec flaky = step("flaky");
  flaky.max_attempts = 5;
  ASSERT_TRUE(wf.add_steps(std::vector{flaky, step("after", {"flaky"})}).has_value());
  ASSERT_TRUE(wf.start(0).has_value());
  auto out = wf.fail(0, "bad parameters", /*final=*/true);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->state, StepState::failed);
  EXPECT_EQ(wf.attempts(0), 1u);
  EXPECT_EQ(wf.state(1), StepState::skipped);
  EXPECT_EQ(wf.state(), WorkflowState::failed);
}

TEST(Workflow, RetryThenSuccessReleasesDependents) {
  Workflow wf("w", FailurePolicy::fail_workflow);
  StepSpec flaky = step("flaky");
  flaky.max_attempts = 2;
  ASSERT_TRUE(wf.add_steps(std::vector{flaky, step("after", {"flaky"})}).has_value());
  ASSERT_TRUE(wf.start(0).has_value());
  ASSERT_TRUE(wf.fail(0, "once").has_value());
  ASSERT_TRUE(wf.retry(0).has_value());
  run_ok(wf, "flaky");
  EXPECT_EQ(wf.attempts(0), 2u);
  EXPECT_EQ(wf.state(1), StepState::ready);
}

// root → left → left2;  root → right;  lone.   "left" fails.
struct PolicyGraph {
  Workflow wf;
  explicit PolicyGraph(FailurePolicy p, std::optional<FailurePolicy> left_override = std::nullopt)
      : wf("w", p) {
    StepSpec left = step("left", {"root"});
    left.failure_policy = left_override;
    EXPECT_TRUE(wf.add_steps(std::vector{step("root"), left, step("left2", {"left"}), step("right", {"root"}),
                                         step("lone"), step("join", {"left2", "right"})})
                    .has_value());
    run_ok(wf, "root");
    EXPECT_TRUE(wf.start(idx(wf, "left")).has_value());
    EXPECT_TRUE(wf.start(idx(wf, "right")).has_value());
  }
};

TEST(Workflow, FailWorkflowSkipsDependentsAndCancelsTheRest) {
  PolicyGraph g(FailurePolicy::fail_workflow);
  Workflow& wf = g.wf;
  auto out = wf.fail(idx(wf, "left"), "crash");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->state, StepState::failed);
  EXPECT_THAT(out->cancelled_running, ElementsAre(idx(wf, "right")));
  EXPECT_EQ(wf.state(idx(wf, "left2")), StepState::skipped);
  EXPECT_EQ(wf.state(idx(wf, "join")), StepState::skipped);
  EXPECT_EQ(wf.state(idx(wf, "right")), StepState::cancelled);
  EXPECT_EQ(wf.state(idx(wf, "lone")), StepState::cancelled);
  EXPECT_EQ(wf.ready_count(), 0u);
  EXPECT_EQ(wf.state(), WorkflowState::failed);
  // The cancelled step's late report is refused, and nothing can be added.
  EXPECT_THAT(wf.succeed(idx(wf, "right")).error().message(), HasSubstr("cancelled → succeeded"));
  EXPECT_THAT(wf.add_steps(std::vector{step("more")}).error().message(), HasSubstr("has failed"));
}

TEST(Workflow, ContinueIndependentLetsUnrelatedBranchesFinish) {
  PolicyGraph g(FailurePolicy::continue_independent);
  Workflow& wf = g.wf;
  auto out = wf.fail(idx(wf, "left"), "crash");
  ASSERT_TRUE(out.has_value());
  EXPECT_TRUE(out->cancelled_running.empty());
  EXPECT_EQ(wf.state(idx(wf, "left2")), StepState::skipped);
  EXPECT_EQ(wf.state(idx(wf, "join")), StepState::skipped);
  EXPECT_EQ(wf.state(idx(wf, "right")), StepState::running);
  EXPECT_EQ(wf.state(idx(wf, "lone")), StepState::ready);
  EXPECT_EQ(wf.state(), WorkflowState::running);
  ASSERT_TRUE(wf.succeed(idx(wf, "right")).has_value());
  EXPECT_EQ(wf.state(idx(wf, "join")), StepState::skipped) << "join stays skipped when its other input succeeds";
  run_ok(wf, "lone");
  EXPECT_EQ(wf.state(), WorkflowState::failed);
}

TEST(Workflow, PerStepOverrideWinsOverTheWorkflowPolicy) {
  PolicyGraph optional_step(FailurePolicy::fail_workflow, FailurePolicy::continue_independent);
  ASSERT_TRUE(optional_step.wf.fail(idx(optional_step.wf, "left"), "x").has_value());
  EXPECT_EQ(optional_step.wf.state(idx(optional_step.wf, "lone")), StepState::ready);

  PolicyGraph critical_step(FailurePolicy::continue_independent, FailurePolicy::fail_workflow);
  ASSERT_TRUE(critical_step.wf.fail(idx(critical_step.wf, "left"), "x").has_value());
  EXPECT_EQ(critical_step.wf.state(idx(critical_step.wf, "lone")), StepState::cancelled);
  EXPECT_EQ(critical_step.wf.state(), WorkflowState::failed);
}

TEST(Workflow, CancellingAStepCancelsItsDependentsOnly) {
  Workflow wf("w", FailurePolicy::fail_workflow);
  ASSERT_TRUE(wf.add_steps(std::vector{step("a"), step("b", {"a"}), step("c", {"b"}), step("x")}).has_value());
  ASSERT_TRUE(wf.cancel_step(idx(wf, "a")).has_value());
  EXPECT_EQ(wf.state(idx(wf, "b")), StepState::cancelled);
  EXPECT_EQ(wf.state(idx(wf, "c")), StepState::cancelled);
  EXPECT_EQ(wf.state(idx(wf, "x")), StepState::ready);
  EXPECT_THAT(ready_ids(wf), ElementsAre("x"));
  // A step added on top of a cancelled one is cancelled at once.
  ASSERT_TRUE(wf.add_steps(std::vector{step("late", {"c"})}).has_value());
  EXPECT_EQ(wf.state(idx(wf, "late")), StepState::cancelled);
  run_ok(wf, "x");
  EXPECT_EQ(wf.state(), WorkflowState::cancelled);
}

TEST(Workflow, CancellingTheWorkflowReturnsRunningSteps) {
  Workflow wf("w", FailurePolicy::continue_independent);
  ASSERT_TRUE(wf.add_steps(std::vector{step("a"), step("b"), step("c", {"a"})}).has_value());
  ASSERT_TRUE(wf.start(idx(wf, "a")).has_value());
  auto running = wf.cancel();
  ASSERT_TRUE(running.has_value());
  EXPECT_THAT(*running, UnorderedElementsAre(idx(wf, "a")));
  for (StepIndex s = 0; s < wf.size(); ++s) EXPECT_EQ(wf.state(s), StepState::cancelled);
  EXPECT_EQ(wf.state(), WorkflowState::cancelled);
  EXPECT_FALSE(wf.cancel().has_value());
  EXPECT_THAT(wf.add_steps(std::vector{step("d")}).error().message(), HasSubstr("been cancelled"));
}

TEST(Workflow, StepOnAFailedInputIsSkippedWhenAdded) {
  Workflow wf("w", FailurePolicy::continue_independent);
  ASSERT_TRUE(wf.add_steps(std::vector{step("a"), step("b")}).has_value());
  ASSERT_TRUE(wf.start(0).has_value());
  ASSERT_TRUE(wf.fail(0, "x").has_value());
  ASSERT_TRUE(wf.add_steps(std::vector{step("c", {"a", "b"}), step("d", {"c"})}).has_value());
  EXPECT_EQ(wf.state(idx(wf, "c")), StepState::skipped);
  EXPECT_EQ(wf.skip_reason(idx(wf, "d")), SkipReason::upstream_failed);
}

}  // namespace
}  // namespace symphony::pit::dag
