// The arbiter's engine. One mutex guards a dense resource table (indexed by
// ResourceKey, so the hot path never hashes a string), a slot table of
// granted claims with a free list (no allocation once warm), and the list of
// waiting requests. Everything that only contention needs — ordering
// waiters, finding holders, the wait-for graph — is computed on demand from
// those tables, on the slow path.
#include "pit/arbiter/arbiter.h"

#include <algorithm>
#include <limits>
#include <mutex>
#include <optional>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace symphony::pit {
namespace {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();

struct Resource {
  std::string name;
  ResourceKind kind = ResourceKind::lock;
  std::uint32_t parent = kNone;  // paths: the enclosing directory
  std::uint32_t depth = 0;       // paths: number of components
  // Holds on this node, and (paths) strictly beneath it: a path claim
  // checks its own node, its subtree counters and its ancestors' own
  // counters — O(depth), whatever the number of claims.
  std::uint32_t exclusive = 0;
  std::uint32_t shared = 0;
  std::uint32_t sub_exclusive = 0;
  std::uint32_t sub_shared = 0;
};

struct Items {
  std::array<ClaimItem, kMaxClaimItems> at{};
  std::uint8_t count = 0;
  const ClaimItem* begin() const { return at.data(); }
  const ClaimItem* end() const { return at.data() + count; }
};

// A granted claim.
struct Slot {
  std::uint32_t generation = 1;
  bool live = false;
  std::uint32_t next_free = kNone;
  ClaimantId claimant;
  Priority priority;
  std::uint64_t seq = 0;
  Items items;
};

struct Pending {
  RequestId id;
  ClaimantId claimant;
  Priority priority;
  std::uint64_t seq = 0;
  Items items;
  TimePoint enqueued;
  TimePoint deadline = TimePoint::max();
  GrantCallback callback;
};

// Callbacks collected under the lock and run after it is dropped.
struct Notices {
  std::vector<std::pair<GrantCallback, Result<ClaimGrant>>> grants;
  std::vector<Preemption> preemptions;
};

ClaimId make_claim_id(std::uint32_t index, std::uint32_t generation) {
  return ClaimId{(static_cast<std::uint64_t>(generation) << 32) | index};
}

std::string claimant_str(ClaimantId c) { return "claimant " + std::to_string(c.value); }

}  // namespace

struct Arbiter::State {
  explicit State(ArbiterOptions o) : options(std::move(o)) {
    slots.reserve(options.initial_claims);
    resources.reserve(64);
  }

  ArbiterOptions options;
  mutable std::mutex mu;
  std::vector<Resource> resources;
  std::unordered_map<std::string, std::uint32_t> by_name;
  std::vector<Slot> slots;
  std::uint32_t free_head = kNone;
  std::vector<std::unique_ptr<Pending>> pending;
  std::uint64_t next_seq = 1;
  std::uint64_t next_request = 1;
  ArbiterStats counters;

  TimePoint now() const { return options.clock ? options.clock() : Clock::now(); }

  // ---- conflicts ---------------------------------------------------------

  bool blocked_by_holders(const ClaimItem& item) const {
    const Resource& r = resources[item.resource.index];
    if (item.mode == ClaimMode::exclusive) {
      if ((r.exclusive | r.shared | r.sub_exclusive | r.sub_shared) != 0) return true;
      for (std::uint32_t p = r.parent; p != kNone; p = resources[p].parent)
        if ((resources[p].exclusive | resources[p].shared) != 0) return true;
    } else {
      if ((r.exclusive | r.sub_exclusive) != 0) return true;
      for (std::uint32_t p = r.parent; p != kNone; p = resources[p].parent)
        if (resources[p].exclusive != 0) return true;
    }
    return false;
  }

  bool blocked_by_holders(const Items& items) const {
    for (const ClaimItem& item : items)
      if (blocked_by_holders(item)) return true;
    return false;
  }

  // Same resource, or (paths) one is an ancestor of the other — compared by
  // interned component nodes, so /a/b and /a/bc never overlap.
  bool overlaps(std::uint32_t a, std::uint32_t b) const {
    if (a == b) return true;
    if (resources[a].kind != ResourceKind::path || resources[b].kind != ResourceKind::path) return false;
    while (resources[a].depth > resources[b].depth) a = resources[a].parent;
    while (resources[b].depth > resources[a].depth) b = resources[b].parent;
    return a == b;
  }

  bool conflict(const ClaimItem& x, const ClaimItem& y) const {
    if (x.mode == ClaimMode::shared && y.mode == ClaimMode::shared) return false;
    return overlaps(x.resource.index, y.resource.index);
  }

  // The first contested resource between two item sets, or kNone.
  std::uint32_t contested(const Items& x, const Items& y) const {
    for (const ClaimItem& a : x)
      for (const ClaimItem& b : y)
        if (conflict(a, b)) return a.resource.index;
    return kNone;
  }

  // ---- aging -------------------------------------------------------------

  std::int64_t effective(const Pending& p, TimePoint at) const {
    std::int64_t eff = p.priority.value;
    if (options.aging_step > 0 && options.aging_interval.count() > 0 && at > p.enqueued) {
      std::int64_t periods = (at - p.enqueued) / options.aging_interval;
      eff += periods * options.aging_step;
    }
    return eff;
  }

  // Waiters, most deserving first: aged priority, then arrival.
  std::vector<Pending*> ordered(TimePoint at) const {
    std::vector<std::pair<std::int64_t, Pending*>> keyed;
    keyed.reserve(pending.size());
    for (const auto& p : pending) keyed.emplace_back(effective(*p, at), p.get());
    std::sort(keyed.begin(), keyed.end(), [](const auto& l, const auto& r) {
      if (l.first != r.first) return l.first > r.first;
      return l.second->seq < r.second->seq;
    });
    std::vector<Pending*> out;
    out.reserve(keyed.size());
    for (auto& k : keyed) out.push_back(k.second);
    return out;
  }

  // ---- holds -------------------------------------------------------------

  void add_hold(const ClaimItem& item, int delta) {
    Resource& r = resources[item.resource.index];
    bool ex = item.mode == ClaimMode::exclusive;
    (ex ? r.exclusive : r.shared) += static_cast<std::uint32_t>(delta);
    for (std::uint32_t p = r.parent; p != kNone; p = resources[p].parent)
      (ex ? resources[p].sub_exclusive : resources[p].sub_shared) += static_cast<std::uint32_t>(delta);
    counters.held_by_kind[static_cast<std::size_t>(r.kind)] += static_cast<std::uint64_t>(static_cast<std::int64_t>(delta));
  }

  ClaimId grant(ClaimantId claimant, Priority priority, const Items& items) {
    std::uint32_t index;
    if (free_head != kNone) {
      index = free_head;
      free_head = slots[index].next_free;
    } else {
      index = static_cast<std::uint32_t>(slots.size());
      slots.emplace_back();
    }
    Slot& s = slots[index];
    s.live = true;
    s.claimant = claimant;
    s.priority = priority;
    s.seq = next_seq++;
    s.items = items;
    for (const ClaimItem& item : items) add_hold(item, +1);
    ++counters.claims_held;
    return make_claim_id(index, s.generation);
  }

  void drop(std::uint32_t index) {
    Slot& s = slots[index];
    for (const ClaimItem& item : s.items) add_hold(item, -1);
    s.live = false;
    if (++s.generation == 0) s.generation = 1;  // ids never read 0
    s.next_free = free_head;
    free_head = index;
    --counters.claims_held;
  }

  Slot* find_slot(ClaimId id) {
    auto index = static_cast<std::uint32_t>(id.value & 0xffffffffu);
    auto generation = static_cast<std::uint32_t>(id.value >> 32);
    if (index >= slots.size()) return nullptr;
    Slot& s = slots[index];
    return (s.live && s.generation == generation) ? &s : nullptr;
  }

  // ---- waiting -----------------------------------------------------------

  void remove_pending(const Pending* p) {
    auto it = std::find_if(pending.begin(), pending.end(), [p](const auto& q) { return q.get() == p; });
    if (it != pending.end()) pending.erase(it);
  }

  // Grants every waiter that fits, in order. A waiter that does not fit
  // blocks everything behind it that conflicts with it, so a stream of
  // compatible requests (shared readers) cannot starve an exclusive one.
  void grant_waiters(TimePoint at, Notices& out) {
    if (pending.empty()) return;
    std::vector<Pending*> order = ordered(at);
    std::vector<const Pending*> blocked;
    std::vector<const Pending*> done;
    for (Pending* p : order) {
      bool ok = !blocked_by_holders(p->items);
      for (const Pending* b : blocked) {
        if (!ok) break;
        if (contested(b->items, p->items) != kNone) ok = false;
      }
      if (!ok) {
        blocked.push_back(p);
        continue;
      }
      ClaimId id = grant(p->claimant, p->priority, p->items);
      ++counters.granted_after_wait;
      out.grants.emplace_back(std::move(p->callback), ClaimGrant{id, p->id, 0});
      done.push_back(p);
    }
    for (const Pending* p : done) remove_pending(p);
  }

  void expire(TimePoint at, Notices& out) {
    for (std::size_t i = 0; i < pending.size();) {
      Pending& p = *pending[i];
      if (p.deadline <= at) {
        ++counters.timeouts;
        std::string what = "claim request " + std::to_string(p.id.value) + " of " + claimant_str(p.claimant) +
                           " waited past its timeout";
        out.grants.emplace_back(std::move(p.callback), Error::described(ETIMEDOUT, std::move(what)));
        pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
  }

  // ---- deadlocks ---------------------------------------------------------

  struct Edge {
    std::size_t to;          // node index
    const Pending* request;  // the waiting request that makes the edge
    std::uint32_t resource;  // contested resource
    bool on_holder;          // waits for a hold (else for a waiter queued ahead)
  };

  // Builds the claimant wait-for graph and returns one cycle's edges, or
  // an empty vector. An edge A→B: a request of A conflicts with a claim B
  // holds, or with a request of B queued ahead of it (the queue will not let
  // A pass B). Waiter edges to oneself are left out: one's own requests
  // queue in order and are not a wait on anyone; a request that conflicts
  // with its claimant's own hold is a self-loop and is reported.
  std::vector<Edge> find_cycle(TimePoint at) const {
    std::vector<Pending*> order = ordered(at);
    std::unordered_map<std::uint64_t, std::size_t> node_of;
    std::vector<ClaimantId> nodes;
    auto node = [&](ClaimantId c) {
      auto [it, added] = node_of.emplace(c.value, nodes.size());
      if (added) nodes.push_back(c);
      return it->second;
    };
    std::vector<std::vector<Edge>> adj;
    auto add_edge = [&](std::size_t from, Edge e) {
      if (adj.size() <= std::max(from, e.to)) adj.resize(std::max(from, e.to) + 1);
      adj[from].push_back(e);
    };
    for (std::size_t i = 0; i < order.size(); ++i) {
      const Pending* p = order[i];
      std::size_t from = node(p->claimant);
      for (const Slot& s : slots) {
        if (!s.live) continue;
        std::uint32_t r = contested(p->items, s.items);
        if (r != kNone) add_edge(from, Edge{node(s.claimant), p, r, true});
      }
      for (std::size_t j = 0; j < i; ++j) {
        const Pending* q = order[j];
        if (q->claimant == p->claimant) continue;
        std::uint32_t r = contested(p->items, q->items);
        if (r != kNone) add_edge(from, Edge{node(q->claimant), p, r, false});
      }
    }
    adj.resize(nodes.size());
    // Iterative DFS; a grey node reached again closes a cycle.
    enum : std::uint8_t { white, grey, black };
    std::vector<std::uint8_t> color(nodes.size(), white);
    std::vector<std::pair<std::size_t, std::size_t>> stack;  // node, next edge
    std::vector<Edge> path;  // edges along the stack
    for (std::size_t start = 0; start < nodes.size(); ++start) {
      if (color[start] != white) continue;
      stack.emplace_back(start, 0);
      color[start] = grey;
      while (!stack.empty()) {
        auto& [n, next] = stack.back();
        if (next == adj[n].size()) {
          color[n] = black;
          stack.pop_back();
          if (!path.empty()) path.pop_back();
          continue;
        }
        const Edge& e = adj[n][next++];
        if (color[e.to] == grey) {
          // The cycle: from e.to's position on the stack, then e.
          std::vector<Edge> cycle;
          std::size_t k = 0;
          while (stack[k].first != e.to) ++k;
          for (std::size_t m = k; m < path.size(); ++m) cycle.push_back(path[m]);
          cycle.push_back(e);
          return cycle;
        }
        if (color[e.to] == white) {
          color[e.to] = grey;
          path.push_back(e);
          stack.emplace_back(e.to, 0);
        }
      }
    }
    return {};
  }

  // Breaks every cycle, one victim at a time. Victim rule: among the
  // requests that make the cycle's edges, the lowest (base) priority, then
  // the youngest (latest queued), then the largest claimant id. Returns the
  // error for `self` when the request being queued was a victim.
  std::optional<Error> break_deadlocks(TimePoint at, const Pending* self, Notices& out) {
    std::optional<Error> self_error;
    for (;;) {
      std::vector<Edge> cycle = find_cycle(at);
      if (cycle.empty()) break;
      const Pending* victim = cycle.front().request;
      for (const Edge& e : cycle) {
        const Pending* c = e.request;
        auto key = [](const Pending* p) { return std::tuple(p->priority.value, -static_cast<std::int64_t>(p->seq), -static_cast<std::int64_t>(p->claimant.value)); };
        if (key(c) < key(victim)) victim = c;
      }
      std::string msg = "deadlock: ";
      for (const Edge& e : cycle) {
        msg += claimant_str(e.request->claimant) + " waits for " + resources[e.resource].name +
               (e.on_holder ? " held by " : " queued ahead by ");
        // Name the next claimant in the cycle (the edge's target).
        msg += claimant_str(cycle[(&e - cycle.data() + 1) % cycle.size()].request->claimant);
        msg += " → ";
      }
      msg += claimant_str(cycle.front().request->claimant) + "; aborted request " + std::to_string(victim->id.value) +
             " of " + claimant_str(victim->claimant) + " (priority " + std::to_string(victim->priority.value) +
             "; victim rule: lowest priority, then youngest request, then largest claimant id)";
      Error err = Error::described(EDEADLK, std::move(msg));
      ++counters.deadlocks_resolved;
      Pending* v = nullptr;
      for (auto& p : pending)
        if (p.get() == victim) v = p.get();
      if (v == self) {
        self_error = std::move(err);
      } else {
        out.grants.emplace_back(std::move(v->callback), std::move(err));
      }
      remove_pending(v);
    }
    return self_error;
  }

  std::string holder_of(const Items& items) const {
    for (const Slot& s : slots) {
      if (!s.live) continue;
      std::uint32_t r = contested(items, s.items);
      if (r != kNone) return resources[r].name + " is held by " + claimant_str(s.claimant);
    }
    return "a request queued ahead conflicts with it";
  }
};

Arbiter::Arbiter(ArbiterOptions options) : state_(std::make_unique<State>(std::move(options))) {}
Arbiter::~Arbiter() = default;

namespace {

void dispatch(Notices& n, const PreemptionHandler& on_preempted) {
  for (const Preemption& p : n.preemptions)
    if (on_preempted) on_preempted(p);
  for (auto& [callback, result] : n.grants)
    if (callback) callback(std::move(result));
}

}  // namespace

Result<ResourceKey> Arbiter::intern(std::string_view text) {
  auto parsed = ResourceName::parse(text);
  if (!parsed) return std::move(parsed).error();
  State& s = *state_;
  std::lock_guard lock(s.mu);
  if (auto it = s.by_name.find(parsed->canonical); it != s.by_name.end()) return ResourceKey{it->second};
  // Paths intern their ancestors first ("path:/", "path:/a", …) so every
  // node knows its parent.
  std::uint32_t parent = kNone;
  std::size_t levels = parsed->kind == ResourceKind::path ? parsed->components.size() + 1 : 1;
  std::string prefix = "path:";
  for (std::size_t level = 0; level < levels; ++level) {
    std::string name;
    if (parsed->kind != ResourceKind::path) {
      name = parsed->canonical;
    } else {
      if (level > 0) prefix += "/" + parsed->components[level - 1];
      name = level == 0 ? std::string("path:/") : prefix;
    }
    auto it = s.by_name.find(name);
    if (it != s.by_name.end()) {
      parent = it->second;
      continue;
    }
    auto index = static_cast<std::uint32_t>(s.resources.size());
    Resource r;
    r.name = name;
    r.kind = parsed->kind;
    r.parent = parent;
    r.depth = static_cast<std::uint32_t>(level);
    s.resources.push_back(std::move(r));
    s.by_name.emplace(std::move(name), index);
    parent = index;
  }
  return ResourceKey{parent};
}

std::string Arbiter::name_of(ResourceKey key) const {
  std::lock_guard lock(state_->mu);
  return key.index < state_->resources.size() ? state_->resources[key.index].name : std::string();
}

Result<ClaimOutcome> Arbiter::claim(const ClaimRequest& request, GrantCallback on_grant) {
  State& s = *state_;
  if (request.items.empty()) return Error::invalid("claim request has no resources");
  if (request.items.size() > kMaxClaimItems)
    return Error::invalid("claim request names " + std::to_string(request.items.size()) + " resources (at most " +
                          std::to_string(kMaxClaimItems) + ")");
  Items items;
  items.count = static_cast<std::uint8_t>(request.items.size());
  std::copy(request.items.begin(), request.items.end(), items.at.begin());

  Notices notices;
  Result<ClaimOutcome> result = [&]() -> Result<ClaimOutcome> {
    std::lock_guard lock(s.mu);
    for (const ClaimItem& item : items)
      if (item.resource.index >= s.resources.size())
        return Error::invalid("claim request names unknown resource key " + std::to_string(item.resource.index));
    for (std::size_t i = 0; i < items.count; ++i)
      for (std::size_t j = i + 1; j < items.count; ++j)
        if (s.overlaps(items.at[i].resource.index, items.at[j].resource.index))
          return Error::invalid("claim request names overlapping resources " +
                                s.resources[items.at[i].resource.index].name + " and " +
                                s.resources[items.at[j].resource.index].name);

    const bool held = s.blocked_by_holders(items);
    bool waiter_ahead = false;
    TimePoint now{};
    bool have_now = false;
    if (!s.pending.empty()) {
      now = s.now();
      have_now = true;
      for (const auto& q : s.pending)
        if (s.effective(*q, now) >= request.priority.value && s.contested(q->items, items) != kNone) {
          waiter_ahead = true;
          break;
        }
    }
    if (!held && !waiter_ahead) {  // the uncontended path
      ++s.counters.granted_immediately;
      return ClaimOutcome{ClaimStatus::granted, s.grant(request.claimant, request.priority, items), RequestId{}, 0};
    }

    if (held && !waiter_ahead) {
      // Preempt when every conflicting holder may be preempted under the
      // contested resource kind's policy.
      std::vector<std::uint32_t> victims;
      bool allowed = true;
      for (std::uint32_t i = 0; i < s.slots.size() && allowed; ++i) {
        const Slot& h = s.slots[i];
        if (!h.live) continue;
        std::uint32_t r = s.contested(items, h.items);
        if (r == kNone) continue;
        const KindPolicy& policy = s.options.policy[static_cast<std::size_t>(s.resources[r].kind)];
        std::int64_t gap = static_cast<std::int64_t>(request.priority.value) - h.priority.value;
        if (!policy.preempt || h.claimant == request.claimant || gap < policy.preempt_gap) allowed = false;
        victims.push_back(i);
      }
      if (allowed && !victims.empty()) {
        for (std::uint32_t i : victims) {
          const Slot& h = s.slots[i];
          notices.preemptions.push_back(Preemption{make_claim_id(i, h.generation), h.claimant, h.priority,
                                                   request.claimant, request.priority,
                                                   s.resources[s.contested(items, h.items)].name});
          s.drop(i);
          ++s.counters.preemptions;
        }
        ++s.counters.granted_immediately;
        ClaimId id = s.grant(request.claimant, request.priority, items);
        // Revoked claims may have freed room for others as well.
        s.grant_waiters(have_now ? now : s.now(), notices);
        return ClaimOutcome{ClaimStatus::granted, id, RequestId{}, static_cast<std::uint32_t>(victims.size())};
      }
    }

    if (request.wait_timeout.count() <= 0)
      return Error::described(EAGAIN, "claim of " + s.resources[items.at[0].resource.index].name + " by " +
                                          claimant_str(request.claimant) + " would wait: " + s.holder_of(items));
    if (!have_now) now = s.now();
    auto p = std::make_unique<Pending>();
    p->id = RequestId{s.next_request++};
    p->claimant = request.claimant;
    p->priority = request.priority;
    p->seq = s.next_seq++;
    p->items = items;
    p->enqueued = now;
    if (request.wait_timeout != std::chrono::milliseconds::max() &&
        request.wait_timeout < std::chrono::duration_cast<std::chrono::milliseconds>(TimePoint::max() - now))
      p->deadline = now + request.wait_timeout;
    p->callback = std::move(on_grant);
    const Pending* self = p.get();
    RequestId id = p->id;
    s.pending.push_back(std::move(p));
    if (auto err = s.break_deadlocks(now, self, notices)) {
      s.grant_waiters(now, notices);
      return std::move(*err);
    }
    s.grant_waiters(now, notices);  // only grants when a victim made room
    return ClaimOutcome{ClaimStatus::queued, ClaimId{}, id, 0};
  }();
  if (!notices.grants.empty() || !notices.preemptions.empty()) dispatch(notices, s.options.on_preempted);
  return result;
}

Result<void> Arbiter::release(ClaimId claim) {
  State& s = *state_;
  Notices notices;
  {
    std::lock_guard lock(s.mu);
    Slot* slot = s.find_slot(claim);
    if (slot == nullptr)
      return Error::described(ENOENT, "release: claim " + std::to_string(claim.value) +
                                          " is not held (released, revoked or unknown)");
    s.drop(static_cast<std::uint32_t>(claim.value & 0xffffffffu));
    if (s.pending.empty()) return ok();
    s.grant_waiters(s.now(), notices);
  }
  dispatch(notices, s.options.on_preempted);
  return ok();
}

Result<void> Arbiter::cancel(RequestId request) {
  State& s = *state_;
  Notices notices;
  {
    std::lock_guard lock(s.mu);
    auto it = std::find_if(s.pending.begin(), s.pending.end(), [&](const auto& p) { return p->id == request; });
    if (it == s.pending.end())
      return Error::described(ENOENT, "cancel: request " + std::to_string(request.value) + " is not queued");
    ++s.counters.cancellations;
    notices.grants.emplace_back(std::move((*it)->callback),
                                Error::described(ECANCELED, "claim request " + std::to_string(request.value) +
                                                                " was cancelled"));
    s.pending.erase(it);
    s.grant_waiters(s.now(), notices);
  }
  dispatch(notices, s.options.on_preempted);
  return ok();
}

std::size_t Arbiter::release_all(ClaimantId claimant) {
  State& s = *state_;
  Notices notices;
  std::size_t released = 0;
  {
    std::lock_guard lock(s.mu);
    for (std::uint32_t i = 0; i < s.slots.size(); ++i) {
      if (s.slots[i].live && s.slots[i].claimant == claimant) {
        s.drop(i);
        ++released;
      }
    }
    for (std::size_t i = 0; i < s.pending.size();) {
      Pending& p = *s.pending[i];
      if (p.claimant == claimant) {
        ++s.counters.cancellations;
        notices.grants.emplace_back(std::move(p.callback),
                                    Error::described(ECANCELED, "claim request " + std::to_string(p.id.value) +
                                                                    " cancelled: all claims of " +
                                                                    claimant_str(claimant) + " were released"));
        s.pending.erase(s.pending.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
    s.grant_waiters(s.now(), notices);
  }
  dispatch(notices, s.options.on_preempted);
  return released;
}

void Arbiter::poll() {
  State& s = *state_;
  Notices notices;
  {
    std::lock_guard lock(s.mu);
    if (s.pending.empty()) return;
    TimePoint now = s.now();
    s.expire(now, notices);
    s.grant_waiters(now, notices);
    if (!s.pending.empty()) {
      (void)s.break_deadlocks(now, nullptr, notices);
      s.grant_waiters(now, notices);
    }
  }
  dispatch(notices, s.options.on_preempted);
}

std::chrono::steady_clock::time_point Arbiter::next_wakeup() const {
  const State& s = *state_;
  std::lock_guard lock(s.mu);
  TimePoint next = TimePoint::max();
  if (s.pending.empty()) return next;
  TimePoint now = s.now();
  for (const auto& p : s.pending) {
    next = std::min(next, p->deadline);
    if (s.options.aging_step > 0 && s.options.aging_interval.count() > 0) {
      auto periods = now > p->enqueued ? (now - p->enqueued) / s.options.aging_interval : 0;
      next = std::min(next, p->enqueued + (periods + 1) * s.options.aging_interval);
    }
  }
  return next;
}

ArbiterStats Arbiter::stats() const {
  const State& s = *state_;
  std::lock_guard lock(s.mu);
  ArbiterStats out = s.counters;
  out.requests_queued = s.pending.size();
  for (const auto& p : s.pending)
    for (const ClaimItem& item : p->items) ++out.queued_by_kind[static_cast<std::size_t>(s.resources[item.resource.index].kind)];
  return out;
}

}  // namespace symphony::pit
