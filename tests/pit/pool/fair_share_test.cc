// Deficit round robin between priority classes.
#include "pit/pool/fair_share.h"

#include <gtest/gtest.h>

#include <array>
#include <vector>

namespace symphony::pit::pool {
namespace {

TEST(DeficitRoundRobin, SplitsGrantsByWeightWhenAllAreBacklogged) {
  DeficitRoundRobin drr({4, 1});
  std::array<std::size_t, 2> backlog{1000, 1000};
  std::array<int, 2> served{};
  for (int i = 0; i < 500; ++i) ++served[drr.next(backlog)];
  EXPECT_EQ(served[0], 400);
  EXPECT_EQ(served[1], 100);
}

TEST(DeficitRoundRobin, LowClassIsServedEveryRound) {
  DeficitRoundRobin drr({100, 1});
  std::array<std::size_t, 2> backlog{1000, 1000};
  int since_low = 0, worst = 0;
  for (int i = 0; i < 1000; ++i) {
    if (drr.next(backlog) == 1) {
      worst = std::max(worst, since_low);
      since_low = 0;
    } else {
      ++since_low;
    }
  }
  EXPECT_LE(worst, 100);
}

TEST(DeficitRoundRobin, IdleClassSavesNoCredit) {
  DeficitRoundRobin drr({1, 1});
  std::array<std::size_t, 2> only_first{5, 0};
  for (int i = 0; i < 50; ++i) EXPECT_EQ(drr.next(only_first), 0u);
  // Class 1 arrives: it does not get a burst for the time it was idle.
  std::array<std::size_t, 2> both{5, 5};
  std::array<int, 2> served{};
  for (int i = 0; i < 10; ++i) ++served[drr.next(both)];
  EXPECT_EQ(served[0], 5);
  EXPECT_EQ(served[1], 5);
}

TEST(DeficitRoundRobin, SingleBackloggedClassTakesEverything) {
  DeficitRoundRobin drr({4, 2, 1});
  std::array<std::size_t, 3> backlog{0, 0, 3};
  for (int i = 0; i < 20; ++i) EXPECT_EQ(drr.next(backlog), 2u);
}

}  // namespace
}  // namespace symphony::pit::pool
