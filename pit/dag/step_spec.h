// What the Conductor tells the DAG tracker about a step: its id, the steps
// whose outputs it consumes, its estimated cost (for critical-path priority),
// its retry budget, an optional failure-policy override and, when the step is
// deterministic, what its memo key is made of. Plain data, journaled as is.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pit/digest.h"

namespace symphony::pit::dag {

// What a step's final failure does to the rest of its workflow.
enum class FailurePolicy : std::uint8_t {
  // Dependents are skipped (upstream failed), every other unfinished step is
  // cancelled, the workflow fails at once.
  fail_workflow,
  // Dependents are skipped (upstream failed); independent branches go on; the
  // workflow ends failed once nothing is left to run.
  continue_independent,
};

// The parts of a memo key that the spec knows up front. The tracker adds the
// digests of the upstream steps' outputs when the step becomes ready.
struct MemoSpec {
  std::string extension_id;
  std::string extension_version;
  std::string capability;
  std::string canonical_params;
  std::vector<Digest> external_inputs;  // artifacts not produced in this workflow
  friend bool operator==(const MemoSpec&, const MemoSpec&) = default;
};

struct StepSpec {
  std::string id;                   // unique within the workflow, non-empty
  std::vector<std::string> inputs;  // ids of the steps it depends on (data edges)
  double cost = 1.0;                // estimated cost, finite and ≥ 0
  std::uint32_t max_attempts = 1;   // ≥ 1; 1 = no retry
  std::optional<FailurePolicy> failure_policy;  // overrides the workflow's
  std::optional<MemoSpec> memo;                 // absent: never memoized
  friend bool operator==(const StepSpec&, const StepSpec&) = default;
};

}  // namespace symphony::pit::dag
