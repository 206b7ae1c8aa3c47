// Configuration: TOML files validated against a schema. A component declares
// its keys (type, default, range, documentation) in a Schema; Config merges a
// main file, its drop-ins (`NAME.d/*.toml`, in lexical order) and command-line
// overrides on top of the defaults. Unknown keys, wrong types and values out
// of range are errors that name the file, line and key. The schema is also
// the single place defaults are documented: render_defaults() prints it as a
// commented TOML file, and docs/configuration.md is checked against it.
//
// A key may have wildcard segments ("pit.retention.*.active_days"): "*"
// stands for exactly one segment the user names ("default", "report"), so a
// component can take one table per instance of something (one retention
// policy per artifact kind). Config::instances() says which were named.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.h"

namespace symphony::config {

using StringList = std::vector<std::string>;
using Value = std::variant<bool, std::int64_t, std::string, StringList>;

enum class Type { boolean, integer, string, string_list };

struct KeySpec {
  // Dotted: "ipc.max_message_size". A segment "*" is a wildcard that matches
  // any one instance name ([A-Za-z0-9_-]+): "pit.retention.*.active_days".
  std::string key;
  Type type = Type::string;
  Value default_value;
  std::optional<std::int64_t> min;   // integers: inclusive bounds
  std::optional<std::int64_t> max;
  std::vector<std::string> choices;  // strings: allowed values (empty = any)
  std::string doc;                   // one sentence; rendered into the defaults file
  bool octal = false;                // integers: render as 0o… (permission bits)
};

// Whether `key` has a "*" segment.
bool is_wildcard(std::string_view key);
// Whether `name` may stand in for a "*" segment: 1-64 of [A-Za-z0-9_-].
bool valid_instance_name(std::string_view name);

class Schema {
 public:
  Schema& add(KeySpec spec);
  // The spec of a concrete key: the key declared exactly so, else the first
  // wildcard key that matches it ("pit.retention.report.active_days" finds
  // "pit.retention.*.active_days"). A wildcard key itself finds its spec.
  // Null when nothing matches.
  const KeySpec* find(std::string_view key) const;
  const std::vector<KeySpec>& keys() const { return keys_; }
  // A commented TOML file holding every key at its default, grouped by table.
  // A wildcard segment is rendered as "default", so "pit.retention.*.x"
  // appears under [pit.retention.default] (parsing the file back then names
  // the instance "default", as any config naming it would).
  std::string render_defaults() const;

 private:
  std::vector<KeySpec> keys_;
};

// Where a value came from, for error messages and `status`.
struct Origin {
  std::string source;  // a file path, "command line" or "default"
  int line = 0;        // 0 when unknown
};

class Config {
 public:
  explicit Config(const Schema& schema);

  // Parses `path` and merges its keys over the current values. On error
  // nothing of this file is applied. A missing file is an error (ENOENT).
  Result<void> merge_file(const std::filesystem::path& path);
  // Parses TOML text (for tests and inline overrides); `source` names it.
  Result<void> merge_text(std::string_view text, std::string_view source);
  // A command-line override: parses `text` for the key's type.
  Result<void> set(std::string_view key, std::string_view text, std::string_view source);

  bool get_bool(std::string_view key) const;
  std::int64_t get_int(std::string_view key) const;
  const std::string& get_string(std::string_view key) const;
  const StringList& get_list(std::string_view key) const;
  // `key` may be a concrete instance of a wildcard key: one that no file set
  // reads as the wildcard's default (origin "default").
  const Origin& origin(std::string_view key) const;

  // The names that files and set() gave to the wildcard segment right after
  // `prefix`, sorted: with "pit.retention.*.active_days" in the schema and
  // [pit.retention.default] and [pit.retention.report] in a file,
  // instances("pit.retention") is {"default", "report"}. A table header
  // alone ("[pit.retention.scratch]", no keys) names an instance too, whose
  // keys are all at their defaults.
  std::vector<std::string> instances(std::string_view prefix) const;
  // Files merged so far, in order.
  const std::vector<std::filesystem::path>& files() const { return files_; }

 private:
  struct Entry {
    Value value;
    Origin origin;
  };
  const Entry& entry(std::string_view key) const;
  Result<void> check(const KeySpec& spec, std::string_view key, const Value& value,
                     const Origin& where) const;
  void add_instance(const std::string& prefix, const std::string& name);

  const Schema* schema_;
  // Fixed keys and wildcard keys (at their defaults) from the start; a
  // concrete instance key once something sets it.
  std::map<std::string, Entry, std::less<>> values_;
  // instances_["pit.retention"] = {"default", "report"}.
  std::map<std::string, std::vector<std::string>, std::less<>> instances_;
  std::vector<std::filesystem::path> files_;
};

// `main` followed by `main.d/*.toml` sorted by name (the drop-in convention of
// systemd and friends). Missing files and directories are left out.
std::vector<std::filesystem::path> files_with_dropins(const std::filesystem::path& main);

std::string_view type_name(Type type);

}  // namespace symphony::config
