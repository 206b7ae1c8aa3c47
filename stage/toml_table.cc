#include "stage/toml_table.h"

#include <fmt/format.h>

#include <algorithm>

#include "base/toml_names.h"

namespace symphony::stage {

std::string toml_location(std::string_view source, const toml::source_region& r) {
  if (r.begin.line == 0) return std::string(source);
  if (r.begin.column == 0) return fmt::format("{}:{}", source, r.begin.line);
  return fmt::format("{}:{}:{}", source, r.begin.line, r.begin.column);
}

Error toml_field_error(std::string_view source, const toml::source_region& at, std::string_view path,
                       std::string_view what) {
  return Error::invalid(fmt::format("{}: {}: {}", toml_location(source, at), path, what));
}

Error toml_wrong_type(std::string_view source, const toml::node& n, std::string_view path,
                      std::string_view expected) {
  return toml_field_error(source, n.source(), path,
                          fmt::format("expected {}, got {}", expected, config::toml_type_name(n)));
}

std::string TomlTable::path_of(std::string_view key) const {
  return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
}

Error TomlTable::error(const toml::node& at, std::string_view key, std::string_view what) const {
  return toml_field_error(source_, at.source(), path_of(key), what);
}

Result<void> TomlTable::only(std::initializer_list<std::string_view> known) const {
  for (const auto& [key, node] : table_) {
    if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
    const auto& at = key.source().begin.line ? key.source() : node.source();
    return toml_field_error(source_, at, path_of(key.str()),
                            fmt::format("unknown field (expected one of: {})", fmt::join(known, ", ")));
  }
  return ok();
}

Error TomlTable::missing(std::string_view key) const {
  // The root table's position (1:1) would point at whatever comes first.
  if (path_.empty()) return Error::invalid(fmt::format("{}: {}: missing required field", source_, key));
  return toml_field_error(source_, table_.source(), path_of(key), "missing required field");
}

Result<std::optional<std::string>> TomlTable::string(std::string_view key, bool required) const {
  const toml::node* n = get(key);
  if (!n) {
    if (required) return missing(key);
    return std::optional<std::string>();
  }
  auto s = n->as_string();
  if (!s) return toml_wrong_type(source_, *n, path_of(key), "string");
  return std::optional<std::string>(s->get());
}

Result<std::optional<bool>> TomlTable::boolean(std::string_view key) const {
  const toml::node* n = get(key);
  if (!n) return std::optional<bool>();
  auto b = n->as_boolean();
  if (!b) return toml_wrong_type(source_, *n, path_of(key), "boolean");
  return std::optional<bool>(b->get());
}

Result<const toml::table*> TomlTable::table(std::string_view key) const {
  const toml::node* n = get(key);
  if (!n) return static_cast<const toml::table*>(nullptr);
  if (!n->is_table()) return toml_wrong_type(source_, *n, path_of(key), "table");
  return n->as_table();
}

Result<const toml::array*> TomlTable::array(std::string_view key) const {
  const toml::node* n = get(key);
  if (!n) return static_cast<const toml::array*>(nullptr);
  if (!n->is_array()) return toml_wrong_type(source_, *n, path_of(key), "array");
  return n->as_array();
}

}  // namespace symphony::stage
