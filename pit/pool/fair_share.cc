// Deficit round robin over priority classes (fair_share.h).
#include "pit/pool/fair_share.h"

namespace symphony::pit::pool {

DeficitRoundRobin::DeficitRoundRobin(std::vector<std::uint32_t> weights)
    : weights_(std::move(weights)), deficit_(weights_.size(), 0) {}

std::size_t DeficitRoundRobin::next(std::span<const std::size_t> backlog) {
  // Terminates: some class has a backlog, and each visit to it adds >= 1.
  for (;;) {
    std::size_t c = current_;
    if (backlog[c] > 0 && deficit_[c] >= 1) {
      --deficit_[c];
      return c;
    }
    // An idle class keeps no credit (DRR): it cannot save up a burst.
    if (backlog[c] == 0) deficit_[c] = 0;
    current_ = (current_ + 1) % weights_.size();
    deficit_[current_] += weights_[current_];
  }
}

}  // namespace symphony::pit::pool
