// The arbiter: who may use a GPU, a workspace subtree or a named lock right
// now. Extensions (claimants) ask for shared or exclusive claims with a
// priority; each request is granted at once, queued, or granted by
// preempting lower-priority holders, as the resource kind's policy says.
// Waiters age so none starves, and the wait-for graph is checked for cycles
// so none waits forever on a deadlock. See docs/pit/arbiter.md.
//
// Thread-safe: every method may be called from any thread. One mutex guards
// the state; the uncontended claim/release path takes it once, allocates
// nothing and costs tens of nanoseconds. Callbacks (grant, preemption) run
// on the thread whose call caused them, after the mutex is released, so they
// may call back into the arbiter.
#pragma once

#include <array>
#include <chrono>
#include <compare>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "pit/arbiter/resource.h"

namespace symphony::pit {

// An extension instance (the daemon's id for it). Strong type so it cannot
// be mixed up with a priority or a claim id.
struct ClaimantId {
  std::uint64_t value = 0;
  friend auto operator<=>(const ClaimantId&, const ClaimantId&) = default;
};

// Larger is more important. Ordinary steps use 0; the daemon maps workflow
// priorities onto this range.
struct Priority {
  std::int32_t value = 0;
  friend auto operator<=>(const Priority&, const Priority&) = default;
};

// An interned resource: a dense index into the arbiter's table. Valid only
// for the arbiter that returned it.
struct ResourceKey {
  std::uint32_t index = 0;
  friend auto operator<=>(const ResourceKey&, const ResourceKey&) = default;
};

// A granted claim (slot + generation, so a stale id is recognized).
struct ClaimId {
  std::uint64_t value = 0;
  friend auto operator<=>(const ClaimId&, const ClaimId&) = default;
};

// A queued request.
struct RequestId {
  std::uint64_t value = 0;
  friend auto operator<=>(const RequestId&, const RequestId&) = default;
};

enum class ClaimMode : std::uint8_t { shared, exclusive };

struct ClaimItem {
  ResourceKey resource;
  ClaimMode mode = ClaimMode::exclusive;
};

// One request: up to kMaxItems resources, granted all together or not at
// all (so a claimant never holds half of what it needs while waiting for the
// rest — the classic hold-and-wait deadlock cannot form within one request).
inline constexpr std::size_t kMaxClaimItems = 8;

struct ClaimRequest {
  ClaimantId claimant;
  Priority priority;
  std::span<const ClaimItem> items;  // read during the call only
  // How long the request may wait in the queue. Zero: never queue (an
  // ungrantable request fails at once with EAGAIN). max(): no timeout.
  std::chrono::milliseconds wait_timeout = std::chrono::milliseconds::max();
};

struct ClaimGrant {
  ClaimId claim;
  RequestId request;        // 0 when granted at once
  std::uint32_t preempted;  // claims revoked to make room
};

// Called exactly once for a queued request: with the grant, or with the
// Error that ended the wait (ETIMEDOUT, ECANCELED, EDEADLK).
using GrantCallback = std::function<void(Result<ClaimGrant>)>;

enum class ClaimStatus : std::uint8_t { granted, queued };

struct ClaimOutcome {
  ClaimStatus status = ClaimStatus::granted;
  ClaimId claim;            // when granted
  RequestId request;        // when queued
  std::uint32_t preempted = 0;
};

// Told to the preemption handler when a holder's claim is revoked. By the
// time the handler runs, the claim is gone (the resources are already
// granted to `preemptor`); the contract is that the daemon cancels the
// holder's step, which must stop using the resources. Releasing the revoked
// claim id afterwards is harmless (ENOENT).
struct Preemption {
  ClaimId claim;
  ClaimantId holder;
  Priority holder_priority;
  ClaimantId preemptor;
  Priority preemptor_priority;
  std::string resource;  // the first contested resource, canonical name
};
using PreemptionHandler = std::function<void(const Preemption&)>;

// Per resource kind. A new request may preempt the holders that block it
// only when `preempt` is set and every such holder's priority is at least
// `preempt_gap` below the request's.
struct KindPolicy {
  bool preempt = false;
  std::int32_t preempt_gap = 10;
};

// A clock seam so tests can drive aging and timeouts deterministically.
using SteadyClock = std::function<std::chrono::steady_clock::time_point()>;

struct ArbiterOptions {
  std::array<KindPolicy, kResourceKindCount> policy{};  // indexed by ResourceKind
  // Aging: a waiter's effective priority grows by `aging_step` for each
  // whole `aging_interval` it has waited. Step 0 disables aging.
  std::chrono::milliseconds aging_interval{1000};
  std::int32_t aging_step = 1;
  PreemptionHandler on_preempted;  // may be empty (holders just lose the claim)
  SteadyClock clock;               // empty: std::chrono::steady_clock::now
  std::size_t initial_claims = 1024;  // slots reserved up front
};

struct ArbiterStats {
  std::uint64_t claims_held = 0;
  std::array<std::uint64_t, kResourceKindCount> held_by_kind{};    // resource holds
  std::array<std::uint64_t, kResourceKindCount> queued_by_kind{};  // waiting items
  std::uint64_t requests_queued = 0;  // now waiting
  std::uint64_t granted_immediately = 0;
  std::uint64_t granted_after_wait = 0;
  std::uint64_t preemptions = 0;      // claims revoked
  std::uint64_t deadlocks_resolved = 0;
  std::uint64_t timeouts = 0;
  std::uint64_t cancellations = 0;
};

class Arbiter {
 public:
  explicit Arbiter(ArbiterOptions options = {});
  ~Arbiter();
  Arbiter(const Arbiter&) = delete;
  Arbiter& operator=(const Arbiter&) = delete;

  // Parses and interns a resource name; the same canonical name always
  // yields the same key. Errors (EINVAL) say what is wrong with the name.
  Result<ResourceKey> intern(std::string_view name);
  // The canonical name of an interned key ("" for an unknown key).
  std::string name_of(ResourceKey key) const;

  // Asks for the request's resources. Returns granted (possibly after
  // preempting holders, whose claims are revoked and reported to the
  // preemption handler) or queued (then `on_grant` is called exactly once,
  // later). Errors, after which `on_grant` is never called:
  //   EINVAL   no items, more than kMaxClaimItems, an unknown key, or two
  //            items that overlap
  //   EAGAIN   not grantable now and wait_timeout is zero
  //   EDEADLK  queuing it would close a wait-for cycle and this request is
  //            the victim; the message names the cycle
  Result<ClaimOutcome> claim(const ClaimRequest& request, GrantCallback on_grant = {});

  // Releases a granted claim. ENOENT for an unknown or already released
  // (or revoked) id. Waiters that fit are granted before this returns.
  Result<void> release(ClaimId claim);

  // Withdraws a queued request; its callback gets ECANCELED. ENOENT when it
  // is no longer queued (granted, timed out, aborted, or unknown).
  Result<void> cancel(RequestId request);

  // Releases every claim and cancels every queued request of `claimant`
  // (the extension died). Returns how many claims were released.
  std::size_t release_all(ClaimantId claimant);

  // Housekeeping the daemon runs from a timer at next_wakeup(): expires
  // waits past their timeout (ETIMEDOUT), re-orders waiters by aged priority
  // and grants what now fits, and re-checks the wait-for graph (aging can
  // reorder waiters and so create a cycle among them).
  void poll();
  // When poll() next has something to do; time_point::max() when nothing
  // waits.
  std::chrono::steady_clock::time_point next_wakeup() const;

  ArbiterStats stats() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace symphony::pit
