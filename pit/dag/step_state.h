// The per-step state machine of the DAG tracker: eight states and the one
// table of legal transitions. Every state change in the tracker goes through
// transition_allowed(), so the table below is the whole truth about what may
// follow what (docs/pit/dag.md draws it).
#pragma once

#include <cstdint>
#include <string_view>

namespace symphony::pit::dag {

enum class StepState : std::uint8_t {
  pending,    // waiting for inputs
  ready,      // every input succeeded; may be started
  running,    // an attempt is under way
  succeeded,  // terminal: outputs recorded
  failed,     // terminal: last attempt failed, no attempts left
  retrying,   // an attempt failed, attempts remain; the Conductor backs off, then retry()
  skipped,    // terminal: memoized (cached outputs) or an upstream step failed
  cancelled,  // terminal: cancelled, or an upstream step was cancelled
};
inline constexpr int kStepStateCount = 8;

// Why a step is skipped; `none` for every other state.
enum class SkipReason : std::uint8_t { none, memoized, upstream_failed };

std::string_view to_string(StepState state);
std::string_view to_string(SkipReason reason);

// True when the tracker may move a step from `from` to `to`.
//   pending  → ready | skipped | cancelled
//   ready    → running | skipped (memoized) | cancelled
//   running  → succeeded | failed | retrying | cancelled
//   retrying → ready | cancelled
//   succeeded, failed, skipped, cancelled: terminal
constexpr bool transition_allowed(StepState from, StepState to) {
  using S = StepState;
  switch (from) {
    case S::pending: return to == S::ready || to == S::skipped || to == S::cancelled;
    case S::ready: return to == S::running || to == S::skipped || to == S::cancelled;
    case S::running:
      return to == S::succeeded || to == S::failed || to == S::retrying || to == S::cancelled;
    case S::retrying: return to == S::ready || to == S::cancelled;
    case S::succeeded:
    case S::failed:
    case S::skipped:
    case S::cancelled: return false;
  }
  return false;
}

constexpr bool is_terminal(StepState s) {
  return s == StepState::succeeded || s == StepState::failed || s == StepState::skipped ||
         s == StepState::cancelled;
}

}  // namespace symphony::pit::dag
