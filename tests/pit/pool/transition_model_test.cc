// The first-order transition model with decay.
#include "pit/pool/transition_model.h"

#include <gtest/gtest.h>

namespace symphony::pit::pool {
namespace {

TEST(TransitionModel, LearnsTheLikelySuccessor) {
  TransitionModel t(0.9);
  for (int i = 0; i < 10; ++i) {
    t.observe(1, 2);
    t.observe(2, 3);
  }
  t.observe(1, 7);
  auto p = t.predict(1, 0.3, 2);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].model, 2u);
  EXPECT_GT(p[0].probability, 0.8);
  EXPECT_DOUBLE_EQ(t.probability(9, 1), 0.0);
}

TEST(TransitionModel, DecayFollowsAChangedWorkflow) {
  TransitionModel t(0.8);
  for (int i = 0; i < 50; ++i) t.observe(1, 2);
  for (int i = 0; i < 10; ++i) t.observe(1, 3);
  auto p = t.predict(1, 0.0, 1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].model, 3u);
  EXPECT_LT(t.probability(1, 2), 0.15);
}

}  // namespace
}  // namespace symphony::pit::pool
