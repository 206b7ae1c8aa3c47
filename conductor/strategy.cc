// The heuristic strategies (strategy.h).
#include "conductor/strategy.h"

#include <algorithm>

namespace symphony::conductor {
namespace {

// The preference order both strategies share: a provider whose breaker is
// closed, then one this step has not failed on (reroute), then fewer recent
// failures; `spread` adds fewer steps in flight. Ties keep the registry's
// order (newest version of the highest-precedence install first).
std::size_t pick(std::span<const CandidateView> c, bool spread) {
  std::size_t best = 0;
  auto key = [&](const CandidateView& v) {
    return std::tuple(v.breaker_open, v.failed_this_step, v.recent_failures, spread ? v.in_flight : 0u);
  };
  for (std::size_t i = 1; i < c.size(); ++i) {
    if (key(c[i]) < key(c[best])) best = i;
  }
  return best;
}

class Heuristic : public Strategy {
 public:
  Heuristic(bool parallel, std::uint64_t seed) : parallel_(parallel), rng_(seed) {}
  std::string_view name() const override { return parallel_ ? "parallel" : "sequential"; }
  std::size_t admit(std::size_t running, std::size_t ready, std::size_t limit) override {
    if (!parallel_) return running == 0 && ready > 0 ? 1 : 0;
    return running >= limit ? 0 : std::min(ready, limit - running);
  }
  std::size_t choose_provider(const StepView&, std::span<const CandidateView> candidates) override {
    return pick(candidates, parallel_);
  }
  std::chrono::milliseconds backoff(const RetryPolicy& policy, std::uint32_t attempt, FailureClass) override {
    return policy.delay(attempt, std::uniform_real_distribution<double>(0.0, 1.0)(rng_));
  }

 private:
  bool parallel_;
  std::mt19937_64 rng_;
};

}  // namespace

std::unique_ptr<Strategy> make_sequential_strategy(std::uint64_t seed) {
  return std::make_unique<Heuristic>(false, seed);
}

std::unique_ptr<Strategy> make_parallel_strategy(std::uint64_t seed) {
  return std::make_unique<Heuristic>(true, seed);
}

Result<std::unique_ptr<Strategy>> make_strategy(std::string_view name) {
  if (name == "sequential") return make_sequential_strategy();
  if (name == "parallel") return make_parallel_strategy();
  return Error::invalid("unknown strategy '" + std::string(name) + "' (known: parallel, sequential)");
}

}  // namespace symphony::conductor
