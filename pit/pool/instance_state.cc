// The instance state table (see instance_state.h and docs/pit/pool.md).
#include "pit/pool/instance_state.h"

#include <string>

namespace symphony::pit::pool {

std::string_view to_string(InstanceState state) {
  switch (state) {
    case InstanceState::unloaded: return "unloaded";
    case InstanceState::loading: return "loading";
    case InstanceState::ready: return "ready";
    case InstanceState::in_use: return "in_use";
    case InstanceState::cooling: return "cooling";
    case InstanceState::unloading: return "unloading";
    case InstanceState::failed: return "failed";
  }
  return "unknown";
}

bool is_legal_transition(InstanceState from, InstanceState to) {
  using S = InstanceState;
  switch (from) {
    case S::unloaded: return to == S::loading;
    case S::loading: return to == S::ready || to == S::failed;
    // A ready instance nobody claimed may be evicted (a wrong prewarm must
    // not hold memory for ever), so ready → unloading is legal.
    case S::ready: return to == S::in_use || to == S::unloading || to == S::failed;
    case S::in_use: return to == S::in_use || to == S::cooling || to == S::failed;
    case S::cooling: return to == S::in_use || to == S::unloading || to == S::failed;
    case S::unloading: return to == S::unloaded || to == S::failed;
    // A failed load left nothing behind and is retried in place; a failed
    // health check left a broken instance that is unloaded first.
    case S::failed: return to == S::loading || to == S::unloading;
  }
  return false;
}

Result<void> check_transition(std::string_view instance, InstanceState from, InstanceState to) {
  if (is_legal_transition(from, to)) return ok();
  return Error::invalid("instance '" + std::string(instance) + "': illegal transition " +
                        std::string(to_string(from)) + " -> " + std::string(to_string(to)));
}

}  // namespace symphony::pit::pool
