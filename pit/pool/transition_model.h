// What the pool learns from allocation history: a first-order Markov model
// ("after model A, model B is allocated next") whose counts decay
// exponentially, so a workflow that changes shape is re-learned within a few
// dozen steps. Not thread-safe: the pool feeds it under its lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

namespace symphony::pit::pool {

struct Prediction {
  std::uint32_t model = 0;
  double probability = 0;
};

class TransitionModel {
 public:
  // `decay` in (0, 1]: each observation from A multiplies A's old counts by
  // it, so one transition seen n steps ago weighs decay^n.
  explicit TransitionModel(double decay = 0.9) : decay_(decay) {}

  // Records that `to` followed `from` in one stream of allocations.
  void observe(std::uint32_t from, std::uint32_t to);
  // P(next == to | last == from); 0 when `from` was never seen.
  double probability(std::uint32_t from, std::uint32_t to) const;
  // Up to `max` likeliest successors of `from` with probability >= min_p,
  // best first.
  std::vector<Prediction> predict(std::uint32_t from, double min_p, std::size_t max) const;

 private:
  struct Row {
    std::vector<std::pair<std::uint32_t, double>> next;  // successor, decayed count
    double total = 0;
  };
  double decay_;
  std::unordered_map<std::uint32_t, Row> rows_;
};

}  // namespace symphony::pit::pool
