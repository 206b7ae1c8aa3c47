// The pool manager (pool.h; policies in docs/pit/pool.md). The fast path is
// try_acquire()/release_slot(): one CAS on a slot's packed state word
// (state | refcount | generation) and a relaxed fetch_add on the use
// sequence. Everything that loads, unloads, evicts, learns or queues runs
// under mu_, which is dropped around every Loader call.
#include "pit/pool/pool.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>

namespace symphony::pit::pool {

namespace {

// Slot word: bits 0-7 state, 8-31 reference count, 32-63 generation (bumped
// on every load, so a health verdict about an old instance is recognised).
constexpr int kRefShift = 8;
constexpr std::uint64_t kRefMask = 0xffffff;
constexpr int kGenShift = 32;
constexpr std::uint32_t kMaxUsers = kRefMask;

constexpr std::uint64_t pack(InstanceState s, std::uint64_t refs, std::uint64_t gen) {
  return static_cast<std::uint64_t>(s) | (refs << kRefShift) | (gen << kGenShift);
}
constexpr InstanceState state_of(std::uint64_t w) { return static_cast<InstanceState>(w & 0xff); }
constexpr std::uint32_t refs_of(std::uint64_t w) {
  return static_cast<std::uint32_t>((w >> kRefShift) & kRefMask);
}
constexpr std::uint32_t gen_of(std::uint64_t w) { return static_cast<std::uint32_t>(w >> kGenShift); }

constexpr bool serves(InstanceState s) {
  return s == InstanceState::ready || s == InstanceState::cooling || s == InstanceState::in_use;
}
constexpr bool idle(InstanceState s) {
  return s == InstanceState::ready || s == InstanceState::cooling;
}

// History ring entry: 24-bit sequence tag | 20-bit stream | 20-bit model.
constexpr std::size_t kHistorySize = 4096;
constexpr std::uint64_t kField = 0xfffff;
constexpr std::uint64_t kTagMask = 0xffffff;
constexpr std::uint64_t pack_history(std::uint64_t seq, std::uint32_t stream, std::uint32_t model) {
  return ((seq & kTagMask) << 40) | ((stream & kField) << 20) | (model & kField);
}

std::string human(std::uint64_t bytes) {
  constexpr double kKiB = 1024.0, kMiB = kKiB * 1024, kGiB = kMiB * 1024;
  double b = static_cast<double>(bytes);
  if (b >= kGiB) return fmt::format("{:.2f} GiB", b / kGiB);
  if (b >= kMiB) return fmt::format("{:.1f} MiB", b / kMiB);
  if (b >= kKiB) return fmt::format("{:.1f} KiB", b / kKiB);
  return fmt::format("{} B", bytes);
}

}  // namespace

std::chrono::milliseconds Pool::backoff_after(std::uint32_t failures) const {
  // initial, 2×initial, 4×initial, … capped at max.
  auto delay = config_.backoff.initial;
  for (std::uint32_t i = 1; i < failures && delay < config_.backoff.max; ++i) delay *= 2;
  return std::min(delay, config_.backoff.max);
}

struct alignas(64) Pool::Slot {
  // Fast path: one cache line.
  std::atomic<std::uint64_t> word{pack(InstanceState::unloaded, 0, 0)};
  std::atomic<std::uint64_t> last_used{0};  // use sequence of the latest acquire
  std::atomic<std::uint64_t> instance{0};   // InstanceId, valid while serving
  std::atomic<bool> prewarmed{false};       // loaded speculatively and not used yet
  // Guarded by mu_.
  std::uint64_t held = 0;  // bytes charged to the device for this instance
  bool has_instance = false;  // the loader holds something to unload
  bool reload_wanted = false;  // it was serving when it failed: check_health brings it back
  std::uint32_t failures = 0;
  Clock::time_point retry_at{};
  std::string last_error;
};

struct Pool::Model {
  Model(ModelSpec s, std::uint32_t i, std::uint32_t dev, const std::vector<std::uint32_t>& weights)
      : spec(std::move(s)),
        id(i),
        device(dev),
        max_users(spec.max_users_per_instance),
        slot_count(spec.max_instances),
        slots(std::make_unique<Slot[]>(spec.max_instances)),
        expected_bytes(spec.expected_memory.value),
        queues(weights.size()),
        drr(weights) {}

  alignas(64) std::atomic<std::uint32_t> waiters{0};  // queued allocations: the fast path defers to them
  const ModelSpec spec;
  const std::uint32_t id;
  const std::uint32_t device;
  const std::uint32_t max_users;
  const std::uint32_t slot_count;
  const std::unique_ptr<Slot[]> slots;
  // Guarded by mu_.
  bool pinned = false;
  std::uint64_t expected_bytes;  // the last measured size, for the next reservation
  std::vector<std::deque<Waiter*>> queues;  // per priority class
  DeficitRoundRobin drr;

  // Some instance is loading, loaded or on its way down (not unloaded or failed).
  bool has_live_instance() const {
    for (std::uint32_t k = 0; k < slot_count; ++k) {
      InstanceState st = state_of(slots[k].word.load());
      if (st != InstanceState::unloaded && st != InstanceState::failed) return true;
    }
    return false;
  }
};

struct Pool::Device {
  std::string name;
  std::uint64_t budget = 0;
  // Guarded by mu_.
  std::uint64_t held = 0;          // Σ Slot::held of the device's instances
  std::uint64_t reserved = 0;      // for loads in flight
  std::uint64_t pending_free = 0;  // held by instances being unloaded
  std::uint64_t unreclaimed = 0;   // claimed by unloaded instances but not freed (measured)
  // Serializes memory-changing loader calls so measurements are attributable.
  std::mutex io;

  std::int64_t available() const {
    return static_cast<std::int64_t>(budget) - static_cast<std::int64_t>(held + reserved + unreclaimed) +
           static_cast<std::int64_t>(pending_free);
  }
};

struct Pool::Waiter {
  enum class Outcome { waiting, granted, retry, failed };
  std::size_t cls = 0;
  Outcome outcome = Outcome::waiting;
  std::uint32_t slot = 0;
  std::optional<Error> error;
  std::condition_variable cv;
};

// ---------------------------------------------------------------------------
// Construction and registry

Result<std::unique_ptr<Pool>> Pool::create(PoolConfig config, Loader& loader) {
  if (config.devices.empty()) return Error::invalid("pool: no devices configured");
  for (std::size_t i = 0; i < config.devices.size(); ++i) {
    if (config.devices[i].name.empty()) return Error::invalid("pool: device with an empty name");
    for (std::size_t j = 0; j < i; ++j)
      if (config.devices[j].name == config.devices[i].name)
        return Error::invalid("pool: device '" + config.devices[i].name + "' configured twice");
  }
  if (config.classes.empty() || config.classes.size() > 255)
    return Error::invalid("pool: between 1 and 255 priority classes are needed");
  for (const auto& c : config.classes)
    if (c.weight == 0) return Error::invalid("pool: class '" + c.name + "' has weight 0 (>= 1 needed)");
  if (config.max_models == 0 || config.max_models > kField)
    return Error::invalid("pool: max_models must be in 1..1048575");
  if (!(config.prediction.decay > 0 && config.prediction.decay <= 1))
    return Error::invalid("pool: prediction decay must be in (0, 1]");
  if (!config.clock) return Error::invalid("pool: no clock");
  return std::unique_ptr<Pool>(new Pool(std::move(config), loader));
}

Pool::Pool(PoolConfig config, Loader& loader)
    : config_(std::move(config)),
      loader_(loader),
      history_(std::make_unique<std::atomic<std::uint64_t>[]>(kHistorySize)),
      models_(std::make_unique<std::unique_ptr<Model>[]>(config_.max_models)),
      transitions_(config_.prediction.decay) {
  for (const auto& d : config_.devices) {
    auto dev = std::make_unique<Device>();
    dev->name = d.name;
    dev->budget = d.budget.value;
    devices_.push_back(std::move(dev));
  }
}

Pool::~Pool() {
  // The pool owns what it loaded: give it back. Leases and waiters must be
  // gone by now (documented in pool.h).
  std::uint32_t n = model_count_.load(std::memory_order_acquire);
  for (std::uint32_t i = 0; i < n; ++i) {
    Model& m = *models_[i];
    for (std::uint32_t k = 0; k < m.slot_count; ++k) {
      Slot& s = m.slots[k];
      if (!s.has_instance) continue;
      if (auto r = loader_.unload(InstanceId{s.instance.load()}); !r)
        spdlog::warn("pool: unloading {} at shutdown: {}", instance_name(m, k), r.error().message());
    }
  }
}

Result<ModelId> Pool::add_model(ModelSpec spec) {
  if (spec.name.empty()) return Error::invalid("pool: model with an empty name");
  if (spec.max_instances == 0 || spec.max_instances > 256)
    return Error::invalid("pool: model '" + spec.name + "': max_instances must be in 1..256");
  if (spec.max_users_per_instance == 0 || spec.max_users_per_instance > kMaxUsers)
    return Error::invalid("pool: model '" + spec.name + "': max_users_per_instance must be >= 1");
  std::lock_guard lk(mu_);
  std::uint32_t device = 0;
  while (device < devices_.size() && devices_[device]->name != spec.device) ++device;
  if (device == devices_.size())
    return Error::invalid("pool: model '" + spec.name + "': unknown device '" + spec.device + "'");
  if (model_names_.contains(spec.name))
    return Error::invalid("pool: model '" + spec.name + "' is already registered");
  std::uint32_t id = model_count_.load(std::memory_order_relaxed);
  if (id >= config_.max_models)
    return Error::described(ENOSPC, fmt::format("pool: model table full ({} models)", config_.max_models));
  std::vector<std::uint32_t> weights;
  for (const auto& c : config_.classes) weights.push_back(c.weight);
  model_names_.emplace(spec.name, id);
  models_[id] = std::make_unique<Model>(std::move(spec), id, device, weights);
  model_count_.store(id + 1, std::memory_order_release);  // publishes models_[id]
  return ModelId{id};
}

std::optional<ModelId> Pool::find(std::string_view name) const {
  std::lock_guard lk(mu_);
  auto it = model_names_.find(std::string(name));
  if (it == model_names_.end()) return std::nullopt;
  return ModelId{it->second};
}

const ModelSpec* Pool::spec(ModelId model) const {
  Model* m = model_at(model.value);
  return m ? &m->spec : nullptr;
}

Pool::Model* Pool::model_at(std::uint32_t id) const {
  if (id >= model_count_.load(std::memory_order_acquire)) return nullptr;
  return models_[id].get();
}

std::string Pool::instance_name(const Model& m, std::uint32_t slot) const {
  return m.spec.name + "#" + std::to_string(slot);
}

// ---------------------------------------------------------------------------
// Fast path

InstanceId Lease::instance() const {
  return InstanceId{pool_->models_[model_]->slots[slot_].instance.load(std::memory_order_relaxed)};
}

void Lease::reset() {
  if (pool_ == nullptr) return;
  pool_->release_slot(model_, slot_);
  pool_ = nullptr;
}

bool Pool::try_acquire(Model& m, std::uint32_t& slot_out) {
  for (std::uint32_t i = 0; i < m.slot_count; ++i) {
    Slot& s = m.slots[i];
    // seq_cst (a plain load/lock cmpxchg on x86): pairs with the waiter
    // count so a release and a newly queued waiter cannot miss each other.
    std::uint64_t w = s.word.load();
    while (serves(state_of(w)) && refs_of(w) < m.max_users) {
      if (s.word.compare_exchange_weak(w, pack(InstanceState::in_use, refs_of(w) + 1, gen_of(w)))) {
        slot_out = i;
        return true;
      }
    }
  }
  return false;
}

void Pool::note_use(Model& m, Slot& s, std::uint32_t stream) {
  // The sequence is both the recency stamp (LRU) and the history index.
  std::uint64_t seq = seq_.fetch_add(1, std::memory_order_relaxed);
  s.last_used.store(seq, std::memory_order_relaxed);
  if (config_.prediction.enabled)
    history_[seq & (kHistorySize - 1)].store(pack_history(seq, stream, m.id), std::memory_order_release);
  if (s.prewarmed.load(std::memory_order_relaxed) && s.prewarmed.exchange(false))
    prewarm_hits_.fetch_add(1, std::memory_order_relaxed);
}

Result<Lease> Pool::allocate(ModelId id, const Request& request) {
  Model* m = model_at(id.value);
  if (m == nullptr) return Error::invalid(fmt::format("pool: unknown model id {}", id.value));
  if (request.priority.value >= config_.classes.size())
    return Error::invalid(fmt::format("pool: unknown priority class {}", request.priority.value));
  std::uint32_t slot = 0;
  if (m->waiters.load() == 0 && try_acquire(*m, slot)) {
    note_use(*m, m->slots[slot], request.stream);
    return Lease(this, id.value, slot);
  }
  return allocate_slow(*m, request);
}

Result<Lease> Pool::allocate(std::string_view model, const Request& request) {
  auto id = find(model);
  if (!id) return Error::invalid("pool: unknown model '" + std::string(model) + "'");
  return allocate(*id, request);
}

void Pool::release_slot(std::uint32_t model, std::uint32_t slot) {
  Model& m = *models_[model];
  Slot& s = m.slots[slot];
  std::uint64_t w = s.word.load(std::memory_order_relaxed);
  for (;;) {
    assert(refs_of(w) > 0);
    InstanceState st = state_of(w);
    std::uint32_t refs = refs_of(w) - 1;
    // The last user of a healthy instance turns it cooling; a failed one
    // stays failed (check_health reloads it once nobody holds it).
    std::uint64_t next = (st == InstanceState::in_use && refs == 0)
                             ? pack(InstanceState::cooling, 0, gen_of(w))
                             : pack(st, refs, gen_of(w));
    if (s.word.compare_exchange_weak(w, next)) break;
  }
  if (m.waiters.load() > 0) {
    std::lock_guard lk(mu_);
    dispatch_locked(m);
  }
}

// ---------------------------------------------------------------------------
// Slow path: misses, queueing, loading

std::optional<std::uint32_t> Pool::free_slot_locked(Model& m, Clock::time_point now) const {
  for (std::uint32_t i = 0; i < m.slot_count; ++i)
    if (state_of(m.slots[i].word.load()) == InstanceState::unloaded) return i;
  for (std::uint32_t i = 0; i < m.slot_count; ++i) {
    std::uint64_t w = m.slots[i].word.load();
    if (state_of(w) == InstanceState::failed && refs_of(w) == 0 && now >= m.slots[i].retry_at) return i;
  }
  return std::nullopt;
}

Result<Lease> Pool::allocate_slow(Model& m, const Request& request) {
  std::unique_lock lk(mu_);
  drain_history_locked();
  const auto deadline = Clock::now() + request.wait;
  const std::size_t cls = request.priority.value;
  bool counted = false;
  for (;;) {
    bool queue_empty = m.waiters.load() == 0;
    std::uint32_t slot = 0;
    if (queue_empty && try_acquire(m, slot)) {
      if (counted) ++miss_served_;
      note_use(m, m.slots[slot], request.stream);
      return Lease(this, m.id, slot);
    }
    if (!counted) {
      ++misses_;
      counted = true;
    }
    const auto now = config_.clock();
    if (auto free = free_slot_locked(m, now)) {
      auto loaded = load_locked(lk, m, LoadKind::demand, *free, 0);
      if (!loaded) return std::move(loaded).error();
      ++miss_served_;
      note_use(m, m.slots[*loaded], request.stream);
      return Lease(this, m.id, *loaded);
    }
    // No slot to load into: wait for a busy instance, unless every instance
    // is failed and in backoff, which the caller should hear about now.
    bool any_live = false;
    const Slot* failed = nullptr;
    for (std::uint32_t i = 0; i < m.slot_count; ++i) {
      InstanceState st = state_of(m.slots[i].word.load());
      if (st == InstanceState::failed) {
        if (refs_of(m.slots[i].word.load()) > 0) any_live = true;  // held: freed on release
        if (!failed || m.slots[i].retry_at < failed->retry_at) failed = &m.slots[i];
      } else {
        any_live = true;
      }
    }
    if (!any_live && failed != nullptr) {
      auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(failed->retry_at - now);
      return Error::described(EAGAIN, fmt::format("pool: model '{}' has no working instance ({}); next "
                                                  "retry in {} ms",
                                                  m.spec.name, failed->last_error, wait_ms.count()));
    }
    Waiter me;
    me.cls = cls;
    m.queues[cls].push_back(&me);
    m.waiters.fetch_add(1);
    ++waits_;
    dispatch_locked(m);  // an instance may have come free since try_acquire
    while (me.outcome == Waiter::Outcome::waiting) {
      if (me.cv.wait_until(lk, deadline) == std::cv_status::timeout &&
          me.outcome == Waiter::Outcome::waiting) {
        auto& q = m.queues[cls];
        q.erase(std::find(q.begin(), q.end(), &me));
        m.waiters.fetch_sub(1);
        return Error::described(ETIMEDOUT,
                                fmt::format("pool: model '{}': no instance free after {} ms ({} "
                                            "instances, all busy; {} allocations still waiting)",
                                            m.spec.name, request.wait.count(), m.slot_count,
                                            m.waiters.load()));
      }
    }
    switch (me.outcome) {
      case Waiter::Outcome::granted:
        ++miss_served_;
        note_use(m, m.slots[me.slot], request.stream);
        return Lease(this, m.id, me.slot);
      case Waiter::Outcome::failed:
        return std::move(*me.error);
      case Waiter::Outcome::retry:
      case Waiter::Outcome::waiting:
        break;  // an instance slot came free: go round and load into it
    }
  }
}

void Pool::dispatch_locked(Model& m) {
  std::array<std::size_t, 256> backlog{};
  const std::size_t classes = m.queues.size();
  while (m.waiters.load() > 0) {
    for (std::size_t c = 0; c < classes; ++c) backlog[c] = m.queues[c].size();
    std::uint32_t slot = 0;
    Waiter::Outcome outcome;
    if (try_acquire(m, slot)) {
      outcome = Waiter::Outcome::granted;
    } else if (free_slot_locked(m, config_.clock())) {
      outcome = Waiter::Outcome::retry;
    } else {
      return;
    }
    std::size_t c = m.drr.next(std::span<const std::size_t>(backlog.data(), classes));
    Waiter* w = m.queues[c].front();
    m.queues[c].pop_front();
    m.waiters.fetch_sub(1);
    w->outcome = outcome;
    w->slot = slot;
    w->cv.notify_one();
    // One retry at a time: the woken waiter loads, and the load's
    // completion dispatches again.
    if (outcome == Waiter::Outcome::retry) return;
  }
}

void Pool::fail_waiters_locked(Model& m, const Error& error) {
  for (auto& q : m.queues) {
    for (Waiter* w : q) {
      w->outcome = Waiter::Outcome::failed;
      w->error = error;
      w->cv.notify_one();
      m.waiters.fetch_sub(1);
    }
    q.clear();
  }
}

Result<void> Pool::set_state(Model& m, std::uint32_t slot, InstanceState to) {
  Slot& s = m.slots[slot];
  std::uint64_t w = s.word.load();
  for (;;) {
    InstanceState from = state_of(w);
    if (auto legal = check_transition(instance_name(m, slot), from, to); !legal) {
      spdlog::error("pool: {}", legal.error().message());
      return legal;
    }
    std::uint32_t gen = gen_of(w) + (to == InstanceState::loading ? 1 : 0);
    std::uint32_t refs = (to == InstanceState::failed || to == InstanceState::in_use) ? refs_of(w) : 0;
    if (s.word.compare_exchange_weak(w, pack(to, refs, gen))) return ok();
  }
}

Result<std::vector<Pool::Victim>> Pool::choose_victims(Device& d, std::uint64_t need,
                                                       const Model& target, LoadKind kind,
                                                       double target_p) {
  std::int64_t avail = d.available();
  if (static_cast<std::int64_t>(need) <= avail) return std::vector<Victim>{};
  struct Candidate {
    Victim v;
    int bucket;  // predicted reuse, quantised: 0 (unlikely) .. 3 (very likely)
    double p;
    std::uint64_t last_used;
    std::uint64_t held;
  };
  std::vector<Candidate> candidates;
  std::uint32_t n = model_count_.load(std::memory_order_acquire);
  for (std::uint32_t i = 0; i < n; ++i) {
    Model& mm = *models_[i];
    if (devices_[mm.device].get() != &d || mm.pinned || &mm == &target) continue;
    double p = reuse_probability_locked(mm.id);
    if (kind == LoadKind::predicted && p >= target_p) continue;  // never trade a likelier model
    for (std::uint32_t k = 0; k < mm.slot_count; ++k) {
      std::uint64_t w = mm.slots[k].word.load();
      if (!idle(state_of(w)) || refs_of(w) != 0) continue;
      candidates.push_back({{mm.id, k}, std::min(3, static_cast<int>(p * 4)), p,
                            mm.slots[k].last_used.load(std::memory_order_relaxed), mm.slots[k].held});
    }
  }
  // Policy: least likely to be reused next first (quantised prediction),
  // then least recently used, then largest. Without prediction: LRU, largest.
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    if (a.bucket != b.bucket) return a.bucket < b.bucket;
    if (a.last_used != b.last_used) return a.last_used < b.last_used;
    return a.held > b.held;
  });
  std::vector<Victim> victims;
  for (const auto& c : candidates) {
    if (static_cast<std::int64_t>(need) <= avail) break;
    victims.push_back(c.v);
    avail += static_cast<std::int64_t>(c.held);
  }
  if (static_cast<std::int64_t>(need) > avail)
    return Error::described(ENOSPC, budget_error_locked(d, need, target));
  return victims;
}

std::string Pool::budget_error_locked(const Device& d, std::uint64_t need, const Model& target) const {
  std::string held;
  std::uint32_t n = model_count_.load(std::memory_order_acquire);
  for (std::uint32_t i = 0; i < n; ++i) {
    const Model& mm = *models_[i];
    if (devices_[mm.device].get() != &d) continue;
    for (std::uint32_t k = 0; k < mm.slot_count; ++k) {
      const Slot& s = mm.slots[k];
      if (s.held == 0) continue;
      std::uint64_t w = s.word.load();
      held += fmt::format("{}'{}' {} ({}{}{})", held.empty() ? "" : ", ", instance_name(mm, k), human(s.held),
                          to_string(state_of(w)),
                          refs_of(w) ? fmt::format(", {} users", refs_of(w)) : std::string(),
                          mm.pinned ? ", pinned" : "");
    }
  }
  if (d.reserved) held += fmt::format("{}{} reserved by loads in flight", held.empty() ? "" : ", ", human(d.reserved));
  if (d.unreclaimed)
    held += fmt::format("{}{} not freed by earlier unloads (measured)", held.empty() ? "" : ", ",
                        human(d.unreclaimed));
  std::int64_t avail = std::max<std::int64_t>(0, d.available());
  return fmt::format("pool: model '{}' needs {} on device '{}' but only {} of its {} budget can be "
                     "freed or is free; held: {}",
                     target.spec.name, human(need), d.name, human(static_cast<std::uint64_t>(avail)),
                     human(d.budget), held.empty() ? "nothing" : held);
}

void Pool::unload_victim(std::unique_lock<std::mutex>& lk, Victim v) {
  // Called with lk locked and the slot already unloading; returns locked.
  Model& m = *models_[v.model];
  Slot& s = m.slots[v.slot];
  Device& d = *devices_[m.device];
  InstanceId id{s.instance.load()};
  lk.unlock();
  std::optional<std::uint64_t> freed;
  Result<void> result = ok();
  {
    std::lock_guard io(d.io);
    auto before = loader_.measure_memory(d.name);
    result = loader_.unload(id);
    auto after = loader_.measure_memory(d.name);
    if (before && after)
      freed = before->value > after->value ? before->value - after->value : 0;
    else
      spdlog::warn("pool: could not measure {} around unloading {}; assuming it freed what it held",
                   d.name, instance_name(m, v.slot));
  }
  lk.lock();
  const std::uint64_t h = s.held;
  d.pending_free -= h;
  d.held -= h;
  // The accounting follows the measurement: what the instance claimed but
  // did not give back stays charged to the device.
  if (freed) {
    if (*freed < h)
      d.unreclaimed += h - *freed;
    else
      d.unreclaimed -= std::min(d.unreclaimed, *freed - h);
  }
  s.held = 0;
  s.has_instance = false;
  s.prewarmed.store(false, std::memory_order_relaxed);
  if (!result) {
    spdlog::warn("pool: unloading {}: {}", instance_name(m, v.slot), result.error().message());
    s.last_error = "unload: " + result.error().message();
    (void)set_state(m, v.slot, InstanceState::failed);
  } else {
    (void)set_state(m, v.slot, InstanceState::unloaded);
  }
  dispatch_locked(m);  // its waiters, if any, may now load into the slot
}

Result<std::uint32_t> Pool::load_locked(std::unique_lock<std::mutex>& lk, Model& m, LoadKind kind,
                                        std::optional<std::uint32_t> slot_hint, double predicted_p) {
  const std::uint32_t idx = *slot_hint;
  Slot& s = m.slots[idx];
  Device& d = *devices_[m.device];
  const std::uint64_t need = m.expected_bytes;

  // A failed slot still holding a broken instance is unloaded first; its
  // memory counts as being freed while victims are chosen.
  const bool self_unload = state_of(s.word.load()) == InstanceState::failed && s.has_instance;
  if (self_unload) d.pending_free += s.held;

  // Choose victims and claim them (idle → unloading); a victim that a
  // lock-free hit grabbed in the meantime is skipped and the choice made
  // again. The target slot changes state only once the plan stands, so a
  // failed plan leaves it as it was.
  std::vector<Victim> to_unload;
  for (;;) {
    auto victims = choose_victims(d, need, m, kind, predicted_p);
    if (!victims) {
      if (self_unload) d.pending_free -= s.held;
      for (Victim v : to_unload) {
        unload_victim(lk, v);
        ++evictions_;
      }
      return std::move(victims).error();
    }
    bool all = true;
    for (Victim v : *victims) {
      Slot& vs = models_[v.model]->slots[v.slot];
      std::uint64_t w = vs.word.load();
      if (idle(state_of(w)) && refs_of(w) == 0 &&
          vs.word.compare_exchange_strong(w, pack(InstanceState::unloading, 0, gen_of(w)))) {
        d.pending_free += vs.held;
        to_unload.push_back(v);
      } else {
        all = false;
      }
    }
    if (all) break;
  }
  if (auto r = set_state(m, idx, self_unload ? InstanceState::unloading : InstanceState::loading); !r) {
    if (self_unload) d.pending_free -= s.held;
    for (Victim v : to_unload) unload_victim(lk, v);
    return r.error();
  }
  d.reserved += need;
  for (Victim v : to_unload) {
    unload_victim(lk, v);
    ++evictions_;
  }
  if (self_unload) {
    unload_victim(lk, {m.id, idx});  // → unloaded (or failed if the loader refused)
    if (auto r = set_state(m, idx, InstanceState::loading); !r) {
      d.reserved -= need;
      return r.error();
    }
  }

  lk.unlock();
  std::optional<std::uint64_t> grew;
  Result<Loaded> loaded = Error(0, "not loaded");
  {
    std::lock_guard io(d.io);
    auto before = loader_.measure_memory(d.name);
    loaded = loader_.load(m.spec, d.name);
    auto after = loader_.measure_memory(d.name);
    if (before && after && after->value > before->value) grew = after->value - before->value;
  }
  lk.lock();
  d.reserved -= need;
  const auto now = config_.clock();
  if (!loaded) {
    ++load_failures_;
    ++s.failures;
    s.retry_at = now + backoff_after(s.failures);
    s.last_error = fmt::format("loading {} failed: {}", instance_name(m, idx), loaded.error().message());
    s.has_instance = false;
    s.held = 0;
    (void)set_state(m, idx, InstanceState::failed);
    Error e = Error::described(loaded.error().code() ? loaded.error().code() : EIO,
                               fmt::format("pool: model '{}' on '{}': {}", m.spec.name, d.name, s.last_error));
    fail_waiters_locked(m, e);
    return e;
  }
  // Trust the larger of what the instance claims and what the device shows.
  const std::uint64_t actual = std::max(loaded->memory.value, grew.value_or(0));
  s.held = actual;
  d.held += actual;
  m.expected_bytes = actual;
  s.has_instance = true;
  s.instance.store(loaded->instance.value, std::memory_order_relaxed);
  s.failures = 0;
  s.reload_wanted = false;
  s.last_error.clear();
  s.prewarmed.store(kind == LoadKind::prewarm || kind == LoadKind::predicted, std::memory_order_relaxed);
  if (kind == LoadKind::prewarm || kind == LoadKind::predicted) ++prewarms_;
  if (kind == LoadKind::reload) ++reloads_;
  if (kind == LoadKind::demand) {
    // loading → ready → in_use in one store, claimed for the caller: the
    // slot is not visible to the fast path until it serves, so no hit can
    // slip in between and exceed max_users.
    (void)check_transition(instance_name(m, idx), InstanceState::loading, InstanceState::ready);
    (void)check_transition(instance_name(m, idx), InstanceState::ready, InstanceState::in_use);
    s.word.store(pack(InstanceState::in_use, 1, gen_of(s.word.load())));
  } else {
    (void)set_state(m, idx, InstanceState::ready);
  }
  dispatch_locked(m);
  return idx;
}

// ---------------------------------------------------------------------------
// Prewarming, pins, prediction

Result<void> Pool::prewarm(std::span<const ModelId> models) {
  std::optional<Error> first;
  std::unique_lock lk(mu_);
  for (ModelId id : models) {
    Model* m = model_at(id.value);
    if (m == nullptr) {
      if (!first) first = Error::invalid(fmt::format("pool: unknown model id {}", id.value));
      continue;
    }
    if (m->has_live_instance()) continue;
    auto free = free_slot_locked(*m, config_.clock());
    if (!free) continue;  // failed and in backoff: check_health will retry
    if (auto r = load_locked(lk, *m, LoadKind::prewarm, *free, 0); !r && !first) first = std::move(r).error();
  }
  if (first) return std::move(*first);
  return ok();
}

Result<void> Pool::pin(ModelId model) {
  Model* m = model_at(model.value);
  if (m == nullptr) return Error::invalid(fmt::format("pool: unknown model id {}", model.value));
  {
    std::lock_guard lk(mu_);
    m->pinned = true;
  }
  return prewarm(std::span<const ModelId>(&model, 1));
}

void Pool::unpin(ModelId model) {
  Model* m = model_at(model.value);
  if (m == nullptr) return;
  std::lock_guard lk(mu_);
  m->pinned = false;
}

void Pool::drain_history_locked() {
  if (!config_.prediction.enabled) return;
  const std::uint64_t end = seq_.load(std::memory_order_acquire);
  if (end - history_read_ > kHistorySize) history_read_ = end - kHistorySize;
  for (std::uint64_t q = history_read_; q < end; ++q) {
    std::uint64_t e = history_[q & (kHistorySize - 1)].load(std::memory_order_acquire);
    // A writer that has taken its sequence number but not stored yet, or an
    // entry already overwritten: the sample is dropped (learning is lossy
    // under contention, never blocking).
    if ((e >> 40) != (q & kTagMask)) continue;
    auto stream = static_cast<std::uint32_t>((e >> 20) & kField);
    auto model = static_cast<std::uint32_t>(e & kField);
    auto [it, inserted] = streams_.try_emplace(stream, model, q);
    if (!inserted) {
      transitions_.observe(it->second.first, model);
      it->second = {model, q};
    }
  }
  history_read_ = end;
  // Forget the oldest streams when there are too many to consider.
  const std::size_t limit = std::max<std::size_t>(config_.prediction.streams, 1);
  if (streams_.size() > 4 * limit) {
    std::vector<std::uint64_t> seen;
    for (const auto& [stream, last] : streams_) seen.push_back(last.second);
    std::nth_element(seen.begin(), seen.end() - limit, seen.end());
    const std::uint64_t cut = *(seen.end() - limit);
    std::erase_if(streams_, [cut](const auto& e) { return e.second.second < cut; });
  }
}

double Pool::reuse_probability_locked(std::uint32_t model) const {
  if (!config_.prediction.enabled) return 0;
  double best = 0;
  for (const auto& [stream, last] : streams_) best = std::max(best, transitions_.probability(last.first, model));
  return best;
}

std::size_t Pool::maintain() {
  std::unique_lock lk(mu_);
  drain_history_locked();
  if (!config_.prediction.enabled) return 0;
  // The most recent streams, newest first.
  std::vector<std::pair<std::uint64_t, std::uint32_t>> recent;  // (seq, last model)
  for (const auto& [stream, last] : streams_) recent.emplace_back(last.second, last.first);
  std::sort(recent.rbegin(), recent.rend());
  if (recent.size() > config_.prediction.streams) recent.resize(config_.prediction.streams);
  std::vector<Prediction> targets;
  for (const auto& [seq, last] : recent) {
    for (const Prediction& p :
         transitions_.predict(last, config_.prediction.min_probability, config_.prediction.per_stream)) {
      auto it = std::find_if(targets.begin(), targets.end(), [&](const Prediction& t) { return t.model == p.model; });
      if (it == targets.end())
        targets.push_back(p);
      else
        it->probability = std::max(it->probability, p.probability);
    }
  }
  std::sort(targets.begin(), targets.end(),
            [](const Prediction& a, const Prediction& b) { return a.probability > b.probability; });
  std::size_t started = 0;
  for (const Prediction& t : targets) {
    Model* m = model_at(t.model);
    if (m == nullptr) continue;
    if (m->has_live_instance()) continue;
    auto free = free_slot_locked(*m, config_.clock());
    if (!free) continue;
    if (load_locked(lk, *m, LoadKind::predicted, *free, t.probability)) ++started;
  }
  return started;
}

std::size_t Pool::unload_idle(const std::function<bool(ModelId, InstanceId)>& should_unload) {
  std::unique_lock lk(mu_);
  std::vector<Victim> chosen;
  std::uint32_t n = model_count_.load(std::memory_order_acquire);
  for (std::uint32_t i = 0; i < n; ++i) {
    Model& m = *models_[i];
    if (m.pinned) continue;
    for (std::uint32_t k = 0; k < m.slot_count; ++k) {
      Slot& s = m.slots[k];
      std::uint64_t w = s.word.load();
      if (!idle(state_of(w)) || refs_of(w) != 0) continue;
      if (!should_unload(ModelId{m.id}, InstanceId{s.instance.load()})) continue;
      // Claimed like an eviction victim; a lock-free hit that won the race
      // keeps the instance.
      if (!s.word.compare_exchange_strong(w, pack(InstanceState::unloading, 0, gen_of(w)))) continue;
      devices_[m.device]->pending_free += s.held;
      chosen.push_back({m.id, k});
    }
  }
  for (Victim v : chosen) unload_victim(lk, v);
  return chosen.size();
}

// ---------------------------------------------------------------------------
// Health

void Pool::check_health() {
  struct Probe {
    std::uint32_t model, slot, gen;
    InstanceId id;
  };
  std::vector<Probe> probes;
  std::unique_lock lk(mu_);
  std::uint32_t n = model_count_.load(std::memory_order_acquire);
  for (std::uint32_t i = 0; i < n; ++i) {
    Model& m = *models_[i];
    for (std::uint32_t k = 0; k < m.slot_count; ++k) {
      std::uint64_t w = m.slots[k].word.load();
      if (serves(state_of(w))) probes.push_back({i, k, gen_of(w), InstanceId{m.slots[k].instance.load()}});
    }
  }
  lk.unlock();
  std::vector<std::pair<Probe, Error>> sick;
  for (const Probe& p : probes)
    if (auto r = loader_.health(p.id); !r) sick.emplace_back(p, std::move(r).error());
  lk.lock();
  const auto now = config_.clock();
  for (auto& [p, error] : sick) {
    Model& m = *models_[p.model];
    Slot& s = m.slots[p.slot];
    std::uint64_t w = s.word.load();
    bool marked = false;
    // Only the instance that was probed: a reload in the meantime bumped
    // the generation. Users keep their references until they release.
    while (gen_of(w) == p.gen && serves(state_of(w))) {
      if (s.word.compare_exchange_weak(w, pack(InstanceState::failed, refs_of(w), gen_of(w)))) {
        marked = true;
        break;
      }
    }
    if (!marked) continue;
    ++health_failures_;
    ++s.failures;
    s.reload_wanted = true;
    s.retry_at = now + backoff_after(s.failures);
    s.last_error = fmt::format("health check of {} failed: {}", instance_name(m, p.slot), error.message());
    s.prewarmed.store(false, std::memory_order_relaxed);
    spdlog::warn("pool: {}", s.last_error);
    fail_waiters_locked(m, Error::described(error.code() ? error.code() : EIO,
                                            fmt::format("pool: model '{}': {}", m.spec.name, s.last_error)));
  }
  // Reload failed instances whose backoff has expired and that nobody holds:
  // those that were running (health failures), and any of a pinned model or
  // one with waiters. A failed demand load is retried by the next allocate.
  for (std::uint32_t i = 0; i < n; ++i) {
    Model& m = *models_[i];
    for (std::uint32_t k = 0; k < m.slot_count; ++k) {
      Slot& s = m.slots[k];
      std::uint64_t w = s.word.load();
      if (state_of(w) != InstanceState::failed || refs_of(w) != 0 || now < s.retry_at) continue;
      if (!s.reload_wanted && !m.pinned && m.waiters.load() == 0) continue;
      if (auto r = load_locked(lk, m, LoadKind::reload, k, 0); !r)
        spdlog::warn("pool: reloading {}: {}", instance_name(m, k), r.error().message());
    }
  }
}

PoolStats Pool::stats() const {
  PoolStats out;
  std::lock_guard lk(mu_);
  std::uint32_t n = model_count_.load(std::memory_order_acquire);
  for (const auto& c : config_.classes) out.queued.emplace_back(c.name, 0);
  for (std::uint32_t i = 0; i < n; ++i) {
    const Model& m = *models_[i];
    for (std::uint32_t k = 0; k < m.slot_count; ++k) {
      ++out.instances[static_cast<std::size_t>(state_of(m.slots[k].word.load()))];
    }
    for (std::size_t c = 0; c < m.queues.size(); ++c) out.queued[c].second += m.queues[c].size();
  }
  // Every lease handed out took one use sequence number; those that were
  // not misses were hits. (Saves a counter update on the fast path.)
  out.hits = seq_.load() - 1 - miss_served_;
  out.misses = misses_;
  out.waits = waits_;
  out.evictions = evictions_;
  out.prewarms = prewarms_;
  out.prewarm_hits = prewarm_hits_.load(std::memory_order_relaxed);
  out.load_failures = load_failures_;
  out.health_failures = health_failures_;
  out.reloads = reloads_;
  for (const auto& d : devices_)
    out.devices.push_back({d->name, Bytes{d->budget}, Bytes{d->held}, Bytes{d->unreclaimed}});
  return out;
}

}  // namespace symphony::pit::pool
