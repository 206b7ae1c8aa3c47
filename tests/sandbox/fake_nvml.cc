// A stand-in for libnvidia-ml.so.1 with two GPUs and fixed process lists, so
// gpu_test can prove load_nvml's dlopen path and its sums on machines
// without a GPU. Built twice: the default exports the _v2/_v3 entry points
// of current drivers (24-byte process entries); -DFAKE_NVML_V1 exports only
// the unversioned ones of old drivers (16-byte entries).
#include <cstdlib>
#include <cstring>

namespace {

using nvmlReturn_t = int;
constexpr nvmlReturn_t kSuccess = 0;
constexpr nvmlReturn_t kInvalidArgument = 2;
constexpr nvmlReturn_t kNoPermission = 4;
constexpr nvmlReturn_t kInsufficientSize = 7;
constexpr nvmlReturn_t kDriverNotLoaded = 9;
constexpr unsigned long long kNotAvailable = ~0ULL;
constexpr unsigned long long kMiB = 1024ULL * 1024;

struct Process {
  unsigned pid;
  unsigned long long used;
};

struct FakeDevice {
  const char* name;
  Process compute[128];
  unsigned compute_count;
  Process graphics[4];
  unsigned graphics_count;
};

// pid 100 is on both GPUs and, on GPU 0, in both lists (one figure, counted
// once); pid 300's figure is unknown to the driver. GPU 1 has more processes
// than load_nvml's first buffer holds, so the INSUFFICIENT_SIZE retry runs.
FakeDevice* devices() {
  static FakeDevice table[2] = {
      {"Fake GPU Alpha",
       {{100, 1024 * kMiB}, {200, 512 * kMiB}, {300, kNotAvailable}},
       3,
       {{100, 1024 * kMiB}, {400, 128 * kMiB}},
       2},
      {"Fake GPU Beta", {{100, 256 * kMiB}}, 1, {}, 0},
  };
  static bool filled = false;
  if (!filled) {
    for (unsigned i = 0; i < 100; ++i) table[1].compute[1 + i] = {10000 + i, 1 * kMiB};
    table[1].compute_count = 101;
    filled = true;
  }
  return table;
}

int active = 0;        // nvmlInit calls not yet matched by nvmlShutdown
int size_retries = 0;  // INSUFFICIENT_SIZE answers given

FakeDevice* device_of(void* handle) {
  FakeDevice* table = devices();
  return handle == &table[0] || handle == &table[1] ? static_cast<FakeDevice*>(handle) : nullptr;
}

template <class Info>
nvmlReturn_t list(const Process* processes, unsigned n, unsigned* count, Info* infos) {
  if (count == nullptr) return kInvalidArgument;
  if (*count < n || (n > 0 && infos == nullptr)) {
    *count = n;
    ++size_retries;
    return kInsufficientSize;
  }
  for (unsigned i = 0; i < n; ++i) {
    std::memset(&infos[i], 0xAB, sizeof infos[i]);  // padding and instance ids: garbage
    infos[i].pid = processes[i].pid;
    infos[i].usedGpuMemory = processes[i].used;
  }
  *count = n;
  return kSuccess;
}

}  // namespace

extern "C" {

struct nvmlProcessInfo_v1_t {
  unsigned pid;
  unsigned long long usedGpuMemory;
};
struct nvmlProcessInfo_t {
  unsigned pid;
  unsigned long long usedGpuMemory;
  unsigned gpuInstanceId;
  unsigned computeInstanceId;
};

#define FAKE_EXPORT __attribute__((visibility("default")))

// Test hooks (not NVML): how many inits are outstanding, how many retries ran.
FAKE_EXPORT int fake_nvml_active() { return active; }
FAKE_EXPORT int fake_nvml_size_retries() { return size_retries; }

FAKE_EXPORT const char* nvmlErrorString(nvmlReturn_t r) {
  switch (r) {
    case kSuccess:
      return "Success";
    case kInvalidArgument:
      return "Invalid Argument";
    case kNoPermission:
      return "Insufficient Permissions";
    case kInsufficientSize:
      return "Insufficient Size";
    case kDriverNotLoaded:
      return "Driver Not Loaded";
    default:
      return "Unknown Error";
  }
}

// FAKE_NVML_INIT_ERROR=<code> makes init fail with that code.
static nvmlReturn_t fake_init() {
  if (const char* forced = std::getenv("FAKE_NVML_INIT_ERROR")) return std::atoi(forced);
  ++active;
  return kSuccess;
}

FAKE_EXPORT nvmlReturn_t nvmlShutdown() {
  --active;
  return kSuccess;
}

FAKE_EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char* version, unsigned length) {
  const char text[] = "555.42.06";
  if (length < sizeof text) return kInsufficientSize;
  std::memcpy(version, text, sizeof text);
  return kSuccess;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetName(void* device, char* name, unsigned length) {
  FakeDevice* d = device_of(device);
  if (d == nullptr) return kInvalidArgument;
  if (std::strlen(d->name) + 1 > length) return kInsufficientSize;
  std::strcpy(name, d->name);
  return kSuccess;
}

static nvmlReturn_t fake_count(unsigned* count) {
  *count = 2;
  return kSuccess;
}

// FAKE_NVML_DENY_GPU1=1 answers for GPU 1 as for one the device cgroup hides.
static nvmlReturn_t fake_handle(unsigned index, void** device) {
  if (index >= 2) return kInvalidArgument;
  if (index == 1 && std::getenv("FAKE_NVML_DENY_GPU1") != nullptr) return kNoPermission;
  *device = &devices()[index];
  return kSuccess;
}

#ifndef FAKE_NVML_V1

FAKE_EXPORT nvmlReturn_t nvmlInit_v2() { return fake_init(); }
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned* count) { return fake_count(count); }
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, void** device) {
  return fake_handle(index, device);
}
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(void* device, unsigned* count,
                                                                 nvmlProcessInfo_t* infos) {
  FakeDevice* d = device_of(device);
  return d == nullptr ? kInvalidArgument : list(d->compute, d->compute_count, count, infos);
}
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(void* device, unsigned* count,
                                                                  nvmlProcessInfo_t* infos) {
  FakeDevice* d = device_of(device);
  return d == nullptr ? kInvalidArgument : list(d->graphics, d->graphics_count, count, infos);
}

#else

FAKE_EXPORT nvmlReturn_t nvmlInit() { return fake_init(); }
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetCount(unsigned* count) { return fake_count(count); }
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned index, void** device) {
  return fake_handle(index, device);
}
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(void* device, unsigned* count,
                                                              nvmlProcessInfo_v1_t* infos) {
  FakeDevice* d = device_of(device);
  return d == nullptr ? kInvalidArgument : list(d->compute, d->compute_count, count, infos);
}
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses(void* device, unsigned* count,
                                                               nvmlProcessInfo_v1_t* infos) {
  FakeDevice* d = device_of(device);
  return d == nullptr ? kInvalidArgument : list(d->graphics, d->graphics_count, count, infos);
}

#endif

}  // extern "C"
