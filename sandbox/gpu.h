// GPUs for sandboxes that are granted them: which device nodes to bind in and
// allow in the device controller, CUDA_VISIBLE_DEVICES, and GPU memory
// accounting through NVML, which is loaded with dlopen so nothing links
// against the driver. On a machine without a GPU or without the driver every
// function degrades to "none" and says why.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "sandbox/cgroup.h"
#include "sandbox/spec.h"

namespace symphony::sandbox {

struct GpuDevices {
  std::vector<std::string> nodes;  // /dev/nvidia0, /dev/nvidiactl, /dev/nvidia-uvm, /dev/dri/renderD128…
  std::vector<DeviceRule> rules;   // for the device controller
  std::string cuda_visible_devices;  // "0,1"; "" when none
  std::string note;                // "no /dev/nvidia* on this host" etc.
};

// The nodes and rules for `granted` NVML indices (empty = every GPU), found
// under `dev_root` (tests pass a scratch tree) with majors from /proc/devices.
GpuDevices discover_gpu_devices(const std::vector<unsigned>& granted,
                                const std::string& dev_root = "/dev",
                                const std::string& proc_devices = "/proc/devices");

// NVML through dlopen("libnvidia-ml.so.1").
class Nvml {
 public:
  virtual ~Nvml() = default;
  virtual unsigned device_count() const = 0;
  // GPU memory used by `pids` on all devices (compute + graphics processes).
  virtual Result<Bytes> memory_used_by(const std::vector<int>& pids) const = 0;
  virtual std::string describe() const = 0;  // "NVML 12.x, 1 GPU: NVIDIA H100"
};

// Loads NVML; the error says why not ("libnvidia-ml.so.1: cannot open shared
// object file") so status output can show it. `library` is injectable for tests.
Result<std::unique_ptr<Nvml>> load_nvml(const std::string& library = "libnvidia-ml.so.1");

}  // namespace symphony::sandbox
