// NVML, the driver's management library, opened with dlopen so Symphony
// builds and runs on machines without the NVIDIA driver or CUDA headers. The
// few types and entry points used are declared here from the public nvml.h
// ABI; it is used to describe the GPUs and to sample sandboxes' GPU memory.
#include "sandbox/gpu.h"

#include <dlfcn.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace symphony::sandbox {
namespace {

// --- The slice of nvml.h this file needs -------------------------------------
// Values and layouts are the driver's ABI: NVIDIA changes them only under new
// symbol names (the _v2/_v3 suffixes), so declaring them here is safe.

using nvmlReturn_t = int;
struct nvmlDevice_st;
using nvmlDevice_t = nvmlDevice_st*;

constexpr nvmlReturn_t kNvmlSuccess = 0;
constexpr nvmlReturn_t kNvmlErrorNotSupported = 3;
constexpr nvmlReturn_t kNvmlErrorInsufficientSize = 7;
// usedGpuMemory when the driver cannot tell (Windows WDDM, some vGPU setups).
constexpr unsigned long long kNvmlValueNotAvailable = ~0ULL;
// NVML_DEVICE_NAME_V2_BUFFER_SIZE and NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE.
constexpr unsigned kNameBufferSize = 96;
constexpr unsigned kDriverVersionBufferSize = 80;

// nvmlProcessInfo_v1_t: what the unversioned *RunningProcesses calls fill.
struct ProcessInfoV1 {
  unsigned pid;
  unsigned long long usedGpuMemory;
};
// nvmlProcessInfo_v2_t, also named nvmlProcessInfo_t since CUDA 11: what the
// _v2 and _v3 calls fill (the MIG instance ids were appended).
struct ProcessInfoV2 {
  unsigned pid;
  unsigned long long usedGpuMemory;
  unsigned gpuInstanceId;
  unsigned computeInstanceId;
};
static_assert(sizeof(ProcessInfoV1) == 16 && offsetof(ProcessInfoV1, usedGpuMemory) == 8);
static_assert(sizeof(ProcessInfoV2) == 24 && offsetof(ProcessInfoV2, computeInstanceId) == 20);

template <class Info>
using ProcessesFn = nvmlReturn_t (*)(nvmlDevice_t, unsigned*, Info*);

// The running-process lists come in two layouts depending on the symbol the
// driver has; exactly one of the two pointers is set.
struct ProcessQuery {
  const char* symbol = nullptr;
  ProcessesFn<ProcessInfoV2> v2 = nullptr;
  ProcessesFn<ProcessInfoV1> v1 = nullptr;
};

struct Api {
  nvmlReturn_t (*init)() = nullptr;
  const char* init_symbol = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  const char* (*error_string)(nvmlReturn_t) = nullptr;
  nvmlReturn_t (*device_get_count)(unsigned*) = nullptr;
  nvmlReturn_t (*device_get_handle_by_index)(unsigned, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*device_get_name)(nvmlDevice_t, char*, unsigned) = nullptr;
  nvmlReturn_t (*system_get_driver_version)(char*, unsigned) = nullptr;
  ProcessQuery compute;
  ProcessQuery graphics;
};

// --- Loading ------------------------------------------------------------------

struct DlClose {
  void operator()(void* handle) const { ::dlclose(handle); }
};
using LibraryHandle = std::unique_ptr<void, DlClose>;

// The first of `names` the library exports, with the name found. Newer names
// come first: the unversioned ones remain for old binaries and behave worse
// (nvmlInit fails outright when one GPU is inaccessible, nvmlDeviceGetCount
// hides such GPUs) or fill the 16-byte process entries.
template <class Fn>
Result<std::pair<Fn, const char*>> resolve(void* handle, const std::string& library,
                                           std::initializer_list<const char*> names) {
  for (const char* name : names) {
    ::dlerror();  // dlsym returns null both for "absent" and for a null symbol
    if (void* sym = ::dlsym(handle, name)) return std::pair{reinterpret_cast<Fn>(sym), name};
  }
  std::string tried;
  for (const char* name : names) {
    if (!tried.empty()) tried += " or ";
    tried += name;
  }
  return Error::described(ELIBBAD, library + ": undefined symbol: " + tried + " (not NVML?)");
}

template <class Fn>
Result<void> resolve_into(Fn& out, void* handle, const std::string& library,
                          std::initializer_list<const char*> names) {
  auto found = resolve<Fn>(handle, library, names);
  if (!found) return std::move(found).error();
  out = found->first;
  return ok();
}

Result<ProcessQuery> resolve_processes(void* handle, const std::string& library, const char* v3,
                                       const char* v2, const char* v1) {
  ProcessQuery query;
  if (auto found = resolve<ProcessesFn<ProcessInfoV2>>(handle, library, {v3, v2})) {
    query.v2 = found->first;
    query.symbol = found->second;
    return query;
  }
  if (auto found = resolve<ProcessesFn<ProcessInfoV1>>(handle, library, {v1})) {
    query.v1 = found->first;
    query.symbol = found->second;
    return query;
  }
  return resolve<ProcessesFn<ProcessInfoV1>>(handle, library, {v3, v2, v1}).error();
}

Result<Api> resolve_api(void* handle, const std::string& library) {
  Api api;
  auto init = resolve<nvmlReturn_t (*)()>(handle, library, {"nvmlInit_v2", "nvmlInit"});
  if (!init) return std::move(init).error();
  api.init = init->first;
  api.init_symbol = init->second;
  for (const Result<void>& step : {
           resolve_into(api.shutdown, handle, library, {"nvmlShutdown"}),
           resolve_into(api.error_string, handle, library, {"nvmlErrorString"}),
           resolve_into(api.device_get_count, handle, library,
                        {"nvmlDeviceGetCount_v2", "nvmlDeviceGetCount"}),
           resolve_into(api.device_get_handle_by_index, handle, library,
                        {"nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex"}),
           resolve_into(api.device_get_name, handle, library, {"nvmlDeviceGetName"}),
           resolve_into(api.system_get_driver_version, handle, library,
                        {"nvmlSystemGetDriverVersion"}),
       }) {
    if (!step) return step.error();
  }
  auto compute = resolve_processes(handle, library, "nvmlDeviceGetComputeRunningProcesses_v3",
                                   "nvmlDeviceGetComputeRunningProcesses_v2",
                                   "nvmlDeviceGetComputeRunningProcesses");
  if (!compute) return std::move(compute).error();
  api.compute = *compute;
  auto graphics = resolve_processes(handle, library, "nvmlDeviceGetGraphicsRunningProcesses_v3",
                                    "nvmlDeviceGetGraphicsRunningProcesses_v2",
                                    "nvmlDeviceGetGraphicsRunningProcesses");
  if (!graphics) return std::move(graphics).error();
  api.graphics = *graphics;
  return api;
}

// --- The loaded library ---------------------------------------------------------

struct Device {
  nvmlDevice_t handle = nullptr;
  std::string name;
};

class LoadedNvml final : public Nvml {
 public:
  LoadedNvml(LibraryHandle library, Api api) : library_(std::move(library)), api_(api) {}
  LoadedNvml(const LoadedNvml&) = delete;
  LoadedNvml& operator=(const LoadedNvml&) = delete;
  // NVML counts nvmlInit calls, so this shutdown only ends our own use of it;
  // dlclose comes after (library_ is destroyed last).
  ~LoadedNvml() override {
    if (initialized_) api_.shutdown();
  }

  // nvmlInit, then the devices and the driver version, which do not change
  // while the driver is loaded.
  Result<void> start() {
    if (nvmlReturn_t r = api_.init(); r != kNvmlSuccess)
      return failure(ENODEV, api_.init_symbol, r);
    initialized_ = true;

    char version[kDriverVersionBufferSize] = {};
    if (nvmlReturn_t r = api_.system_get_driver_version(version, sizeof version);
        r != kNvmlSuccess) {
      return failure(EIO, "nvmlSystemGetDriverVersion", r);
    }
    driver_version_ = version;

    unsigned count = 0;
    if (nvmlReturn_t r = api_.device_get_count(&count); r != kNvmlSuccess) {
      return failure(EIO, "nvmlDeviceGetCount", r);
    }
    for (unsigned i = 0; i < count; ++i) {
      // The _v2 count includes GPUs this process may not open (device
      // cgroup, a GPU fallen off the bus): keep them, named with the reason,
      // so the rest still work and describe() says what is missing.
      Device device;
      if (nvmlReturn_t r = api_.device_get_handle_by_index(i, &device.handle); r != kNvmlSuccess) {
        device.handle = nullptr;
        device.name = "GPU " + std::to_string(i) + " unusable: " + error_text(r);
        devices_.push_back(std::move(device));
        continue;
      }
      char name[kNameBufferSize] = {};
      if (api_.device_get_name(device.handle, name, sizeof name) == kNvmlSuccess) {
        device.name = name;
      } else {
        device.name = "GPU " + std::to_string(i);  // a name is for display only
      }
      devices_.push_back(std::move(device));
    }
    return ok();
  }

  unsigned device_count() const override { return static_cast<unsigned>(devices_.size()); }

  Result<Bytes> memory_used_by(const std::vector<int>& pids) const override {
    std::vector<unsigned> wanted;
    for (int pid : pids) {
      if (pid > 0) wanted.push_back(static_cast<unsigned>(pid));
    }
    std::sort(wanted.begin(), wanted.end());
    auto is_wanted = [&](unsigned pid) {
      return std::binary_search(wanted.begin(), wanted.end(), pid);
    };

    std::uint64_t total = 0;
    for (unsigned i = 0; i < devices_.size(); ++i) {
      if (devices_[i].handle == nullptr) continue;  // nothing of ours can run there either
      // A process with both a CUDA and a graphics context is in both lists,
      // each time with its whole use of this GPU (nvidia-smi shows it once,
      // as "C+G"), so it counts once.
      std::map<unsigned, std::uint64_t> used;
      auto collect = [&](unsigned pid, unsigned long long bytes) {
        if (!is_wanted(pid) || bytes == kNvmlValueNotAvailable) return;
        std::uint64_t& slot = used[pid];
        slot = std::max<std::uint64_t>(slot, bytes);
      };
      for (const ProcessQuery* query : {&api_.compute, &api_.graphics}) {
        Result<void> listed = query->v2 ? list_processes(query->v2, query->symbol, i, collect)
                                        : list_processes(query->v1, query->symbol, i, collect);
        if (!listed) return std::move(listed).error();
      }
      for (const auto& [pid, bytes] : used) total += bytes;
    }
    return Bytes{total};
  }

  std::string describe() const override {
    std::string out = "NVML " + driver_version_ + ", " + std::to_string(devices_.size()) +
                      (devices_.size() == 1 ? " GPU" : " GPUs");
    for (std::size_t i = 0; i < devices_.size(); ++i) {
      out += i == 0 ? ": " : ", ";
      out += devices_[i].name;
    }
    return out;
  }

 private:
  std::string error_text(nvmlReturn_t r) const {
    const char* text = api_.error_string(r);
    return (text != nullptr ? std::string(text) : "error") + " (" + std::to_string(r) + ")";
  }

  Error failure(int code, std::string_view call, nvmlReturn_t r) const {
    return Error::described(code, std::string(call) + ": " + error_text(r));
  }

  // Calls `fn` for device `index`, growing the buffer while NVML answers
  // INSUFFICIENT_SIZE (it then stores the count it needs, which may grow
  // again before the next call as processes start), and hands each entry to
  // `collect`.
  template <class Info, class Collect>
  Result<void> list_processes(ProcessesFn<Info> fn, const char* symbol, unsigned index,
                              Collect& collect) const {
    std::vector<Info> infos(64);
    for (int attempt = 0; attempt < 8; ++attempt) {
      unsigned count = static_cast<unsigned>(infos.size());
      nvmlReturn_t r = fn(devices_[index].handle, &count, infos.data());
      if (r == kNvmlErrorInsufficientSize) {
        infos.resize(std::max<std::size_t>(count, infos.size()) + 32);
        continue;
      }
      // Compute-only boards (and some MIG setups) refuse the graphics list.
      if (r == kNvmlErrorNotSupported) return ok();
      if (r != kNvmlSuccess) {
        return failure(EIO, std::string(symbol) + "(GPU " + std::to_string(index) + ")", r);
      }
      for (unsigned k = 0; k < count && k < infos.size(); ++k) {
        collect(infos[k].pid, infos[k].usedGpuMemory);
      }
      return ok();
    }
    return Error::described(EAGAIN, std::string(symbol) + "(GPU " + std::to_string(index) +
                                        "): process list kept growing");
  }

  LibraryHandle library_;
  Api api_;
  bool initialized_ = false;
  std::string driver_version_;
  std::vector<Device> devices_;
};

}  // namespace

Result<std::unique_ptr<Nvml>> load_nvml(const std::string& library) {
  // RTLD_LOCAL: NVML's symbols must not satisfy anyone else's lookups.
  LibraryHandle handle(::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL));
  if (!handle) {
    const char* why = ::dlerror();
    return Error::described(ELIBACC, why != nullptr ? why : library + ": dlopen failed");
  }
  auto api = resolve_api(handle.get(), library);
  if (!api) return std::move(api).error();
  auto nvml = std::make_unique<LoadedNvml>(std::move(handle), *api);
  if (auto started = nvml->start(); !started) return std::move(started).error();
  return std::unique_ptr<Nvml>(std::move(nvml));
}

}  // namespace symphony::sandbox
