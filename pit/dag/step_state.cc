// Names of step states and skip reasons, as they appear in errors, the
// journal's diagnostics and the daemon's status output.
#include "pit/dag/step_state.h"

namespace symphony::pit::dag {

std::string_view to_string(StepState state) {
  switch (state) {
    case StepState::pending: return "pending";
    case StepState::ready: return "ready";
    case StepState::running: return "running";
    case StepState::succeeded: return "succeeded";
    case StepState::failed: return "failed";
    case StepState::retrying: return "retrying";
    case StepState::skipped: return "skipped";
    case StepState::cancelled: return "cancelled";
  }
  return "invalid";
}

std::string_view to_string(SkipReason reason) {
  switch (reason) {
    case SkipReason::none: return "none";
    case SkipReason::memoized: return "memoized";
    case SkipReason::upstream_failed: return "upstream failed";
  }
  return "invalid";
}

}  // namespace symphony::pit::dag
