// What to run in a sandbox and what it may do: the one description every
// launcher backend (Linux namespaces, Windows job objects, the zygote) takes.
// A Spec is plain data; validate() checks it before any process exists, so a
// bad spec is an error naming the field, never a half-built sandbox.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace symphony::sandbox {

// Sizes at interfaces are Bytes, not bare integers (STYLE.md, strong types).
struct Bytes {
  std::uint64_t value = 0;
  friend bool operator==(Bytes, Bytes) = default;
};

enum class Access { read_only, read_write };

// A host path made visible inside the sandbox at the same path.
struct Bind {
  std::string path;  // absolute, normalised (no "..", no trailing "/")
  Access access = Access::read_only;
};

// How the seccomp filter treats a system call outside the allow-list.
enum class SeccompMode {
  enforce,  // the sandbox is killed and the report names the syscall
  log,      // the call proceeds and is logged (for extension authors)
};

// Capabilities a manifest may grant; everything else is always dropped. The
// list is short on purpose (docs/sandbox.md): a capability held in the
// sandbox's user namespace only counts for what that namespace owns, so
// CAP_IPC_LOCK or CAP_SYS_NICE there would be a grant that does nothing.
// CAP_NET_BIND_SERVICE works in the sandbox's own network namespace.
enum class Capability { net_bind_service };
std::string_view to_string(Capability cap);
Result<Capability> parse_capability(std::string_view name);

struct Permissions {
  std::vector<Bind> binds;        // granted host paths, besides the runtime (/usr, loader, libs)
  bool network = false;           // host network; otherwise a private netns with loopback only
  bool gpu = false;               // /dev/nvidia*, /dev/dri, device cgroup entries, NVML
  std::vector<unsigned> gpu_devices;  // NVML indices granted; empty with gpu = all
  std::vector<std::string> devices;   // extra device nodes, e.g. "/dev/kvm" (bound in, allowed)
  std::vector<Capability> capabilities;
};

struct Limits {
  std::optional<double> cpu;               // CPUs (0.5 = half of one core)
  std::optional<Bytes> memory;             // RAM; the OOM killer acts beyond it
  std::optional<Bytes> swap;               // swap beyond memory (0 = none)
  std::optional<std::uint64_t> pids;       // tasks in the sandbox's cgroup
  std::optional<std::uint64_t> open_files; // RLIMIT_NOFILE
  std::optional<std::uint64_t> processes;  // RLIMIT_NPROC (per uid: prefer pids)
  std::optional<Bytes> file_size;          // RLIMIT_FSIZE
  std::optional<Bytes> address_space;      // RLIMIT_AS
  std::optional<std::chrono::milliseconds> timeout;  // wall clock, from spawn
  std::optional<Bytes> gpu_memory;         // enforced by NVML sampling (see gpu.h)
};

// An fd of the caller's to hand to the sandboxed program as `target`.
struct PassFd {
  int fd = -1;     // borrowed: stays owned by the caller
  int target = 3;  // number inside the sandbox (0, 1, 2 replace stdio)
};

struct Spec {
  std::vector<std::string> argv;      // argv[0] is the program: absolute, or found in PATH
  std::vector<std::string> env;       // "KEY=value"; nothing of the caller's is inherited
  std::string cwd = "/";              // inside the sandbox
  std::string hostname = "sandbox";
  Permissions permissions;
  Limits limits;
  std::vector<PassFd> fds;            // stdin/stdout/stderr default to the caller's 0/1/2
  SeccompMode seccomp = SeccompMode::enforce;
  // The host uid/gid the program runs as. Unset: the caller's own ids, or
  // nobody/nogroup (65534) when the caller is root.
  std::optional<std::uint32_t> uid;
  std::optional<std::uint32_t> gid;
  std::string name;                   // for logs and the cgroup name; [a-zA-Z0-9_.-]
};

// Checks every field (paths absolute and normalised, limits in range, fds
// distinct); the error names the field: "limits.cpu: must be > 0, got -1".
Result<void> validate(const Spec& spec);

}  // namespace symphony::sandbox
