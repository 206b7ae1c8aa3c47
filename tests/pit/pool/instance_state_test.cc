// The instance state table, checked pair by pair against the documented one.
#include "pit/pool/instance_state.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <utility>

namespace symphony::pit::pool {
namespace {

using S = InstanceState;

// docs/pit/pool.md, "State machine".
const std::set<std::pair<S, S>> kLegal = {
    {S::unloaded, S::loading},  {S::loading, S::ready},     {S::loading, S::failed},
    {S::ready, S::in_use},      {S::ready, S::unloading},   {S::ready, S::failed},
    {S::in_use, S::in_use},     {S::in_use, S::cooling},    {S::in_use, S::failed},
    {S::cooling, S::in_use},    {S::cooling, S::unloading}, {S::cooling, S::failed},
    {S::unloading, S::unloaded}, {S::unloading, S::failed}, {S::failed, S::loading},
    {S::failed, S::unloading},
};

TEST(InstanceState, EveryPairMatchesTheTable) {
  int illegal = 0;
  for (S from : kAllInstanceStates) {
    for (S to : kAllInstanceStates) {
      const bool legal = kLegal.contains({from, to});
      SCOPED_TRACE(std::string(to_string(from)) + " -> " + std::string(to_string(to)));
      EXPECT_EQ(is_legal_transition(from, to), legal);
      auto r = check_transition("llama#0", from, to);
      EXPECT_EQ(r.has_value(), legal);
      if (!legal) {
        ++illegal;
        EXPECT_EQ(r.error().code(), EINVAL);
        EXPECT_EQ(r.error().message(), "instance 'llama#0': illegal transition " +
                                           std::string(to_string(from)) + " -> " + std::string(to_string(to)));
      }
    }
  }
  EXPECT_EQ(illegal, 49 - static_cast<int>(kLegal.size()));
}

TEST(InstanceState, NamesAreDistinct) {
  std::set<std::string_view> names;
  for (S s : kAllInstanceStates) names.insert(to_string(s));
  EXPECT_EQ(names.size(), kInstanceStateCount);
}

}  // namespace
}  // namespace symphony::pit::pool
