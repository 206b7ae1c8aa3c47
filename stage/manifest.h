// The extension manifest (extension.toml): who an extension is, what it
// provides, what it may touch and how it is started. Parsed strictly — an
// unknown or malformed field is an error naming the file, line, column and
// field path ("ext.toml:14:8: capabilities[1].params.path.type: ...") —
// because a typo in a permission must never silently widen or narrow what an
// extension gets. The format is documented in docs/extensions.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "sandbox/spec.h"
#include "stage/version.h"

namespace symphony::stage {

// `operator` is a C++ keyword, hence the underscore.
enum class Kind { instrument, operator_, motif };
enum class ParamType { string, integer, number, boolean, array, object, artifact };
enum class Activation { on_demand, at_start };

std::string_view to_string(Kind kind);
std::string_view to_string(ParamType type);
std::string_view to_string(Activation activation);

struct Param {
  std::string name;
  ParamType type = ParamType::string;
  bool required = false;
  std::optional<nlohmann::json> default_value;  // of `type`; never with required
  std::string description;
};

struct Output {
  std::string name;
  std::string media_type;  // "type/subtype", e.g. "application/json"
};

struct Capability {
  std::string name;  // "git.diff"
  std::string description;
  std::vector<Param> params;  // sorted by name
  std::vector<Output> outputs;
};

// A filesystem grant: under the workspace ("workspace", "workspace/src") or
// an absolute host path. Never contains "..".
struct FilesystemGrant {
  bool in_workspace = true;
  std::string path;  // relative to the workspace ("" = its root) or absolute, normalised
  sandbox::Access access = sandbox::Access::read_only;
};

struct Permissions {
  std::vector<FilesystemGrant> filesystem;
  bool network = false;
  bool gpu = false;
  std::vector<std::string> devices;  // "/dev/..."
};

struct Limits {
  std::optional<double> cpu;  // CPUs (0.5 = half of one)
  std::optional<sandbox::Bytes> memory;
  std::optional<std::uint64_t> pids;
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<sandbox::Bytes> gpu_memory;
};

struct Manifest {
  std::string id;  // reverse DNS: "org.symphony.git"
  Version version;
  Kind kind = Kind::operator_;
  std::string description;
  // The entry point as written. A relative program path ("bin/ext",
  // "./run.sh") is resolved against `directory`; the program runs with
  // `directory` as its working directory, so relative arguments ("main.py")
  // name files of the extension.
  std::vector<std::string> command;
  std::vector<Capability> capabilities;
  Permissions permissions;
  Limits limits;
  Activation activation = Activation::on_demand;
  VersionRange symphony;  // the Symphony versions it works with

  std::string source;               // the file (or name) it was parsed from
  int symphony_line = 0;            // where `symphony` was written, for errors
  std::filesystem::path directory;  // absolute; empty when parsed from text

  const Capability* find_capability(std::string_view name) const;
};

// Parses manifest text; `source_name` names it in errors. `directory` stays
// empty (load_manifest sets it).
Result<Manifest> parse_manifest(std::string_view text, std::string_view source_name);
// Reads and parses a manifest file; sets `directory` to the file's absolute
// directory. A missing or unreadable file is an error with its errno.
Result<Manifest> load_manifest(const std::filesystem::path& path);

// Whether the manifest's `symphony` range admits `symphony_version`; the error
// names the file, line, extension and both versions.
Result<void> check_compatible(const Manifest& manifest, const Version& symphony_version);
Result<void> check_compatible(const Manifest& manifest, std::string_view symphony_version);

// The program argv: command[0] resolved against `directory` when it is a
// relative path with a '/', the rest as written.
std::vector<std::string> entry_argv(const Manifest& manifest);

// The sandbox the extension runs in, for `workspace` (an absolute path):
// argv and cwd from the entry, a read-only bind of the extension's own
// directory (so it can run), then exactly the manifest's filesystem grants
// (workspace paths made absolute), network, GPU, devices and limits. Fields
// the manifest does not speak to (env, fds, uid) are left at their defaults
// for the extension host to fill in. The result passes sandbox::validate();
// errors name the field. Needs `manifest.directory` (set by load_manifest).
Result<sandbox::Spec> sandbox_spec(const Manifest& manifest,
                                   const std::filesystem::path& workspace);

}  // namespace symphony::stage
