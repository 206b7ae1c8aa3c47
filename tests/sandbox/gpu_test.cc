// GPU grants and NVML: device discovery against scratch /dev trees (plain
// files for the /proc/devices fallback, real character nodes for st_rdev),
// and load_nvml against missing libraries, a library without NVML, and the
// fake NVML built beside this test. The Real* tests use the host's driver and
// skip without one; SYMPHONY_REQUIRE_GPU=1 turns those skips into failures.
#include <dlfcn.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sandbox/gpu.h"

namespace symphony::sandbox {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr std::uint64_t kMiB = 1024 * 1024;

DeviceRule rw(int major, int minor) { return DeviceRule{'c', major, minor, "rw"}; }

// The parts of a real /proc/devices that matter, with the nvidia-uvm major
// a host might allocate, and a block device that must not be read as one.
constexpr const char* kProcDevices =
    "Character devices:\n"
    "  1 mem\n"
    "  5 /dev/tty\n"
    "195 nvidia-frontend\n"
    "195 nvidia\n"
    "226 drm\n"
    "237 nvidia-uvm\n"
    "238 nvidia-caps\n"
    "\n"
    "Block devices:\n"
    "  7 loop\n"
    "  8 sd\n";

// A scratch directory removed with everything in it at the end of the test.
class ScratchDev : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "gpu_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << std::strerror(errno);
    root_ = pattern;
    dev_ = root_ + "/dev";
    fs::create_directories(dev_);
    proc_devices_ = root_ + "/devices";
    std::ofstream(proc_devices_) << kProcDevices;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // A plain file: exists, but its major must come from /proc/devices.
  void touch(const std::string& name) {
    fs::create_directories(fs::path(dev_ + "/" + name).parent_path());
    std::ofstream(dev_ + "/" + name) << "";
  }
  // A real character node (we run as root); false when this kernel or
  // container forbids mknod.
  bool node(const std::string& name, int major, int minor) {
    fs::create_directories(fs::path(dev_ + "/" + name).parent_path());
    return ::mknod((dev_ + "/" + name).c_str(), S_IFCHR | 0600,
                   makedev(static_cast<unsigned>(major), static_cast<unsigned>(minor))) == 0;
  }
  std::string at(const std::string& name) const { return dev_ + "/" + name; }

  // The layout of a host with three GPUs, the nvidia-drm render nodes and
  // a few entries that must be ignored.
  void plain_host_tree() {
    for (const char* name :
         {"nvidia0", "nvidia1", "nvidia2", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools",
          "nvidia-modeset", "dri/card0", "dri/card1", "dri/renderD128", "dri/renderD129",
          "nvidia1x", "nvidia-caps/nvidia-cap1", "dri/by-path/pci-0000:01:00.0-render"}) {
      touch(name);
    }
  }

  std::string root_;
  std::string dev_;
  std::string proc_devices_;
};

TEST_F(ScratchDev, AllGpusWhenGrantIsEmpty) {
  plain_host_tree();
  GpuDevices got = discover_gpu_devices({}, dev_, proc_devices_);
  EXPECT_THAT(got.nodes, ElementsAre(at("nvidia0"), at("nvidia1"), at("nvidia2"), at("nvidiactl"),
                                     at("nvidia-uvm"), at("nvidia-uvm-tools"), at("nvidia-modeset"),
                                     at("dri/card0"), at("dri/card1"), at("dri/renderD128"),
                                     at("dri/renderD129")));
  // Plain files: majors by driver name; uvm and drm by major only.
  EXPECT_THAT(got.rules, ElementsAre(rw(195, 0), rw(195, 1), rw(195, 2), rw(195, 255), rw(237, -1),
                                     rw(195, 254), rw(226, -1)));
  EXPECT_EQ(got.cuda_visible_devices, "0,1,2");
  EXPECT_EQ(got.note, "");
}

TEST_F(ScratchDev, GrantedSubsetKeepsControlAndAllDrmNodes) {
  plain_host_tree();
  GpuDevices got = discover_gpu_devices({2, 0, 2}, dev_, proc_devices_);
  EXPECT_THAT(got.nodes,
              ElementsAre(at("nvidia0"), at("nvidia2"), at("nvidiactl"), at("nvidia-uvm"),
                          at("nvidia-uvm-tools"), at("nvidia-modeset"), at("dri/card0"),
                          at("dri/card1"), at("dri/renderD128"), at("dri/renderD129")));
  EXPECT_THAT(got.rules, ElementsAre(rw(195, 0), rw(195, 2), rw(195, 255), rw(237, -1),
                                     rw(195, 254), rw(226, -1)));
  EXPECT_EQ(got.cuda_visible_devices, "0,2");
  EXPECT_EQ(got.note, "");
}

TEST_F(ScratchDev, GrantedGpuThatIsAbsentIsNamedInNote) {
  plain_host_tree();
  GpuDevices got = discover_gpu_devices({1, 7}, dev_, proc_devices_);
  EXPECT_EQ(got.nodes.front(), at("nvidia1"));
  EXPECT_EQ(got.cuda_visible_devices, "1");
  EXPECT_THAT(got.note, HasSubstr("granted GPU 7 absent (no " + at("nvidia7") + ")"));
}

TEST_F(ScratchDev, NoneOfTheGrantedGpusPresentGrantsNothing) {
  plain_host_tree();
  GpuDevices got = discover_gpu_devices({7}, dev_, proc_devices_);
  EXPECT_THAT(got.nodes, IsEmpty());
  EXPECT_THAT(got.rules, IsEmpty());
  EXPECT_EQ(got.cuda_visible_devices, "");
  EXPECT_THAT(got.note, HasSubstr("GPU permission grants nothing"));
}

TEST_F(ScratchDev, NoGpuOnHostGrantsNothing) {
  touch("null");
  touch("dri/renderD128");  // another vendor's GPU is not what a GPU grant means
  for (const std::vector<unsigned>& granted : {std::vector<unsigned>{}, std::vector<unsigned>{0}}) {
    GpuDevices got = discover_gpu_devices(granted, dev_, proc_devices_);
    EXPECT_THAT(got.nodes, IsEmpty());
    EXPECT_THAT(got.rules, IsEmpty());
    EXPECT_EQ(got.cuda_visible_devices, "");
    EXPECT_EQ(got.note, "no " + dev_ + "/nvidia* on this host: GPU permission grants nothing");
  }
}

TEST_F(ScratchDev, MissingProcDevicesIsNotAnError) {
  plain_host_tree();
  std::string missing = root_ + "/no-such-devices";
  GpuDevices got = discover_gpu_devices({0}, dev_, missing);
  // The GPU and DRM majors are fixed by the kernel; nvidia-uvm's is not, so
  // a plain-file uvm node gets no rule and the note says so.
  EXPECT_THAT(got.rules, ElementsAre(rw(195, 0), rw(195, 255), rw(195, 254), rw(226, -1)));
  EXPECT_EQ(got.cuda_visible_devices, "0");
  EXPECT_THAT(got.note, HasSubstr(missing + " unreadable"));
  EXPECT_THAT(got.note, HasSubstr(at("nvidia-uvm") + " is not a character device"));
  EXPECT_THAT(got.nodes, ::testing::Contains(at("nvidia-uvm")));
}

TEST_F(ScratchDev, MissingUvmNodeIsExplained) {
  // nvidia-uvm loads on first CUDA use through nvidia-modprobe, which a
  // sandbox cannot run: a host where nothing used CUDA yet has no node.
  touch("nvidia0");
  touch("nvidiactl");
  GpuDevices got = discover_gpu_devices({}, dev_, proc_devices_);
  EXPECT_THAT(got.nodes, ElementsAre(at("nvidia0"), at("nvidiactl")));
  EXPECT_THAT(got.rules, ElementsAre(rw(195, 0), rw(195, 255)));
  EXPECT_EQ(got.note, "no " + at("nvidia-uvm") +
                          ": CUDA will not start (load the module on the host, e.g. "
                          "nvidia-modprobe -u -c=0)");
}

TEST_F(ScratchDev, BlockSectionIsNotReadAsCharacterMajors) {
  plain_host_tree();
  std::ofstream(proc_devices_) << "Character devices:\n195 nvidia\n\nBlock devices:\n"
                                  "240 nvidia-uvm\n";
  GpuDevices got = discover_gpu_devices({0}, dev_, proc_devices_);
  for (const DeviceRule& rule : got.rules) EXPECT_NE(rule.major, 240);
  EXPECT_THAT(got.note, HasSubstr("nvidia-uvm is not in " + proc_devices_));
}

TEST_F(ScratchDev, RealNodesTakeTheirNumbersFromStRdev) {
  // nvidia-uvm's node says 511 while the fixture /proc/devices says 237:
  // the node wins, with its exact minors.
  if (!node("nvidia0", 195, 0))
    GTEST_SKIP() << "mknod not permitted here: " << std::strerror(errno);
  ASSERT_TRUE(node("nvidia3", 195, 3));
  ASSERT_TRUE(node("nvidiactl", 195, 255));
  ASSERT_TRUE(node("nvidia-uvm", 511, 0));
  ASSERT_TRUE(node("nvidia-uvm-tools", 511, 1));
  ASSERT_TRUE(node("dri/card1", 226, 1));
  ASSERT_TRUE(node("dri/renderD128", 226, 128));
  touch("nvidia-modeset");  // a plain file among nodes: falls back on its own

  GpuDevices all = discover_gpu_devices({}, dev_, proc_devices_);
  EXPECT_THAT(all.nodes, ElementsAre(at("nvidia0"), at("nvidia3"), at("nvidiactl"),
                                     at("nvidia-uvm"), at("nvidia-uvm-tools"), at("nvidia-modeset"),
                                     at("dri/card1"), at("dri/renderD128")));
  EXPECT_THAT(all.rules, ElementsAre(rw(195, 0), rw(195, 3), rw(195, 255), rw(511, 0), rw(511, 1),
                                     rw(195, 254), rw(226, 1), rw(226, 128)));
  EXPECT_EQ(all.cuda_visible_devices, "0,3");

  GpuDevices one = discover_gpu_devices({3}, dev_, proc_devices_);
  EXPECT_EQ(one.nodes.front(), at("nvidia3"));
  EXPECT_EQ(one.rules.front(), rw(195, 3));
  EXPECT_EQ(one.cuda_visible_devices, "3");
  EXPECT_EQ(std::count(one.rules.begin(), one.rules.end(), rw(195, 0)), 0);
}

// --- load_nvml -------------------------------------------------------------------

bool gpu_required() {
  const char* v = std::getenv("SYMPHONY_REQUIRE_GPU");
  return v != nullptr && std::string(v) == "1";
}

TEST(LoadNvml, DefaultLibraryErrorNamesIt) {
  auto nvml = load_nvml();
  if (nvml) GTEST_SKIP() << "this host has NVML: " << (*nvml)->describe();
  EXPECT_THAT(nvml.error().message(), HasSubstr("libnvidia-ml"));
}

TEST(LoadNvml, NonexistentPathErrors) {
  auto nvml = load_nvml("/nonexistent/libnvidia-ml.so.1");
  ASSERT_FALSE(nvml);
  EXPECT_THAT(nvml.error().message(), HasSubstr("/nonexistent/libnvidia-ml.so.1"));
}

TEST(LoadNvml, LibraryWithoutNvmlNamesMissingSymbol) {
  auto nvml = load_nvml("libm.so.6");
  ASSERT_FALSE(nvml);
  EXPECT_THAT(nvml.error().message(), HasSubstr("undefined symbol: nvmlInit_v2"));
  EXPECT_THAT(nvml.error().message(), HasSubstr("libm.so.6"));
}

// The fake NVML libraries sit beside this executable (meson builds them into
// the same directory) unless SYMPHONY_FAKE_NVML_DIR says otherwise.
std::string fake_nvml_path(const std::string& file) {
  if (const char* dir = std::getenv("SYMPHONY_FAKE_NVML_DIR")) return std::string(dir) + "/" + file;
  return (fs::read_symlink("/proc/self/exe").parent_path() / file).string();
}

// Holds the fake open for its test hooks; load_nvml's dlopen of the same
// path then gets the same copy, so the hooks see what load_nvml did.
class FakeNvml : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    path_ = fake_nvml_path(GetParam());
    ASSERT_TRUE(fs::exists(path_))
        << path_ << " missing: build it with `ninja -C <build> tests/sandbox/" << GetParam()
        << "` or run through `meson test`";
    handle_ = ::dlopen(path_.c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(handle_, nullptr) << ::dlerror();
    active_ = reinterpret_cast<int (*)()>(::dlsym(handle_, "fake_nvml_active"));
    size_retries_ = reinterpret_cast<int (*)()>(::dlsym(handle_, "fake_nvml_size_retries"));
    ASSERT_NE(active_, nullptr);
    ASSERT_NE(size_retries_, nullptr);
  }
  void TearDown() override {
    if (handle_ != nullptr) ::dlclose(handle_);
  }

  std::string path_;
  void* handle_ = nullptr;
  int (*active_)() = nullptr;
  int (*size_retries_)() = nullptr;
};

TEST_P(FakeNvml, DescribesDevicesAndDriver) {
  auto nvml = load_nvml(path_);
  ASSERT_TRUE(nvml) << nvml.error().message();
  EXPECT_EQ((*nvml)->device_count(), 2u);
  EXPECT_EQ((*nvml)->describe(), "NVML 555.42.06, 2 GPUs: Fake GPU Alpha, Fake GPU Beta");
}

TEST_P(FakeNvml, MemorySumsOnlyTheGivenPids) {
  auto nvml = load_nvml(path_);
  ASSERT_TRUE(nvml) << nvml.error().message();
  const Nvml& n = **nvml;
  int retries_before = size_retries_();

  // pid 100: 1 GiB on GPU 0 (compute and graphics lists, one figure) plus
  // 256 MiB on GPU 1.
  auto one = n.memory_used_by({100});
  ASSERT_TRUE(one) << one.error().message();
  EXPECT_EQ(one->value, 1280 * kMiB);
  // GPU 1 has 101 processes: the first buffer was too small and was grown.
  EXPECT_GT(size_retries_(), retries_before);

  // pid 300's figure is NVML_VALUE_NOT_AVAILABLE: skipped, not ~0.
  auto several = n.memory_used_by({100, 200, 300});
  ASSERT_TRUE(several);
  EXPECT_EQ(several->value, (1280 + 512) * kMiB);

  // A graphics-only process and one of the many on GPU 1.
  auto mixed = n.memory_used_by({400, 10005, 999999});
  ASSERT_TRUE(mixed);
  EXPECT_EQ(mixed->value, (128 + 1) * kMiB);

  auto none = n.memory_used_by({});
  ASSERT_TRUE(none);
  EXPECT_EQ(none->value, 0u);
  auto strangers = n.memory_used_by({1, 999999, -5});
  ASSERT_TRUE(strangers);
  EXPECT_EQ(strangers->value, 0u);
}

TEST_P(FakeNvml, DestructorShutsNvmlDown) {
  int before = active_();
  {
    auto nvml = load_nvml(path_);
    ASSERT_TRUE(nvml) << nvml.error().message();
    EXPECT_EQ(active_(), before + 1);
  }
  EXPECT_EQ(active_(), before);
}

TEST_P(FakeNvml, InitFailureCarriesNvmlErrorString) {
  int before = active_();
  ::setenv("FAKE_NVML_INIT_ERROR", "9", 1);
  auto nvml = load_nvml(path_);
  ::unsetenv("FAKE_NVML_INIT_ERROR");
  ASSERT_FALSE(nvml);
  EXPECT_THAT(nvml.error().message(), HasSubstr("Driver Not Loaded (9)"));
  EXPECT_THAT(nvml.error().message(), HasSubstr("nvmlInit"));
  EXPECT_EQ(active_(), before);  // no nvmlShutdown for an init that failed
}

TEST_P(FakeNvml, InaccessibleGpuIsNamedAndSkipped) {
  ::setenv("FAKE_NVML_DENY_GPU1", "1", 1);
  auto nvml = load_nvml(path_);
  ::unsetenv("FAKE_NVML_DENY_GPU1");
  ASSERT_TRUE(nvml) << nvml.error().message();
  EXPECT_EQ((*nvml)->device_count(), 2u);
  EXPECT_EQ((*nvml)->describe(),
            "NVML 555.42.06, 2 GPUs: Fake GPU Alpha, GPU 1 unusable: Insufficient Permissions (4)");
  auto used = (*nvml)->memory_used_by({100});
  ASSERT_TRUE(used) << used.error().message();
  EXPECT_EQ(used->value, 1024 * kMiB);  // GPU 0's share only
}

// libfake_nvml.so has the _v2/_v3 entry points and 24-byte process entries;
// libfake_nvml_v1.so only the unversioned ones with 16-byte entries.
INSTANTIATE_TEST_SUITE_P(Layouts, FakeNvml,
                         ::testing::Values("libfake_nvml.so", "libfake_nvml_v1.so"),
                         [](const auto& info) {
                           return std::string(info.param) == "libfake_nvml.so" ? "Current"
                                                                               : "Unversioned";
                         });

// --- The host's own driver (run on a GPU machine) ------------------------------

TEST(RealNvml, DescribesHostAndAgreesWithDiscovery) {
  auto nvml = load_nvml();
  if (!nvml) {
    if (gpu_required()) FAIL() << "SYMPHONY_REQUIRE_GPU=1 but " << nvml.error().message();
    GTEST_SKIP() << "no NVML on this host: " << nvml.error().message();
  }
  const Nvml& n = **nvml;
  std::cout << "[ info     ] " << n.describe() << "\n";
  EXPECT_GT(n.device_count(), 0u);
  EXPECT_THAT(n.describe(), ::testing::StartsWith("NVML "));

  auto own = n.memory_used_by({static_cast<int>(::getpid())});
  ASSERT_TRUE(own) << own.error().message();
  std::cout << "[ info     ] GPU memory of this test (no CUDA context): " << own->value << "\n";

  GpuDevices devices = discover_gpu_devices({});
  std::cout << "[ info     ] CUDA_VISIBLE_DEVICES=" << devices.cuda_visible_devices << " note=\""
            << devices.note << "\"\n";
  for (const std::string& node : devices.nodes) std::cout << "[ info     ] node " << node << "\n";
  for (const DeviceRule& r : devices.rules) {
    std::cout << "[ info     ] rule " << r.type << " " << r.major << ":" << r.minor << " "
              << r.access << "\n";
  }
  // Every node found is a GPU NVML knows; NVML may know more than the nodes
  // show (a container given some GPUs, or GPUs this process may not open).
  std::size_t listed = devices.cuda_visible_devices.empty()
                           ? 0
                           : 1 + std::count(devices.cuda_visible_devices.begin(),
                                            devices.cuda_visible_devices.end(), ',');
  EXPECT_GT(listed, 0u);
  EXPECT_LE(listed, n.device_count());
  EXPECT_THAT(devices.nodes, ::testing::Contains("/dev/nvidiactl"));
  EXPECT_THAT(devices.rules, ::testing::Contains(rw(195, 255)));
}

// Allocates GPU memory through the driver API (libcuda.so.1, declared here
// as NVML is in nvml.cc) and expects NVML to count it for this pid: the
// check that the process-entry layout is read correctly on a real driver.
TEST(RealNvml, CountsThisProcessesCudaAllocation) {
  auto nvml = load_nvml();
  if (!nvml) {
    if (gpu_required()) FAIL() << "SYMPHONY_REQUIRE_GPU=1 but " << nvml.error().message();
    GTEST_SKIP() << "no NVML on this host: " << nvml.error().message();
  }
  // Deliberately never dlclosed: unloading the CUDA driver library while a
  // context's threads may still run is unsafe.
  void* cuda = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (cuda == nullptr) {
    if (gpu_required()) FAIL() << ::dlerror();
    GTEST_SKIP() << "no CUDA driver library: " << ::dlerror();
  }
  using CuInit = int (*)(unsigned);
  using CuDeviceGet = int (*)(int*, int);
  using CuCtxCreate = int (*)(void**, unsigned, int);
  using CuCtxDestroy = int (*)(void*);
  using CuMemAlloc = int (*)(unsigned long long*, std::size_t);
  using CuMemFree = int (*)(unsigned long long);
  auto cu_init = reinterpret_cast<CuInit>(::dlsym(cuda, "cuInit"));
  auto cu_device_get = reinterpret_cast<CuDeviceGet>(::dlsym(cuda, "cuDeviceGet"));
  auto cu_ctx_create = reinterpret_cast<CuCtxCreate>(::dlsym(cuda, "cuCtxCreate_v2"));
  auto cu_ctx_destroy = reinterpret_cast<CuCtxDestroy>(::dlsym(cuda, "cuCtxDestroy_v2"));
  auto cu_mem_alloc = reinterpret_cast<CuMemAlloc>(::dlsym(cuda, "cuMemAlloc_v2"));
  auto cu_mem_free = reinterpret_cast<CuMemFree>(::dlsym(cuda, "cuMemFree_v2"));
  ASSERT_TRUE(cu_init && cu_device_get && cu_ctx_create && cu_ctx_destroy && cu_mem_alloc &&
              cu_mem_free);

  constexpr std::size_t kAlloc = 256 * kMiB;
  int device = 0;
  void* context = nullptr;
  unsigned long long pointer = 0;
  ASSERT_EQ(cu_init(0), 0);
  ASSERT_EQ(cu_device_get(&device, 0), 0);
  ASSERT_EQ(cu_ctx_create(&context, 0, device), 0);
  ASSERT_EQ(cu_mem_alloc(&pointer, kAlloc), 0);

  auto used = (*nvml)->memory_used_by({static_cast<int>(::getpid())});
  auto nobody = (*nvml)->memory_used_by({static_cast<int>(::getpid()) + 1000000});
  cu_mem_free(pointer);
  cu_ctx_destroy(context);

  ASSERT_TRUE(used) << used.error().message();
  ASSERT_TRUE(nobody) << nobody.error().message();
  std::cout << "[ info     ] NVML counts " << used->value << " bytes for pid " << ::getpid()
            << " after a " << kAlloc << "-byte cuMemAlloc\n";
  EXPECT_EQ(nobody->value, 0u);
  if (used->value == 0 && !gpu_required()) {
    // NVML reports pids as the driver's (host) PID namespace sees them.
    GTEST_SKIP()
        << "NVML lists no memory for pid " << ::getpid()
        << ": is this test in a PID namespace? (SYMPHONY_REQUIRE_GPU=1 makes this a failure)";
  }
  EXPECT_GE(used->value, kAlloc);
}

TEST(RealHost, DiscoveryWithoutDriverSaysWhy) {
  if (::access("/dev/nvidiactl", F_OK) == 0) GTEST_SKIP() << "this host has the NVIDIA driver";
  GpuDevices devices = discover_gpu_devices({});
  EXPECT_THAT(devices.nodes, IsEmpty());
  EXPECT_THAT(devices.rules, IsEmpty());
  EXPECT_EQ(devices.cuda_visible_devices, "");
  EXPECT_THAT(devices.note, HasSubstr("GPU permission grants nothing"));
}

}  // namespace
}  // namespace symphony::sandbox
