// Memo keys (a fixed digest pins the version-1 encoding) and memoization in
// a workflow: hits skip steps with the cached outputs and release their
// dependents, misses run and fill the cache.
#include "pit/dag/memo.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pit/dag/workflow.h"

namespace symphony::pit::dag {
namespace {

MemoKeyInput sample() {
  return MemoKeyInput{
      .extension_id = "org.example.resize",
      .extension_version = "1.2.0",
      .capability = "image.resize",
      .canonical_params = std::string("\x82\xa1h\x10\xa1w\x20", 7),
      .input_digests = {Digest::of(std::string_view("input-one")), Digest::of(std::string_view("input-two"))},
  };
}

// If this test fails, the encoding changed and every cached result in the
// field would silently miss: bump the domain string ("-v2") and say so in
// docs/pit/dag.md instead of editing the expected value.
TEST(MemoKey, IsStableForAFixedInput) {
  EXPECT_EQ(memo_key(sample()).hex(), "d4230c197db79000d947f4072b385b4e663f6b9e942c1da2d135ea7ac8bf7fc4");
  EXPECT_EQ(memo_key(MemoKeyInput{}).hex(), "ad0e70f4114fe89022a0929803bc203c771a7bee85fe63b2ea2df1bf917bccfd");
}

TEST(MemoKey, EveryFieldCounts) {
  const Digest base = memo_key(sample());
  auto changed = [&](auto mutate) {
    MemoKeyInput in = sample();
    mutate(in);
    return memo_key(in);
  };
  EXPECT_NE(base, changed([](MemoKeyInput& in) { in.extension_id += "x"; }));
  EXPECT_NE(base, changed([](MemoKeyInput& in) { in.extension_version = "1.2.1"; }));
  EXPECT_NE(base, changed([](MemoKeyInput& in) { in.capability = "image.crop"; }));
  EXPECT_NE(base, changed([](MemoKeyInput& in) { in.canonical_params += '\0'; }));
  EXPECT_NE(base, changed([](MemoKeyInput& in) { std::swap(in.input_digests[0], in.input_digests[1]); }));
  EXPECT_NE(base, changed([](MemoKeyInput& in) { in.input_digests.pop_back(); }));
}

TEST(MemoKey, LengthPrefixesKeepFieldsApart) {
  MemoKeyInput a{.extension_id = "ab", .extension_version = "c"};
  MemoKeyInput b{.extension_id = "a", .extension_version = "bc"};
  EXPECT_NE(memo_key(a), memo_key(b));
}

OutputRef out(std::string name, std::string_view content) {
  return OutputRef{std::move(name), 1, Digest::of(content)};
}

StepSpec memo_step(std::string id, std::vector<std::string> inputs, std::string params) {
  return StepSpec{.id = std::move(id),
                  .inputs = std::move(inputs),
                  .memo = MemoSpec{.extension_id = "org.example.x",
                                   .extension_version = "1",
                                   .capability = "run",
                                   .canonical_params = std::move(params),
                                   .external_inputs = {Digest::of(std::string_view("dataset"))}}};
}

std::vector<StepSpec> chain() {
  return {memo_step("a", {}, "p1"), memo_step("b", {"a"}, "p2"), StepSpec{.id = "c", .inputs = {"b"}}};
}

TEST(Memoization, MissRunsAndStoresThenAnIdenticalWorkflowHitsTheWholeChain) {
  InMemoryMemoCache cache;
  Workflow first("w1", FailurePolicy::fail_workflow, &cache);
  ASSERT_TRUE(first.add_steps(chain()).has_value());
  EXPECT_EQ(first.state(0), StepState::ready) << "a miss leaves the step ready";
  ASSERT_TRUE(first.start(0).has_value());
  ASSERT_TRUE(first.succeed(0, {out("a-out", "A")}).has_value());
  ASSERT_TRUE(first.start(1).has_value());
  ASSERT_TRUE(first.succeed(1, {out("b-out", "B")}).has_value());
  EXPECT_EQ(cache.size(), 2u);

  Workflow second("w2", FailurePolicy::fail_workflow, &cache);
  ASSERT_TRUE(second.add_steps(chain()).has_value());
  EXPECT_EQ(second.state(0), StepState::skipped);
  EXPECT_EQ(second.skip_reason(0), SkipReason::memoized);
  EXPECT_EQ(second.outputs(0), std::vector{out("a-out", "A")});
  EXPECT_EQ(second.state(1), StepState::skipped);
  EXPECT_EQ(second.skip_reason(1), SkipReason::memoized);
  EXPECT_EQ(second.outputs(1), std::vector{out("b-out", "B")});
  EXPECT_EQ(second.state(2), StepState::ready) << "dependents of memoized steps proceed";
  EXPECT_EQ(second.peek_ready(), 2u);
  ASSERT_TRUE(second.start(2).has_value());
  ASSERT_TRUE(second.succeed(2).has_value());
  EXPECT_EQ(second.state(), WorkflowState::succeeded);
}

TEST(Memoization, DifferentUpstreamOutputMisses) {
  InMemoryMemoCache cache;
  Workflow first("w1", FailurePolicy::fail_workflow, &cache);
  ASSERT_TRUE(first.add_steps(chain()).has_value());
  ASSERT_TRUE(first.start(0).has_value());
  ASSERT_TRUE(first.succeed(0, {out("a-out", "A")}).has_value());
  ASSERT_TRUE(first.start(1).has_value());
  ASSERT_TRUE(first.succeed(1, {out("b-out", "B")}).has_value());

  // "a" is memoized from the cache, but a step whose params differ misses.
  Workflow second("w2", FailurePolicy::fail_workflow, &cache);
  auto specs = chain();
  specs[0].memo->canonical_params = "other";
  ASSERT_TRUE(second.add_steps(specs).has_value());
  EXPECT_EQ(second.state(0), StepState::ready);
  ASSERT_TRUE(second.start(0).has_value());
  ASSERT_TRUE(second.succeed(0, {out("a-out", "A-prime")}).has_value());
  EXPECT_EQ(second.state(1), StepState::ready) << "b's input digest changed: a miss";
}

TEST(Memoization, MemoKeyOfNeedsSatisfiedInputs) {
  Workflow wf("w", FailurePolicy::fail_workflow);
  ASSERT_TRUE(wf.add_steps(chain()).has_value());
  EXPECT_TRUE(wf.memo_key_of(0).has_value());
  EXPECT_FALSE(wf.memo_key_of(1).has_value());
  EXPECT_FALSE(wf.memo_key_of(2).has_value()) << "no MemoSpec";
  ASSERT_TRUE(wf.start(0).has_value());
  ASSERT_TRUE(wf.succeed(0, {out("a-out", "A")}).has_value());
  MemoKeyInput expected{"org.example.x", "1", "run", "p2",
                        {Digest::of(std::string_view("A")), Digest::of(std::string_view("dataset"))}};
  EXPECT_EQ(wf.memo_key_of(1), memo_key(expected));
}

}  // namespace
}  // namespace symphony::pit::dag
