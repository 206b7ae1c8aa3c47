// The pool manager: keeps model instances loaded within per-device memory
// budgets, hands them out as leases, evicts idle ones by a documented policy,
// prewarms what allocation history predicts, checks health and reloads with
// backoff, and splits contended instances between priority classes by
// weight. docs/pit/pool.md has the state table and the policies.
//
// Threading: every method is thread-safe. allocate() on a model with a
// ready/cooling/in_use instance that has room, and Lease release, are
// lock-free (a CAS on the instance's state word plus a relaxed sequence
// counter); everything else takes the pool's mutex, which is never held
// across a Loader call. Loads run synchronously in the thread that needs them
// (allocate's caller on a miss, maintain() for prediction, check_health() for
// reloads); the daemon calls those from worker threads, not its event loop.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "pit/pool/fair_share.h"
#include "pit/pool/instance_state.h"
#include "pit/pool/loader.h"
#include "pit/pool/transition_model.h"

namespace symphony::pit::pool {

using Clock = std::chrono::steady_clock;

// Index of a registered model (Pool::add_model); stable for the pool's life.
struct ModelId {
  std::uint32_t value = 0;
  friend bool operator==(ModelId, ModelId) = default;
};

// Index into PoolConfig::classes.
struct PriorityClass {
  std::uint8_t value = 0;
};

struct DeviceBudget {
  std::string name;  // "host", "gpu0", …
  Bytes budget;
};

struct ClassWeight {
  std::string name;  // "interactive"
  std::uint32_t weight = 1;  // >= 1
};

struct PredictionConfig {
  bool enabled = true;
  double decay = 0.9;              // TransitionModel decay per observation
  double min_probability = 0.3;    // prewarm only successors at least this likely
  std::uint32_t per_stream = 1;    // successors prewarmed per stream and maintain()
  std::uint32_t streams = 64;      // most recent streams whose successors are prewarmed
};

struct BackoffConfig {
  std::chrono::milliseconds initial{1000};
  std::chrono::milliseconds max{60'000};
};

struct PoolConfig {
  std::vector<DeviceBudget> devices;  // at least one
  // Priority classes, highest first; Request::priority indexes this.
  std::vector<ClassWeight> classes = {{"interactive", 4}, {"batch", 1}};
  PredictionConfig prediction;
  BackoffConfig backoff;
  std::uint32_t max_models = 4096;  // capacity of the model table (<= 2^20)
  // Time source for backoff and wait deadlines; tests inject a fake one.
  std::function<Clock::time_point()> clock = [] { return Clock::now(); };
};

struct Request {
  PriorityClass priority{0};
  // The workflow or session making the request. Prediction learns
  // transitions per stream, so interleaved workflows do not blur each other.
  std::uint32_t stream = 0;
  // How long to wait when every instance is busy and no more may be loaded.
  std::chrono::milliseconds wait{60'000};
};

class Pool;

// A claim on one instance of a model. Releases on destruction (or reset()).
// Move-only; the pool must outlive its leases.
class Lease {
 public:
  Lease() = default;
  Lease(Lease&& other) noexcept { swap(other); }
  Lease& operator=(Lease&& other) noexcept {
    if (this != &other) {
      reset();
      swap(other);
    }
    return *this;
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease() { reset(); }

  explicit operator bool() const { return pool_ != nullptr; }
  void reset();

  ModelId model() const { return ModelId{model_}; }
  std::uint32_t slot() const { return slot_; }  // which instance of the model
  InstanceId instance() const;                   // the loader's handle

 private:
  friend class Pool;
  Lease(Pool* pool, std::uint32_t model, std::uint32_t slot)
      : pool_(pool), model_(model), slot_(slot) {}
  void swap(Lease& other) noexcept {
    std::swap(pool_, other.pool_);
    std::swap(model_, other.model_);
    std::swap(slot_, other.slot_);
  }

  Pool* pool_ = nullptr;
  std::uint32_t model_ = 0;
  std::uint32_t slot_ = 0;
};

struct DeviceStats {
  std::string name;
  Bytes budget;
  Bytes held;         // charged to loaded/loading/unloading instances
  Bytes unreclaimed;  // claimed by unloaded instances but not freed, as measured
};

struct PoolStats {
  std::array<std::uint64_t, kInstanceStateCount> instances{};  // by InstanceState
  std::uint64_t hits = 0;          // allocate found a ready/cooling/in_use instance with room
  std::uint64_t misses = 0;        // allocate had to load (or wait)
  std::uint64_t waits = 0;         // allocations that queued for a busy model
  std::uint64_t evictions = 0;
  std::uint64_t prewarms = 0;      // instances loaded by prewarm() or prediction
  std::uint64_t prewarm_hits = 0;  // first use of a prewarmed instance
  std::uint64_t load_failures = 0;
  std::uint64_t health_failures = 0;
  std::uint64_t reloads = 0;       // failed instances brought back by check_health()
  std::vector<std::pair<std::string, std::uint64_t>> queued;  // waiting allocations per class
  std::vector<DeviceStats> devices;

  std::uint64_t count(InstanceState s) const { return instances[static_cast<std::size_t>(s)]; }
};

class Pool {
 public:
  // Validates `config` (devices, class weights) and returns a pool that
  // calls `loader`, which must outlive it.
  static Result<std::unique_ptr<Pool>> create(PoolConfig config, Loader& loader);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Registers a model; errors name a duplicate name, unknown device, or a
  // full model table.
  Result<ModelId> add_model(ModelSpec spec);
  std::optional<ModelId> find(std::string_view name) const;
  const ModelSpec* spec(ModelId model) const;

  // A lease on an instance of `model`. Hit: lock-free. Miss: loads in the
  // calling thread (evicting idle instances if the device budget needs it),
  // or, when every instance is busy and no more may be loaded, waits up to
  // request.wait, served by class weight. Errors: unknown model, budget
  // exceeded (needed/available/held by whom), load failure (the loader's
  // text), a failed instance in backoff, timeout.
  Result<Lease> allocate(ModelId model, const Request& request = {});
  Result<Lease> allocate(std::string_view model, const Request& request = {});
  // Same as lease.reset().
  void release(Lease& lease) { lease.reset(); }

  // Loads one instance of each model that has none (evicting idle ones by
  // the LRU policy if needed). Returns the first error; the rest still run.
  Result<void> prewarm(std::span<const ModelId> models);
  // A pinned model keeps an instance loaded and is never evicted; pin()
  // loads it if needed. unpin() makes its instances evictable again.
  Result<void> pin(ModelId model);
  void unpin(ModelId model);

  // Learns from the allocations since the last call and prewarms the likely
  // next model of each recent stream when the budget allows (evicting only
  // idle instances predicted less likely to be used). Call after
  // allocations or on a short timer, from a worker thread. Returns how many
  // instances it started loading.
  std::size_t maintain();

  // Probes every loaded instance through the loader; a failing one goes to
  // failed, waiters on its model get the loader's error, and failed
  // instances whose backoff has expired (and that nobody still holds) are
  // reloaded. For the daemon's health timer.
  void check_health();

  // Unloads every idle instance (no users, not pinned) for which
  // `should_unload(model, instance)` is true: the extension host's idle
  // shutdown and the retirement of an old version after a hot swap. An
  // instance in use is left alone (ask again once it is released). Returns
  // how many were unloaded.
  std::size_t unload_idle(const std::function<bool(ModelId, InstanceId)>& should_unload);

  PoolStats stats() const;

 private:
  struct Slot;
  struct Model;
  struct Device;
  struct Waiter;
  struct Victim {
    std::uint32_t model;
    std::uint32_t slot;
  };
  enum class LoadKind { demand, prewarm, predicted, reload };

  Pool(PoolConfig config, Loader& loader);
  friend class Lease;

  Model* model_at(std::uint32_t id) const;
  void release_slot(std::uint32_t model, std::uint32_t slot);
  bool try_acquire(Model& m, std::uint32_t& slot_out);
  void note_use(Model& m, Slot& s, std::uint32_t stream);
  Result<Lease> allocate_slow(Model& m, const Request& request);

  // All below: called with mu_ held (lk locked); load_locked unlocks it
  // around Loader calls and returns with it locked.
  Result<std::uint32_t> load_locked(std::unique_lock<std::mutex>& lk, Model& m, LoadKind kind,
                                    std::optional<std::uint32_t> slot_hint, double predicted_p);
  Result<std::vector<Victim>> choose_victims(Device& d, std::uint64_t need, const Model& target,
                                             LoadKind kind, double target_p);
  void unload_victim(std::unique_lock<std::mutex>& lk, Victim v);
  Result<void> set_state(Model& m, std::uint32_t slot, InstanceState to);
  void dispatch_locked(Model& m);
  void fail_waiters_locked(Model& m, const Error& error);
  void drain_history_locked();
  double reuse_probability_locked(std::uint32_t model) const;
  std::optional<std::uint32_t> free_slot_locked(Model& m, Clock::time_point now) const;
  std::string instance_name(const Model& m, std::uint32_t slot) const;
  std::chrono::milliseconds backoff_after(std::uint32_t failures) const;
  std::string budget_error_locked(const Device& d, std::uint64_t need, const Model& target) const;

  PoolConfig config_;
  Loader& loader_;

  // Fast-path shared state.
  alignas(64) std::atomic<std::uint64_t> seq_{1};  // use sequence: recency stamp + history index
  std::unique_ptr<std::atomic<std::uint64_t>[]> history_;  // ring of packed (tag, stream, model)
  std::unique_ptr<std::unique_ptr<Model>[]> models_;
  alignas(64) std::atomic<std::uint32_t> model_count_{0};

  // Slow-path state, guarded by mu_.
  alignas(64) mutable std::mutex mu_;
  std::vector<std::unique_ptr<Device>> devices_;
  std::unordered_map<std::string, std::uint32_t> model_names_;
  TransitionModel transitions_;
  std::uint64_t history_read_ = 1;
  // stream → (last model, when seen), for learning and for prediction.
  std::unordered_map<std::uint32_t, std::pair<std::uint32_t, std::uint64_t>> streams_;
  std::uint64_t misses_ = 0, miss_served_ = 0, waits_ = 0, evictions_ = 0, prewarms_ = 0, load_failures_ = 0,
                health_failures_ = 0, reloads_ = 0;
  std::atomic<std::uint64_t> prewarm_hits_{0};
};

}  // namespace symphony::pit::pool
