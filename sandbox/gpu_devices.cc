// Which device nodes a GPU grant opens to a sandbox, and the device-controller
// rules that go with them. Majors come from the nodes themselves (st_rdev)
// where they are real character devices, else from /proc/devices by driver
// name, so the same code works on a host and against a test's scratch tree.
#include "sandbox/gpu.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace symphony::sandbox {
namespace {

// Fixed in the kernel's Documentation/admin-guide/devices.txt, so they are a
// safe fallback when neither the node nor /proc/devices says otherwise.
// nvidia-uvm has no such number: it is allocated when the module loads.
constexpr int kNvidiaMajor = 195;
constexpr int kDrmMajor = 226;
// Minors of the control nodes that share the GPUs' major.
constexpr int kNvidiactlMinor = 255;
constexpr int kNvidiaModesetMinor = 254;

// The "Character devices:" section of /proc/devices: driver name -> major.
// Several names may share a major ("nvidia-frontend" and "nvidia" on 195).
using MajorTable = std::map<std::string, int, std::less<>>;

std::optional<MajorTable> read_char_majors(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  MajorTable majors;
  bool in_char_section = false;
  std::string line;
  while (std::getline(in, line)) {
    if (line == "Character devices:") {
      in_char_section = true;
      continue;
    }
    if (line == "Block devices:") break;
    if (!in_char_section) continue;
    std::string_view rest(line);
    rest.remove_prefix(std::min(rest.find_first_not_of(' '), rest.size()));
    int major = 0;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), major);
    if (ec != std::errc() || end == rest.data() + rest.size() || *end != ' ') continue;
    std::string_view name(end + 1, rest.data() + rest.size() - (end + 1));
    // The first name wins: the kernel lists each registration once.
    majors.emplace(std::string(name), major);
  }
  return majors;
}

std::optional<int> major_named(const MajorTable& majors,
                               std::initializer_list<std::string_view> names) {
  for (std::string_view name : names) {
    if (auto it = majors.find(name); it != majors.end()) return it->second;
  }
  return std::nullopt;
}

// "nvidia12" -> 12; anything else (nvidiactl, nvidia-uvm, nvidia1x) -> nullopt.
std::optional<unsigned> gpu_index_of(std::string_view name) {
  constexpr std::string_view prefix = "nvidia";
  if (name.size() <= prefix.size() || name.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::string_view digits = name.substr(prefix.size());
  unsigned index = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return index;
}

// Entry names of `dir`; none when it is missing or unreadable.
std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  return names;
}

// "renderD129" < "renderD1000": by length first, so numbered names sort by number.
bool natural_less(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return a.size() < b.size();
  return a < b;
}

// A node to grant, with the rule to use when the node is not a real
// character device (a test tree of plain files, or an odd host).
struct Wanted {
  std::string path;
  std::optional<int> fallback_major;
  int fallback_minor = -1;
  std::string_view driver;  // for the note when no major is known
};

void append_note(std::string& note, std::string_view text) {
  if (!note.empty()) note += "; ";
  note += text;
}

}  // namespace

GpuDevices discover_gpu_devices(const std::vector<unsigned>& granted, const std::string& dev_root,
                                const std::string& proc_devices) {
  GpuDevices out;

  std::optional<MajorTable> majors = read_char_majors(proc_devices);
  if (!majors) {
    append_note(out.note, proc_devices + " unreadable: device majors from the nodes only");
    majors.emplace();
  }
  std::optional<int> nvidia_major = major_named(*majors, {"nvidia-frontend", "nvidia"});
  std::optional<int> uvm_major = major_named(*majors, {"nvidia-uvm"});
  std::optional<int> drm_major = major_named(*majors, {"drm"});
  if (!nvidia_major) nvidia_major = kNvidiaMajor;
  if (!drm_major) drm_major = kDrmMajor;

  std::set<unsigned> present;
  for (const std::string& name : list_dir(dev_root)) {
    if (auto index = gpu_index_of(name)) present.insert(*index);
  }
  if (present.empty()) {
    append_note(out.note,
                "no " + dev_root + "/nvidia* on this host: GPU permission grants nothing");
    return out;
  }

  // The GPUs asked for that exist, in ascending order without repeats; an
  // empty grant means all of them.
  std::vector<unsigned> gpus;
  if (granted.empty()) {
    gpus.assign(present.begin(), present.end());
  } else {
    std::set<unsigned> asked(granted.begin(), granted.end());
    for (unsigned index : asked) {
      if (present.count(index) != 0) {
        gpus.push_back(index);
      } else {
        append_note(out.note, "granted GPU " + std::to_string(index) + " absent (no " + dev_root +
                                  "/nvidia" + std::to_string(index) + ")");
      }
    }
    if (gpus.empty()) {
      append_note(out.note, "none of the granted GPUs is present: GPU permission grants nothing");
      return out;
    }
  }

  std::vector<Wanted> wanted;
  for (unsigned index : gpus) {
    // The driver numbers its nodes in PCI probe order and NVML its GPUs in
    // PCI bus order, so the minor is the NVML index on ordinary hosts;
    // nvmlDeviceGetMinorNumber is the authority where they differ.
    wanted.push_back({dev_root + "/nvidia" + std::to_string(index), nvidia_major,
                      static_cast<int>(index), "nvidia"});
    if (!out.cuda_visible_devices.empty()) out.cuda_visible_devices += ",";
    out.cuda_visible_devices += std::to_string(index);
  }
  // Every CUDA process needs the control node and unified memory; modeset
  // only matters to display and Vulkan clients but is harmless.
  wanted.push_back({dev_root + "/nvidiactl", nvidia_major, kNvidiactlMinor, "nvidia"});
  wanted.push_back({dev_root + "/nvidia-uvm", uvm_major, -1, "nvidia-uvm"});
  wanted.push_back({dev_root + "/nvidia-uvm-tools", uvm_major, -1, "nvidia-uvm"});
  wanted.push_back({dev_root + "/nvidia-modeset", nvidia_major, kNvidiaModesetMinor, "nvidia"});

  // DRM nodes (EGL/Vulkan, not CUDA) go in whole even for a subset grant:
  // card/renderD numbers follow probe order, not NVML indices, and telling
  // which PCI device a node belongs to needs sysfs, which a scratch tree and
  // some hosts lack.
  std::vector<std::string> dri;
  for (std::string& name : list_dir(dev_root + "/dri")) {
    if (name.starts_with("renderD") || name.starts_with("card")) dri.push_back(std::move(name));
  }
  std::sort(dri.begin(), dri.end(), [](const std::string& a, const std::string& b) {
    bool a_card = a.starts_with("card");
    bool b_card = b.starts_with("card");
    if (a_card != b_card) return a_card;
    return natural_less(a, b);
  });
  for (const std::string& name : dri)
    wanted.push_back({dev_root + "/dri/" + name, drm_major, -1, "drm"});

  for (const Wanted& w : wanted) {
    struct stat st {};
    if (::stat(w.path.c_str(), &st) != 0) continue;  // absent nodes are simply not granted
    out.nodes.push_back(w.path);
    DeviceRule rule;
    rule.access = "rw";  // no "m": the sandbox must not create device nodes
    if (S_ISCHR(st.st_mode)) {
      // The node itself is the ground truth; /proc/devices names drift
      // between driver versions.
      rule.major = static_cast<int>(major(st.st_rdev));
      rule.minor = static_cast<int>(minor(st.st_rdev));
    } else if (w.fallback_major) {
      rule.major = *w.fallback_major;
      rule.minor = w.fallback_minor;
    } else {
      append_note(out.note, w.path + " is not a character device and " + std::string(w.driver) +
                                " is not in " + proc_devices +
                                ": not allowed by the device controller");
      continue;
    }
    if (std::find(out.rules.begin(), out.rules.end(), rule) == out.rules.end()) {
      out.rules.push_back(std::move(rule));
    }
  }

  // The sandbox cannot create these itself (no "m", no nvidia-modprobe), so
  // CUDA inside fails without them; say so now rather than leave it to
  // "no CUDA-capable device" later.
  for (const char* required : {"nvidiactl", "nvidia-uvm"}) {
    std::string path = dev_root + "/" + required;
    if (std::find(out.nodes.begin(), out.nodes.end(), path) == out.nodes.end()) {
      append_note(out.note, "no " + path +
                                ": CUDA will not start (load the module on the host, "
                                "e.g. nvidia-modprobe -u -c=0)");
    }
  }

  return out;
}

}  // namespace symphony::sandbox
