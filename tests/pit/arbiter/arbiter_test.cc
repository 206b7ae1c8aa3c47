// Tests of the arbiter: resource names, the shared/exclusive matrix, path
// prefixes, priority order, preemption, aging, deadlock detection, release,
// timeouts and cancellation. A fake clock drives aging and timeouts.
#include "pit/arbiter/arbiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace symphony::pit {
namespace {

using namespace std::chrono_literals;
using TimePoint = std::chrono::steady_clock::time_point;

struct FakeClock {
  TimePoint now{};
  SteadyClock fn() {
    return [this] { return now; };
  }
};

ArbiterOptions no_aging() {
  ArbiterOptions o;
  o.aging_step = 0;
  return o;
}

// Records what a queued request's callback received.
struct Waiter {
  int calls = 0;
  std::optional<ClaimGrant> grant;
  std::optional<Error> error;
  GrantCallback callback() {
    return [this](Result<ClaimGrant> r) {
      ++calls;
      if (r) grant = *r;
      else error = r.error();
    };
  }
};

class ArbiterTest : public ::testing::Test {
 protected:
  ResourceKey key(Arbiter& a, std::string_view name) {
    auto k = a.intern(name);
    EXPECT_TRUE(k) << name << ": " << (k ? "" : k.error().message());
    return k ? *k : ResourceKey{};
  }
  Result<ClaimOutcome> claim(Arbiter& a, std::uint64_t who, ResourceKey r, ClaimMode mode, int prio = 0,
                             std::chrono::milliseconds timeout = 0ms, GrantCallback cb = {}) {
    ClaimItem item{r, mode};
    return a.claim(ClaimRequest{ClaimantId{who}, Priority{prio}, std::span(&item, 1), timeout}, std::move(cb));
  }
};

TEST(ResourceName, ParsesAndCanonicalizes) {
  auto g = ResourceName::parse("gpu:0");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->kind, ResourceKind::gpu);
  EXPECT_EQ(g->canonical, "gpu:0");
  auto p = ResourceName::parse("path:/work/repo/src/");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->canonical, "path:/work/repo/src");
  EXPECT_EQ(p->components, (std::vector<std::string>{"work", "repo", "src"}));
  auto root = ResourceName::parse("path:/");
  ASSERT_TRUE(root);
  EXPECT_EQ(root->canonical, "path:/");
  auto l = ResourceName::parse("lock:model-cache/v1.2");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->kind, ResourceKind::lock);
}

TEST(ResourceName, RejectsBadNamesWithClearErrors) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "expected KIND:NAME"},
      {"gpu0", "expected KIND:NAME"},
      {"disk:1", "unknown kind \"disk\""},
      {"gpu:", "gpu index is missing"},
      {"gpu:01", "leading zero"},
      {"gpu:1a", "non-digit at offset 5"},
      {"gpu:99999", "exceeds 4095"},
      {"path:work", "must be absolute"},
      {"path:", "must be absolute"},
      {"path:/a//b", "empty path component"},
      {"path:/a/../b", "\"..\" is not allowed"},
      {"path:/a/./b", "\".\" is not allowed"},
      {"lock:", "lock name is empty"},
      {"lock:a b", "outside [A-Za-z0-9._:/-] at offset 6"},
      {"lock:" + std::string(200, 'x'), "longer than 128"},
  };
  for (const auto& [name, want] : bad) {
    auto r = ResourceName::parse(name);
    ASSERT_FALSE(r) << name;
    EXPECT_EQ(r.error().code(), EINVAL);
    EXPECT_NE(r.error().message().find(want), std::string::npos) << name << " -> " << r.error().message();
  }
  Arbiter a;
  auto k = a.intern("gpu:x");
  ASSERT_FALSE(k);
  EXPECT_EQ(k.error().code(), EINVAL);
}

TEST_F(ArbiterTest, InterningIsIdempotent) {
  Arbiter a;
  EXPECT_EQ(key(a, "path:/a/b/"), key(a, "path:/a/b"));
  EXPECT_NE(key(a, "path:/a/b"), key(a, "path:/a"));
  EXPECT_EQ(a.name_of(key(a, "lock:x")), "lock:x");
}

TEST_F(ArbiterTest, SharedExclusiveCompatibilityMatrix) {
  struct Case {
    ClaimMode held, wanted;
    bool granted;
  };
  for (Case c : {Case{ClaimMode::shared, ClaimMode::shared, true}, Case{ClaimMode::shared, ClaimMode::exclusive, false},
                 Case{ClaimMode::exclusive, ClaimMode::shared, false},
                 Case{ClaimMode::exclusive, ClaimMode::exclusive, false}}) {
    for (const char* name : {"gpu:0", "lock:l", "path:/w"}) {
      Arbiter a(no_aging());
      ResourceKey r = key(a, name);
      ASSERT_TRUE(claim(a, 1, r, c.held));
      auto second = claim(a, 2, r, c.wanted);
      EXPECT_EQ(static_cast<bool>(second), c.granted) << name;
      if (!second) {
        EXPECT_EQ(second.error().code(), EAGAIN);
        EXPECT_NE(second.error().message().find("held by claimant 1"), std::string::npos) << second.error().message();
      }
    }
  }
}

TEST_F(ArbiterTest, DifferentResourcesNeverConflict) {
  Arbiter a(no_aging());
  ASSERT_TRUE(claim(a, 1, key(a, "gpu:0"), ClaimMode::exclusive));
  EXPECT_TRUE(claim(a, 2, key(a, "gpu:1"), ClaimMode::exclusive));
  EXPECT_TRUE(claim(a, 2, key(a, "lock:gpu:0"), ClaimMode::exclusive));
}

TEST_F(ArbiterTest, PathPrefixesConflictByComponent) {
  Arbiter a(no_aging());
  ASSERT_TRUE(claim(a, 1, key(a, "path:/a/b"), ClaimMode::exclusive));
  EXPECT_TRUE(claim(a, 2, key(a, "path:/a/bc"), ClaimMode::exclusive)) << "sibling by string prefix only";
  EXPECT_TRUE(claim(a, 2, key(a, "path:/a/c/b"), ClaimMode::exclusive));
  EXPECT_FALSE(claim(a, 2, key(a, "path:/a/b/c"), ClaimMode::shared)) << "descendant";
  EXPECT_FALSE(claim(a, 2, key(a, "path:/a/b/c/d/e"), ClaimMode::exclusive)) << "deep descendant";
  EXPECT_FALSE(claim(a, 2, key(a, "path:/a"), ClaimMode::shared)) << "ancestor";
  EXPECT_FALSE(claim(a, 2, key(a, "path:/"), ClaimMode::exclusive)) << "root";
  EXPECT_FALSE(claim(a, 2, key(a, "path:/a/b/"), ClaimMode::shared)) << "same path";

  Arbiter s(no_aging());
  ASSERT_TRUE(claim(s, 1, key(s, "path:/x/y"), ClaimMode::shared));
  EXPECT_TRUE(claim(s, 2, key(s, "path:/x"), ClaimMode::shared)) << "shared over shared is fine";
  EXPECT_TRUE(claim(s, 3, key(s, "path:/x/y/z"), ClaimMode::shared));
  EXPECT_FALSE(claim(s, 4, key(s, "path:/x/y/z/w"), ClaimMode::exclusive)) << "under a shared ancestor";
  EXPECT_FALSE(claim(s, 4, key(s, "path:/x"), ClaimMode::exclusive)) << "over shared descendants";
  EXPECT_TRUE(claim(s, 4, key(s, "path:/x2"), ClaimMode::exclusive));
}

TEST_F(ArbiterTest, ReleaseFreesPathSubtreeCounters) {
  Arbiter a(no_aging());
  auto c = claim(a, 1, key(a, "path:/a/b/c"), ClaimMode::exclusive);
  ASSERT_TRUE(c);
  EXPECT_FALSE(claim(a, 2, key(a, "path:/a"), ClaimMode::exclusive));
  ASSERT_TRUE(a.release(c->claim));
  EXPECT_TRUE(claim(a, 2, key(a, "path:/a"), ClaimMode::exclusive));
}

TEST_F(ArbiterTest, WaitersAreGrantedInPriorityOrder) {
  Arbiter a(no_aging());
  ResourceKey r = key(a, "lock:l");
  auto holder = claim(a, 1, r, ClaimMode::exclusive);
  ASSERT_TRUE(holder);
  Waiter low, high, mid, mid2;
  ASSERT_EQ(claim(a, 2, r, ClaimMode::exclusive, 1, 10s, low.callback())->status, ClaimStatus::queued);
  ASSERT_EQ(claim(a, 3, r, ClaimMode::exclusive, 5, 10s, high.callback())->status, ClaimStatus::queued);
  ASSERT_EQ(claim(a, 4, r, ClaimMode::exclusive, 3, 10s, mid.callback())->status, ClaimStatus::queued);
  ASSERT_EQ(claim(a, 5, r, ClaimMode::exclusive, 3, 10s, mid2.callback())->status, ClaimStatus::queued);
  EXPECT_EQ(a.stats().requests_queued, 4u);

  ASSERT_TRUE(a.release(holder->claim));
  ASSERT_TRUE(high.grant);
  EXPECT_FALSE(mid.grant || low.grant || mid2.grant);
  ASSERT_TRUE(a.release(high.grant->claim));
  ASSERT_TRUE(mid.grant) << "equal priority: first come first served";
  EXPECT_FALSE(mid2.grant);
  ASSERT_TRUE(a.release(mid.grant->claim));
  ASSERT_TRUE(mid2.grant);
  ASSERT_TRUE(a.release(mid2.grant->claim));
  ASSERT_TRUE(low.grant);
  EXPECT_EQ(low.calls + mid.calls + mid2.calls + high.calls, 4);
}

TEST_F(ArbiterTest, NewRequestDoesNotBypassAnEqualWaiter) {
  Arbiter a(no_aging());
  ResourceKey r = key(a, "lock:l");
  ASSERT_TRUE(claim(a, 1, r, ClaimMode::shared));
  Waiter writer;
  ASSERT_EQ(claim(a, 2, r, ClaimMode::exclusive, 0, 10s, writer.callback())->status, ClaimStatus::queued);
  // A reader is compatible with the holder but would starve the writer.
  auto reader = claim(a, 3, r, ClaimMode::shared, 0);
  ASSERT_FALSE(reader);
  EXPECT_EQ(reader.error().code(), EAGAIN);
  // A more important reader does go first.
  EXPECT_TRUE(claim(a, 4, r, ClaimMode::shared, 1));
}

TEST_F(ArbiterTest, PreemptsLowerPriorityHoldersAboveTheGap) {
  std::vector<Preemption> seen;
  ArbiterOptions o = no_aging();
  o.policy[static_cast<std::size_t>(ResourceKind::gpu)] = KindPolicy{true, 10};
  o.on_preempted = [&](const Preemption& p) { seen.push_back(p); };
  Arbiter a(o);
  ResourceKey gpu = key(a, "gpu:0");
  auto low = claim(a, 1, gpu, ClaimMode::exclusive, 0);
  ASSERT_TRUE(low);

  // Gap 5 < 10: queue, no preemption.
  auto near = claim(a, 2, gpu, ClaimMode::exclusive, 5, 10s);
  ASSERT_TRUE(near);
  EXPECT_EQ(near->status, ClaimStatus::queued);
  EXPECT_TRUE(seen.empty());
  ASSERT_TRUE(a.cancel(near->request));

  auto high = claim(a, 3, gpu, ClaimMode::exclusive, 10, 10s);
  ASSERT_TRUE(high);
  EXPECT_EQ(high->status, ClaimStatus::granted);
  EXPECT_EQ(high->preempted, 1u);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].claim, low->claim);
  EXPECT_EQ(seen[0].holder, ClaimantId{1});
  EXPECT_EQ(seen[0].preemptor, ClaimantId{3});
  EXPECT_EQ(seen[0].resource, "gpu:0");
  auto again = a.release(low->claim);
  ASSERT_FALSE(again) << "the revoked claim is gone";
  EXPECT_EQ(again.error().code(), ENOENT);
  EXPECT_EQ(a.stats().preemptions, 1u);

  // Locks use the default policy: queue, never preempt.
  ResourceKey lock = key(a, "lock:l");
  ASSERT_TRUE(claim(a, 1, lock, ClaimMode::exclusive, 0));
  EXPECT_FALSE(claim(a, 3, lock, ClaimMode::exclusive, 100));
  EXPECT_EQ(seen.size(), 1u);
}

TEST_F(ArbiterTest, PreemptionRevokesEveryResourceOfTheClaim) {
  ArbiterOptions o = no_aging();
  o.policy[static_cast<std::size_t>(ResourceKind::gpu)] = KindPolicy{true, 1};
  int preempted = 0;
  o.on_preempted = [&](const Preemption&) { ++preempted; };
  Arbiter a(o);
  ClaimItem both[] = {{key(a, "gpu:0"), ClaimMode::exclusive}, {key(a, "gpu:1"), ClaimMode::exclusive}};
  ASSERT_TRUE(a.claim(ClaimRequest{ClaimantId{1}, Priority{0}, both, 0ms}));
  ASSERT_TRUE(claim(a, 2, key(a, "gpu:0"), ClaimMode::exclusive, 5));
  EXPECT_EQ(preempted, 1);
  EXPECT_TRUE(claim(a, 3, key(a, "gpu:1"), ClaimMode::exclusive, 0)) << "gpu:1 went with the revoked claim";
}

TEST_F(ArbiterTest, AgingLetsALowWaiterThroughASteadyHighStream) {
  FakeClock clock;
  ArbiterOptions o;
  o.clock = clock.fn();
  o.aging_interval = 10ms;
  o.aging_step = 1;
  Arbiter a(o);
  ResourceKey r = key(a, "lock:l");
  auto first = claim(a, 100, r, ClaimMode::exclusive, 5);
  ASSERT_TRUE(first);
  ClaimId current = first->claim;
  Waiter low;
  ASSERT_EQ(claim(a, 1, r, ClaimMode::exclusive, 0, std::chrono::milliseconds::max(), low.callback())->status,
            ClaimStatus::queued);
  std::vector<std::unique_ptr<Waiter>> highs;
  int rounds = 0;
  while (!low.grant && rounds < 100) {
    ++rounds;
    highs.push_back(std::make_unique<Waiter>());
    ASSERT_TRUE(claim(a, 200 + static_cast<std::uint64_t>(rounds), r, ClaimMode::exclusive, 5,
                      std::chrono::milliseconds::max(), highs.back()->callback()));
    clock.now += 10ms;
    ASSERT_TRUE(a.release(current));
    if (low.grant) break;
    // One of the high requests got it; it becomes the holder.
    bool found = false;
    for (auto& h : highs)
      if (h->grant && h->calls == 1) {
        current = h->grant->claim;
        h->calls = 2;  // consumed
        found = true;
      }
    ASSERT_TRUE(found);
  }
  ASSERT_TRUE(low.grant);
  EXPECT_GT(rounds, 1) << "priority still counts at first";
  // Priority gap 5, one step per interval: a handful of rounds, not 100.
  EXPECT_LE(rounds, 7);
}

TEST_F(ArbiterTest, DetectsTwoWayDeadlockAndAbortsTheYoungest) {
  Arbiter a(no_aging());
  ResourceKey l1 = key(a, "lock:l1"), l2 = key(a, "lock:l2");
  ASSERT_TRUE(claim(a, 1, l1, ClaimMode::exclusive));
  ASSERT_TRUE(claim(a, 2, l2, ClaimMode::exclusive));
  Waiter w1;
  ASSERT_EQ(claim(a, 1, l2, ClaimMode::exclusive, 0, 10s, w1.callback())->status, ClaimStatus::queued);
  auto closing = claim(a, 2, l1, ClaimMode::exclusive, 0, 10s);
  ASSERT_FALSE(closing);
  EXPECT_EQ(closing.error().code(), EDEADLK);
  const std::string msg = closing.error().message();
  for (const char* part : {"deadlock", "claimant 1 waits for lock:l2 held by claimant 2",
                           "claimant 2 waits for lock:l1 held by claimant 1", "aborted request"})
    EXPECT_NE(msg.find(part), std::string::npos) << part << " in " << msg;
  EXPECT_EQ(w1.calls, 0) << "the older request keeps waiting";
  EXPECT_EQ(a.stats().deadlocks_resolved, 1u);
}

TEST_F(ArbiterTest, DeadlockVictimIsTheLowestPriority) {
  Arbiter a(no_aging());
  ResourceKey l1 = key(a, "lock:l1"), l2 = key(a, "lock:l2");
  auto h1 = claim(a, 1, l1, ClaimMode::exclusive);
  ASSERT_TRUE(h1);
  ASSERT_TRUE(claim(a, 2, l2, ClaimMode::exclusive));
  Waiter w1, w2;
  ASSERT_EQ(claim(a, 1, l2, ClaimMode::exclusive, 0, 10s, w1.callback())->status, ClaimStatus::queued);
  auto closing = claim(a, 2, l1, ClaimMode::exclusive, 7, 10s, w2.callback());
  ASSERT_TRUE(closing) << closing.error().message();
  EXPECT_EQ(closing->status, ClaimStatus::queued);
  ASSERT_TRUE(w1.error);
  EXPECT_EQ(w1.error->code(), EDEADLK);
  EXPECT_NE(w1.error->message().find("of claimant 1 (priority 0"), std::string::npos) << w1.error->message();
  // The daemon cancels the victim's step, which releases what it held.
  EXPECT_EQ(a.release_all(ClaimantId{1}), 1u);
  ASSERT_TRUE(w2.grant);
}

TEST_F(ArbiterTest, DetectsThreeWayDeadlock) {
  for (int lowest : {0, 1, 2}) {
    Arbiter a(no_aging());
    ResourceKey l[3] = {key(a, "lock:a"), key(a, "lock:b"), key(a, "lock:c")};
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(claim(a, static_cast<std::uint64_t>(i + 1), l[i], ClaimMode::exclusive));
    Waiter w[3];
    std::optional<Error> last_error;
    for (int i = 0; i < 3; ++i) {
      int prio = i == lowest ? 0 : 5;
      auto r = claim(a, static_cast<std::uint64_t>(i + 1), l[(i + 1) % 3], ClaimMode::exclusive, prio, 10s, w[i].callback());
      if (i < 2) {
        ASSERT_TRUE(r) << r.error().message();
        EXPECT_EQ(r->status, ClaimStatus::queued);
      } else if (!r) {
        last_error = r.error();
      }
    }
    // Exactly one request was aborted, the lowest-priority one.
    int aborted = 0;
    for (int i = 0; i < 3; ++i) {
      bool this_one = (i == 2) ? last_error.has_value() : w[i].error.has_value();
      if (this_one) {
        ++aborted;
        EXPECT_EQ(i, lowest);
        const Error& e = i == 2 ? *last_error : *w[i].error;
        EXPECT_EQ(e.code(), EDEADLK);
        for (const char* part : {"claimant 1", "claimant 2", "claimant 3", "lock:a", "lock:b", "lock:c"})
          EXPECT_NE(e.message().find(part), std::string::npos) << e.message();
      }
    }
    EXPECT_EQ(aborted, 1) << "lowest=" << lowest;
  }
}

TEST_F(ArbiterTest, DetectsACycleThroughAQueuedWaiter) {
  Arbiter a(no_aging());
  ResourceKey l1 = key(a, "lock:l1"), l2 = key(a, "lock:l2");
  ASSERT_TRUE(claim(a, 1, l1, ClaimMode::shared));   // A reads l1
  ASSERT_TRUE(claim(a, 2, l2, ClaimMode::exclusive));  // B holds l2
  Waiter writer, reader;
  ASSERT_EQ(claim(a, 3, l1, ClaimMode::exclusive, 9, 10s, writer.callback())->status, ClaimStatus::queued);  // W→A
  ASSERT_EQ(claim(a, 2, l1, ClaimMode::shared, 0, 10s, reader.callback())->status, ClaimStatus::queued);     // B→W
  auto closing = claim(a, 1, l2, ClaimMode::exclusive, 0, 10s);  // A→B closes A→B→W→A
  ASSERT_FALSE(closing);
  EXPECT_EQ(closing.error().code(), EDEADLK);
  EXPECT_NE(closing.error().message().find("queued ahead by claimant 3"), std::string::npos) << closing.error().message();
}

TEST_F(ArbiterTest, WaitingOnOwnHoldIsReported) {
  Arbiter a(no_aging());
  ResourceKey g = key(a, "gpu:0");
  ASSERT_TRUE(claim(a, 1, g, ClaimMode::exclusive));
  auto again = claim(a, 1, g, ClaimMode::exclusive, 0, 10s);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), EDEADLK);
  EXPECT_NE(again.error().message().find("claimant 1 waits for gpu:0 held by claimant 1"), std::string::npos)
      << again.error().message();
}

// Claimants that take locks in ascending order can never deadlock; random
// schedules with priorities, shared/exclusive modes, aging and releases must
// never see EDEADLK.
TEST_F(ArbiterTest, NoFalseDeadlocksUnderOrderedAcquisition) {
  for (unsigned seed = 1; seed <= 30; ++seed) {
    std::mt19937 rng(seed);
    FakeClock clock;
    ArbiterOptions o;
    o.clock = clock.fn();
    o.aging_interval = 5ms;
    Arbiter a(o);
    constexpr int kLocks = 6, kClaimants = 8;
    std::vector<ResourceKey> locks;
    for (int i = 0; i < kLocks; ++i) locks.push_back(key(a, "lock:" + std::to_string(i)));
    struct C {
      std::vector<std::pair<int, ClaimId>> held;  // lock index, claim
      bool waiting = false;
      int wanted = -1;
    };
    std::vector<C> cs(kClaimants);
    int deadlocks = 0, grants = 0;
    for (int step = 0; step < 1500; ++step) {
      int ci = static_cast<int>(rng() % kClaimants);
      C& c = cs[static_cast<std::size_t>(ci)];
      clock.now += std::chrono::milliseconds(rng() % 3);
      if (rng() % 10 == 0) a.poll();
      if (c.waiting) continue;
      int top = c.held.empty() ? -1 : c.held.back().first;
      if (top + 1 < kLocks && rng() % 3 != 0) {
        int want = top + 1 + static_cast<int>(rng() % static_cast<unsigned>(kLocks - top - 1));
        ClaimMode mode = rng() % 2 ? ClaimMode::shared : ClaimMode::exclusive;
        int prio = static_cast<int>(rng() % 4);
        auto cb = [&, ci, want](Result<ClaimGrant> r) {
          C& me = cs[static_cast<std::size_t>(ci)];
          me.waiting = false;
          if (r) {
            me.held.emplace_back(want, r->claim);
            ++grants;
          } else if (r.error().code() == EDEADLK) {
            ++deadlocks;
          }
        };
        c.waiting = true;
        auto r = claim(a, static_cast<std::uint64_t>(ci + 1), locks[static_cast<std::size_t>(want)], mode, prio,
                       std::chrono::milliseconds::max(), cb);
        if (!r) {
          c.waiting = false;
          if (r.error().code() == EDEADLK) ++deadlocks;
        } else if (r->status == ClaimStatus::granted) {
          c.waiting = false;
          c.held.emplace_back(want, r->claim);
          ++grants;
        }
      } else if (!c.held.empty()) {
        std::size_t k = rng() % c.held.size();
        ClaimId id = c.held[k].second;
        c.held.erase(c.held.begin() + static_cast<std::ptrdiff_t>(k));
        ASSERT_TRUE(a.release(id));
      }
      ASSERT_EQ(deadlocks, 0) << "seed " << seed << " step " << step;
    }
    EXPECT_GT(grants, 100);
  }
}

TEST_F(ArbiterTest, ReleaseAllDropsClaimsAndCancelsWaits) {
  Arbiter a(no_aging());
  ResourceKey g = key(a, "gpu:0"), l = key(a, "lock:l"), p = key(a, "path:/w/src"), other = key(a, "lock:o");
  ASSERT_TRUE(claim(a, 1, g, ClaimMode::exclusive));
  ASSERT_TRUE(claim(a, 1, l, ClaimMode::shared));
  ASSERT_TRUE(claim(a, 1, p, ClaimMode::exclusive));
  ASSERT_TRUE(claim(a, 2, other, ClaimMode::exclusive));
  Waiter mine, theirs;
  ASSERT_EQ(claim(a, 1, other, ClaimMode::exclusive, 0, 10s, mine.callback())->status, ClaimStatus::queued);
  ASSERT_EQ(claim(a, 3, g, ClaimMode::exclusive, 0, 10s, theirs.callback())->status, ClaimStatus::queued);
  EXPECT_EQ(a.stats().claims_held, 4u);
  EXPECT_EQ(a.release_all(ClaimantId{1}), 3u);
  ASSERT_TRUE(mine.error);
  EXPECT_EQ(mine.error->code(), ECANCELED);
  ASSERT_TRUE(theirs.grant) << "the freed gpu goes to the next waiter";
  EXPECT_TRUE(claim(a, 4, key(a, "path:/w"), ClaimMode::exclusive));
  EXPECT_EQ(a.release_all(ClaimantId{1}), 0u);
}

TEST_F(ArbiterTest, QueuedRequestTimesOut) {
  FakeClock clock;
  ArbiterOptions o = no_aging();
  o.clock = clock.fn();
  Arbiter a(o);
  ResourceKey r = key(a, "lock:l");
  ASSERT_TRUE(claim(a, 1, r, ClaimMode::exclusive));
  EXPECT_EQ(a.next_wakeup(), TimePoint::max());
  Waiter w;
  ASSERT_EQ(claim(a, 2, r, ClaimMode::exclusive, 0, 50ms, w.callback())->status, ClaimStatus::queued);
  EXPECT_EQ(a.next_wakeup(), clock.now + 50ms);
  clock.now += 49ms;
  a.poll();
  EXPECT_EQ(w.calls, 0);
  clock.now += 1ms;
  a.poll();
  ASSERT_TRUE(w.error);
  EXPECT_EQ(w.error->code(), ETIMEDOUT);
  EXPECT_EQ(w.calls, 1);
  EXPECT_EQ(a.stats().timeouts, 1u);
  EXPECT_EQ(a.stats().requests_queued, 0u);
}

TEST_F(ArbiterTest, CancelEndsTheWaitOnce) {
  Arbiter a(no_aging());
  ResourceKey r = key(a, "lock:l");
  auto h = claim(a, 1, r, ClaimMode::exclusive);
  ASSERT_TRUE(h);
  Waiter w;
  auto q = claim(a, 2, r, ClaimMode::exclusive, 0, 10s, w.callback());
  ASSERT_TRUE(q);
  ASSERT_TRUE(a.cancel(q->request));
  ASSERT_TRUE(w.error);
  EXPECT_EQ(w.error->code(), ECANCELED);
  auto again = a.cancel(q->request);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ENOENT);
  ASSERT_TRUE(a.release(h->claim));
  EXPECT_EQ(w.calls, 1);
  auto twice = a.release(h->claim);
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code(), ENOENT);
}

TEST_F(ArbiterTest, MultiResourceRequestsAreAllOrNothing) {
  Arbiter a(no_aging());
  ResourceKey g = key(a, "gpu:0"), l = key(a, "lock:x");
  auto lx = claim(a, 1, l, ClaimMode::exclusive);
  ASSERT_TRUE(lx);
  ClaimItem both[] = {{g, ClaimMode::exclusive}, {l, ClaimMode::exclusive}};
  Waiter w;
  auto r = a.claim(ClaimRequest{ClaimantId{2}, Priority{0}, both, 10s}, w.callback());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, ClaimStatus::queued);
  // Nothing is held while waiting: the gpu is free. (An equal-priority
  // newcomer would queue behind the waiter; a more important one goes.)
  EXPECT_EQ(a.stats().held_by_kind[static_cast<std::size_t>(ResourceKind::gpu)], 0u);
  EXPECT_FALSE(claim(a, 3, g, ClaimMode::exclusive, 0));
  auto g3 = claim(a, 3, g, ClaimMode::exclusive, 1);
  ASSERT_TRUE(g3);
  ASSERT_TRUE(a.release(lx->claim));
  EXPECT_FALSE(w.grant);
  ASSERT_TRUE(a.release(g3->claim));
  ASSERT_TRUE(w.grant);
  EXPECT_FALSE(claim(a, 4, l, ClaimMode::shared));
  ASSERT_TRUE(a.release(w.grant->claim));
  EXPECT_TRUE(claim(a, 4, l, ClaimMode::shared));
  EXPECT_TRUE(claim(a, 4, g, ClaimMode::shared));
}

TEST_F(ArbiterTest, RejectsMalformedRequests) {
  Arbiter a(no_aging());
  ResourceKey p = key(a, "path:/a"), q = key(a, "path:/a/b");
  ClaimItem overlapping[] = {{p, ClaimMode::shared}, {q, ClaimMode::shared}};
  auto r = a.claim(ClaimRequest{ClaimantId{1}, Priority{0}, overlapping, 0ms});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EINVAL);
  EXPECT_NE(r.error().message().find("overlapping resources path:/a and path:/a/b"), std::string::npos);
  EXPECT_FALSE(a.claim(ClaimRequest{ClaimantId{1}, Priority{0}, {}, 0ms}));
  ClaimItem unknown{ResourceKey{9999}, ClaimMode::shared};
  auto u = a.claim(ClaimRequest{ClaimantId{1}, Priority{0}, std::span(&unknown, 1), 0ms});
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().code(), EINVAL);
  std::vector<ClaimItem> many;
  for (int i = 0; i < 9; ++i) many.push_back({key(a, "lock:" + std::to_string(i)), ClaimMode::shared});
  EXPECT_FALSE(a.claim(ClaimRequest{ClaimantId{1}, Priority{0}, many, 0ms}));
}

TEST_F(ArbiterTest, CallbacksMayCallBackIn) {
  Arbiter a(no_aging());
  ResourceKey r = key(a, "lock:l");
  auto h = claim(a, 1, r, ClaimMode::exclusive);
  ASSERT_TRUE(h);
  bool released = false;
  ASSERT_TRUE(claim(a, 2, r, ClaimMode::exclusive, 0, 10s, [&](Result<ClaimGrant> g) {
    ASSERT_TRUE(g);
    released = static_cast<bool>(a.release(g->claim));  // re-enters the arbiter
  }));
  ASSERT_TRUE(a.release(h->claim));
  EXPECT_TRUE(released);
  EXPECT_EQ(a.stats().claims_held, 0u);
}

TEST_F(ArbiterTest, StatsCountByKind) {
  ArbiterOptions o = no_aging();
  Arbiter a(o);
  ASSERT_TRUE(claim(a, 1, key(a, "gpu:0"), ClaimMode::exclusive));
  ASSERT_TRUE(claim(a, 1, key(a, "path:/w"), ClaimMode::shared));
  ASSERT_TRUE(claim(a, 2, key(a, "path:/w/x"), ClaimMode::shared));
  ASSERT_TRUE(claim(a, 3, key(a, "gpu:0"), ClaimMode::shared, 0, 10s));
  ArbiterStats s = a.stats();
  EXPECT_EQ(s.claims_held, 3u);
  EXPECT_EQ(s.held_by_kind[static_cast<std::size_t>(ResourceKind::gpu)], 1u);
  EXPECT_EQ(s.held_by_kind[static_cast<std::size_t>(ResourceKind::path)], 2u);
  EXPECT_EQ(s.queued_by_kind[static_cast<std::size_t>(ResourceKind::gpu)], 1u);
  EXPECT_EQ(s.requests_queued, 1u);
  EXPECT_EQ(s.granted_immediately, 3u);
}

// Many threads contend on a few locks; exclusivity must hold throughout.
TEST_F(ArbiterTest, ExclusiveHoldsUnderThreads) {
  Arbiter a(no_aging());
  constexpr int kLocks = 4;
  std::vector<ResourceKey> locks;
  for (int i = 0; i < kLocks; ++i) locks.push_back(key(a, "lock:" + std::to_string(i)));
  std::atomic<int> inside[kLocks] = {};
  std::atomic<bool> broken{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      for (int i = 0; i < 20000; ++i) {
        int l = static_cast<int>(rng() % kLocks);
        ClaimItem item{locks[static_cast<std::size_t>(l)], ClaimMode::exclusive};
        auto r = a.claim(ClaimRequest{ClaimantId{static_cast<std::uint64_t>(t + 1)}, Priority{0}, std::span(&item, 1), 0ms});
        if (!r) continue;
        if (inside[l].fetch_add(1) != 0) broken = true;
        inside[l].fetch_sub(1);
        if (!a.release(r->claim)) broken = true;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(broken);
  EXPECT_EQ(a.stats().claims_held, 0u);
}

}  // namespace
}  // namespace symphony::pit
