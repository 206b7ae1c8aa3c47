// Strict reading of one TOML table (toml++), shared by the parsers of
// extension manifests (stage/manifest.cc) and workflow files
// (conductor/workflow_file.cc). Every error names the file, the line and
// column toml++ recorded, and the field path: "FILE:LINE:COL: path.field: what".
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <toml++/toml.h>

#include "base/result.h"

namespace symphony::stage {

// "FILE:LINE:COL", "FILE:LINE" or "FILE", as much as toml++ recorded.
std::string toml_location(std::string_view source, const toml::source_region& r);

// "FILE:LINE:COL: path: what".
Error toml_field_error(std::string_view source, const toml::source_region& at, std::string_view path,
                       std::string_view what);

// "FILE:LINE:COL: path: expected EXPECTED, got TYPE".
Error toml_wrong_type(std::string_view source, const toml::node& n, std::string_view path,
                      std::string_view expected);

// One TOML table being read: its keys are checked against the known ones,
// and each accessor reports errors at the value's position under `path`.
class TomlTable {
 public:
  TomlTable(std::string_view source, const toml::table& table, std::string path)
      : source_(source), table_(table), path_(std::move(path)) {}

  std::string path_of(std::string_view key) const;
  std::string_view source() const { return source_; }
  Error error(const toml::node& at, std::string_view key, std::string_view what) const;

  // An error for the first key not in `known`.
  Result<void> only(std::initializer_list<std::string_view> known) const;

  const toml::node* get(std::string_view key) const { return table_.get(key); }

  Error missing(std::string_view key) const;

  // Absent: nullopt (or the `missing` error when required).
  Result<std::optional<std::string>> string(std::string_view key, bool required = false) const;
  Result<std::optional<bool>> boolean(std::string_view key) const;
  // Absent: nullptr.
  Result<const toml::table*> table(std::string_view key) const;
  Result<const toml::array*> array(std::string_view key) const;

 private:
  std::string_view source_;
  const toml::table& table_;
  std::string path_;
};

}  // namespace symphony::stage
