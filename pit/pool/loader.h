// The seam between the pool and whatever brings a model up: an extension
// process hosting a model, or an in-process module. The pool decides *when*
// to load and unload; a Loader knows *how*, and reports the memory it sees,
// so that the pool's accounting follows measurements rather than claims.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"
#include "sandbox/spec.h"

namespace symphony::pit::pool {

// Sizes at interfaces are Bytes (the project's one size type).
using Bytes = sandbox::Bytes;

// The loader's own handle for one loaded instance (a pid, a slot number,
// a pointer cast to an integer: opaque to the pool).
struct InstanceId {
  std::uint64_t value = 0;
  friend bool operator==(InstanceId, InstanceId) = default;
};

// What a model is, as the pool sees it. Registered once with Pool::add_model.
struct ModelSpec {
  std::string name;             // unique, e.g. "whisper-large-v3"
  std::string device;           // a device named in PoolConfig::devices ("host", "gpu0")
  Bytes expected_memory;        // the estimate used before the first load has been measured
  std::uint32_t max_instances = 1;           // instances the pool may keep of this model
  std::uint32_t max_users_per_instance = 1;  // concurrent leases one instance serves
};

// What a successful load returns.
struct Loaded {
  InstanceId instance;
  Bytes memory;  // what the instance says it uses on its device
};

// Implementations must be thread-safe: the pool calls them from whichever
// thread needs the work done (allocate's caller, maintain(), check_health()),
// never holding its own lock. Calls that change memory on one device (load,
// unload and the measurements around them) are serialized per device by the
// pool, so a before/after measurement is attributable to that one call.
class Loader {
 public:
  virtual ~Loader() = default;

  // Brings up one instance of `model` on `device`. The error text reaches the
  // allocation that asked for it, so it should say what went wrong.
  virtual Result<Loaded> load(const ModelSpec& model, const std::string& device) = 0;
  // Tears `instance` down. The pool measures afterwards how much was freed.
  virtual Result<void> unload(InstanceId instance) = 0;
  // Cheap liveness probe, called from Pool::check_health().
  virtual Result<void> health(InstanceId instance) = 0;
  // Bytes in use on `device` now, as the device sees it (NVML, cgroup
  // memory.current, RSS…). Used around loads and unloads.
  virtual Result<Bytes> measure_memory(const std::string& device) = 0;
};

}  // namespace symphony::pit::pool
