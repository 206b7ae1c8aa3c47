// First-order transition model with exponential decay (transition_model.h).
#include "pit/pool/transition_model.h"

#include <algorithm>

namespace symphony::pit::pool {

namespace {
// Counts below this are forgotten, which keeps rows short.
constexpr double kForget = 1e-3;
}  // namespace

void TransitionModel::observe(std::uint32_t from, std::uint32_t to) {
  Row& row = rows_[from];
  row.total = row.total * decay_ + 1.0;
  bool seen = false;
  for (auto& [model, count] : row.next) {
    count *= decay_;
    if (model == to) {
      count += 1.0;
      seen = true;
    }
  }
  if (!seen) row.next.emplace_back(to, 1.0);
  std::erase_if(row.next, [](const auto& e) { return e.second < kForget; });
}

double TransitionModel::probability(std::uint32_t from, std::uint32_t to) const {
  auto it = rows_.find(from);
  if (it == rows_.end() || it->second.total <= 0) return 0;
  for (const auto& [model, count] : it->second.next)
    if (model == to) return count / it->second.total;
  return 0;
}

std::vector<Prediction> TransitionModel::predict(std::uint32_t from, double min_p,
                                                 std::size_t max) const {
  std::vector<Prediction> out;
  auto it = rows_.find(from);
  if (it == rows_.end() || it->second.total <= 0) return out;
  for (const auto& [model, count] : it->second.next) {
    double p = count / it->second.total;
    if (p >= min_p) out.push_back({model, p});
  }
  std::sort(out.begin(), out.end(), [](const Prediction& a, const Prediction& b) {
    return a.probability != b.probability ? a.probability > b.probability : a.model < b.model;
  });
  if (out.size() > max) out.resize(max);
  return out;
}

}  // namespace symphony::pit::pool
