// Configuration: TOML files validated against a schema. A component declares
// its keys (type, default, range, documentation) in a Schema; Config merges a
// main file, its drop-ins (`NAME.d/*.toml`, in lexical order) and command-line
// overrides on top of the defaults. Unknown keys, wrong types and values out
// of range are errors that name the file, line and key. The schema is also
// the single place defaults are documented: render_defaults() prints it as a
// commented TOML file, and docs/configuration.md is checked against it.
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
  std::string key;  // dotted: "ipc.max_message_size"
  Type type = Type::string;
  Value default_value;
  std::optional<std::int64_t> min;   // integers: inclusive bounds
  std::optional<std::int64_t> max;
  std::vector<std::string> choices;  // strings: allowed values (empty = any)
  std::string doc;                   // one sentence; rendered into the defaults file
  bool octal = false;                // integers: render as 0o… (permission bits)
};

class Schema {
 public:
  Schema& add(KeySpec spec);
  const KeySpec* find(std::string_view key) const;
  const std::vector<KeySpec>& keys() const { return keys_; }
  // A commented TOML file holding every key at its default, grouped by table.
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
  const Origin& origin(std::string_view key) const;

  // Files merged so far, in order.
  const std::vector<std::filesystem::path>& files() const { return files_; }

 private:
  struct Entry {
    Value value;
    Origin origin;
  };
  const Entry& entry(std::string_view key) const;
  Result<void> check(const KeySpec& spec, const Value& value, const Origin& where) const;

  const Schema* schema_;
  std::map<std::string, Entry, std::less<>> values_;
  std::vector<std::filesystem::path> files_;
};

// `main` followed by `main.d/*.toml` sorted by name (the drop-in convention of
// systemd and friends). Missing files and directories are left out.
std::vector<std::filesystem::path> files_with_dropins(const std::filesystem::path& main);

std::string_view type_name(Type type);

}  // namespace symphony::config
