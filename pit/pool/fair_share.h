// Weighted fair shares between priority classes: deficit round robin
// (Shreedhar & Varghese) with a cost of one per grant. Each round a class
// with waiters earns its weight in credit and is served while it has credit,
// so under contention grants split in the ratio of the weights and every
// class with weight >= 1 is served at least once per round: none starves.
// Not thread-safe: the pool drives it under its lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace symphony::pit::pool {

class DeficitRoundRobin {
 public:
  // One weight (>= 1) per class, in class order.
  explicit DeficitRoundRobin(std::vector<std::uint32_t> weights);

  // The class to serve next given how many waiters each class has
  // (`backlog.size()` == number of classes, at least one non-zero), and
  // charges it one grant.
  std::size_t next(std::span<const std::size_t> backlog);

 private:
  std::vector<std::uint32_t> weights_;
  std::vector<std::int64_t> deficit_;
  std::size_t current_ = 0;
};

}  // namespace symphony::pit::pool
