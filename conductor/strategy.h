// The Conductor's decisions, behind one interface: how many ready steps to
// start now, which extension runs a step, and how long to wait before a
// retry. The heuristic strategies here (sequential, parallel) are the first
// implementations; a learned policy (PPO, LibTorch) implements the same
// interface next and sees the same observations.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "conductor/workflow_file.h"

namespace symphony::conductor {

// A ready step, as a strategy sees it.
struct StepView {
  std::string run;
  std::string step;
  std::string capability;
  double critical_path = 0;  // longest estimated path to a sink, own cost included
  std::uint32_t attempt = 1; // the attempt about to start
};

// One extension that provides the step's capability.
struct CandidateView {
  std::string extension;  // id
  std::string version;
  bool breaker_open = false;        // the circuit breaker refuses it now
  std::uint32_t recent_failures = 0;  // consecutive infrastructure failures
  std::uint32_t in_flight = 0;        // steps it is running now
  bool failed_this_step = false;      // an earlier attempt of this step failed on it
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string_view name() const = 0;
  // How many more steps may start now: `running` are running, `ready` are
  // waiting, at most `limit` may run at once.
  virtual std::size_t admit(std::size_t running, std::size_t ready, std::size_t limit) = 0;
  // Index into `candidates` (never empty) of the provider to run `step`;
  // the Conductor refuses an open breaker itself, so a strategy may return
  // one only when every candidate is open.
  virtual std::size_t choose_provider(const StepView& step, std::span<const CandidateView> candidates) = 0;
  // The wait before the next attempt after `failure` ended attempt `attempt`.
  virtual std::chrono::milliseconds backoff(const RetryPolicy& policy, std::uint32_t attempt,
                                            FailureClass failure) = 0;
};

// One step at a time, in critical-path order; the first healthy provider.
std::unique_ptr<Strategy> make_sequential_strategy(std::uint64_t seed = std::random_device{}());
// As many steps as the limit allows, critical path first; providers chosen
// to spread load and to move a retried step away from where it failed.
std::unique_ptr<Strategy> make_parallel_strategy(std::uint64_t seed = std::random_device{}());
// "sequential" or "parallel"; anything else is an error listing both.
Result<std::unique_ptr<Strategy>> make_strategy(std::string_view name);

}  // namespace symphony::conductor
