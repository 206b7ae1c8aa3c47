// The life of one model instance in the pool, and the one table that says
// which state changes are legal. Every slow-path change goes through
// check_transition(); the lock-free fast path only performs the legal
// ready/cooling/in_use moves by construction.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "base/result.h"

namespace symphony::pit::pool {

enum class InstanceState : std::uint8_t {
  unloaded,   // the slot holds nothing
  loading,    // the loader is bringing it up; memory is reserved
  ready,      // loaded and idle, not used since it was loaded (prewarmed, pinned)
  in_use,     // one or more leases hold it (reference counted)
  cooling,    // loaded and idle after use: the eviction candidates
  unloading,  // the loader is tearing it down; memory is being measured
  failed,     // load or health check failed; reloaded with backoff
};

inline constexpr std::size_t kInstanceStateCount = 7;
inline constexpr std::array<InstanceState, kInstanceStateCount> kAllInstanceStates = {
    InstanceState::unloaded, InstanceState::loading, InstanceState::ready, InstanceState::in_use,
    InstanceState::cooling,  InstanceState::unloading, InstanceState::failed};

std::string_view to_string(InstanceState state);

// True when `from` → `to` is in the table (docs/pit/pool.md). in_use → in_use
// is legal: it is a reference count change.
bool is_legal_transition(InstanceState from, InstanceState to);

// ok() for a legal change; otherwise an EINVAL Error naming the instance and
// both states: "instance 'llama#0': illegal transition cooling -> loading".
Result<void> check_transition(std::string_view instance, InstanceState from, InstanceState to);

}  // namespace symphony::pit::pool
