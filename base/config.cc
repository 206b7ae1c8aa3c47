// TOML parsing (toml++) and schema validation behind Config. toml++ throws
// toml::parse_error; it is caught here and turned into an Error naming the
// file and line, so no exception leaves this module.
#include "base/config.h"
#include "base/toml_names.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

namespace symphony::config {
namespace {

std::string where(const Origin& o) {
  return o.line > 0 ? fmt::format("{}:{}", o.source, o.line) : o.source;
}

std::string render_value(const Value& v) {
  struct Visitor {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(const std::string& s) const {
      std::ostringstream out;
      out << toml::value<std::string>(s);
      return out.str();
    }
    std::string operator()(const StringList& l) const {
      std::string out = "[";
      for (std::size_t i = 0; i < l.size(); ++i) {
        if (i) out += ", ";
        out += (*this)(l[i]);
      }
      return out + "]";
    }
  };
  return std::visit(Visitor{}, v);
}

const char* node_type_name(const toml::node& n) { return toml_type_name(n); }

// Converts a TOML node to the type the schema asks for. `key` is the
// concrete key (a wildcard spec's instance), named in errors.
Result<Value> convert(const KeySpec& spec, std::string_view key, const toml::node& node,
                      const Origin& at) {
  auto wrong = [&](std::string_view got) {
    return Error::invalid(fmt::format("{}: {}: expected {}, got {}", where(at), key,
                                      type_name(spec.type), got));
  };
  switch (spec.type) {
    case Type::boolean:
      if (auto b = node.as_boolean()) return Value(b->get());
      return wrong(node_type_name(node));
    case Type::integer:
      if (auto i = node.as_integer()) return Value(i->get());
      return wrong(node_type_name(node));
    case Type::string:
      if (auto s = node.as_string()) return Value(s->get());
      return wrong(node_type_name(node));
    case Type::string_list: {
      auto arr = node.as_array();
      if (!arr) return wrong(node_type_name(node));
      StringList out;
      for (std::size_t i = 0; i < arr->size(); ++i) {
        auto s = (*arr)[i].as_string();
        if (!s) {
          return Error::invalid(fmt::format("{}: {}[{}]: expected string, got {}", where(at),
                                            key, i, node_type_name((*arr)[i])));
        }
        out.push_back(s->get());
      }
      return Value(std::move(out));
    }
  }
  return wrong("unknown");
}

std::vector<std::string_view> split_key(std::string_view key) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    auto dot = key.find('.', start);
    out.push_back(key.substr(start, dot == std::string_view::npos ? key.npos : dot - start));
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

template <class Segments>
std::string join_key(const Segments& segments, std::size_t count) {
  std::string out;
  for (std::size_t i = 0; i < count; ++i) {
    if (i) out += '.';
    out += segments[i];
  }
  return out;
}

// How the first `path.size()` segments of `pattern` relate to `path`.
enum class PrefixMatch { no, yes, bad_name };
template <class Segments>
PrefixMatch match_prefix(const std::vector<std::string_view>& pattern, const Segments& path,
                         std::size_t* bad_index = nullptr) {
  if (path.size() > pattern.size()) return PrefixMatch::no;
  std::optional<std::size_t> bad;
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (pattern[i] == "*") {
      if (!valid_instance_name(path[i]) && !bad) bad = i;
    } else if (pattern[i] != path[i]) {
      return PrefixMatch::no;
    }
  }
  if (bad) {
    if (bad_index) *bad_index = *bad;
    return PrefixMatch::bad_name;
  }
  return PrefixMatch::yes;
}

// The wildcard instances a concrete `path` names under `pattern` (which it
// matches as a prefix): (prefix before the "*", the name in its place).
template <class Segments>
void collect_instances(const std::vector<std::string_view>& pattern, const Segments& path,
                       std::vector<std::pair<std::string, std::string>>& out) {
  for (std::size_t i = 0; i < path.size() && i < pattern.size(); ++i) {
    if (pattern[i] == "*") out.emplace_back(join_key(path, i), std::string(path[i]));
  }
}

// The key as the defaults file shows it: each "*" as "default".
std::string render_key(std::string_view key) {
  auto segments = split_key(key);
  std::vector<std::string_view> shown;
  for (auto s : segments) shown.push_back(s == "*" ? std::string_view("default") : s);
  return join_key(shown, shown.size());
}

}  // namespace

bool is_wildcard(std::string_view key) {
  for (auto s : split_key(key))
    if (s == "*") return true;
  return false;
}

bool valid_instance_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
  });
}

std::string_view type_name(Type type) {
  switch (type) {
    case Type::boolean: return "boolean";
    case Type::integer: return "integer";
    case Type::string: return "string";
    case Type::string_list: return "array of strings";
  }
  return "?";
}

Schema& Schema::add(KeySpec spec) {
  keys_.push_back(std::move(spec));
  return *this;
}

const KeySpec* Schema::find(std::string_view key) const {
  for (const auto& k : keys_)
    if (k.key == key) return &k;
  auto concrete = split_key(key);
  for (const auto& k : keys_) {
    if (!is_wildcard(k.key)) continue;
    auto pattern = split_key(k.key);
    if (pattern.size() == concrete.size() && match_prefix(pattern, concrete) == PrefixMatch::yes)
      return &k;
  }
  return nullptr;
}

std::string Schema::render_defaults() const {
  auto table_of = [](const std::string& key) {
    auto dot = key.rfind('.');
    return dot == std::string::npos ? std::string() : key.substr(0, dot);
  };
  // One section per table, top-level keys first: TOML has no header that
  // returns to the root table, and a table's header may appear only once, so
  // keys are grouped even when the schema declares a table's keys apart.
  std::vector<std::string> tables{""};
  for (const auto& k : keys_) {
    std::string t = table_of(render_key(k.key));
    if (std::find(tables.begin(), tables.end(), t) == tables.end()) tables.push_back(t);
  }
  std::string out;
  for (const auto& table : tables) {
    if (!table.empty()) out += fmt::format("\n[{}]\n", table);
    bool explained = false;
    for (const auto& k : keys_) {
      std::string shown = render_key(k.key);
      if (table_of(shown) != table) continue;
      if (is_wildcard(k.key) && !explained) {
        // Say once per table that "default" is only one possible name.
        std::string pattern = k.key;
        for (std::size_t at; (at = pattern.find('*')) != std::string::npos;)
          pattern.replace(at, 1, "<name>");
        out += fmt::format("# (one table or key per name: {})\n", pattern);
        explained = true;
      }
      std::string leaf = table.empty() ? shown : shown.substr(table.size() + 1);
      out += fmt::format("# {}\n", k.doc);
      if (k.min || k.max) {
        out += fmt::format("# Range: {} .. {}\n", k.min ? std::to_string(*k.min) : "",
                           k.max ? std::to_string(*k.max) : "");
      }
      if (!k.choices.empty()) out += fmt::format("# One of: {}\n", fmt::join(k.choices, ", "));
      if (k.octal && std::holds_alternative<std::int64_t>(k.default_value)) {
      out += fmt::format("#{} = 0o{:o}\n", leaf, std::get<std::int64_t>(k.default_value));
    } else {
      out += fmt::format("#{} = {}\n", leaf, render_value(k.default_value));
    }
    }
  }
  return out;
}

Config::Config(const Schema& schema) : schema_(&schema) {
  // A wildcard key's entry holds the default every instance starts from.
  for (const auto& k : schema.keys()) values_[k.key] = Entry{k.default_value, {"default", 0}};
}

Result<void> Config::check(const KeySpec& spec, std::string_view key, const Value& value,
                           const Origin& at) const {
  if (auto i = std::get_if<std::int64_t>(&value)) {
    if ((spec.min && *i < *spec.min) || (spec.max && *i > *spec.max)) {
      return Error::invalid(fmt::format("{}: {}: value {} out of range {}..{}", where(at),
                                        key, *i, spec.min ? std::to_string(*spec.min) : "",
                                        spec.max ? std::to_string(*spec.max) : ""));
    }
  }
  if (auto s = std::get_if<std::string>(&value); s && !spec.choices.empty()) {
    if (std::find(spec.choices.begin(), spec.choices.end(), *s) == spec.choices.end()) {
      return Error::invalid(fmt::format("{}: {}: '{}' is not one of {}", where(at), key, *s,
                                        fmt::join(spec.choices, ", ")));
    }
  }
  return ok();
}

Result<void> Config::merge_text(std::string_view text, std::string_view source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Error::invalid(fmt::format("{}:{}:{}: {}", source, e.source().begin.line,
                                      e.source().begin.column, e.description()));
  }
  // Validate everything first, then apply: a bad file changes nothing.
  std::vector<std::pair<std::string, Entry>> staged;
  std::vector<std::pair<std::string, std::string>> named;  // wildcard instances
  Result<void> status = ok();
  auto bad_name = [&](const Origin& at, const std::string& key, std::string_view name) {
    return Error::invalid(fmt::format(
        "{}: {}: '{}' is not a valid name (1-64 of A-Z, a-z, 0-9, '_', '-')", where(at), key,
        name));
  };
  using Path = std::vector<std::string>;
  auto walk = [&](auto&& self, const toml::table& table, const Path& prefix) -> void {
    for (const auto& [k, node] : table) {
      if (!status) return;
      Path path = prefix;
      path.emplace_back(k.str());
      std::string key = join_key(path, path.size());
      Origin at{std::string(source), static_cast<int>(node.source().begin.line)};
      const KeySpec* spec = schema_->find(key);
      if (spec == nullptr) {
        if (auto sub = node.as_table()) {
          // A table is known when some key lives under it; a table that
          // stands for a wildcard segment names an instance.
          bool known = false;
          for (const KeySpec& s : schema_->keys()) {
            auto pattern = split_key(s.key);
            if (pattern.size() <= path.size()) continue;
            std::size_t bad = 0;
            auto m = match_prefix(pattern, path, &bad);
            if (m == PrefixMatch::bad_name) {
              status = bad_name(at, key, path[bad]);
              return;
            }
            if (m == PrefixMatch::yes) {
              known = true;
              collect_instances(pattern, path, named);
              break;
            }
          }
          if (known) {
            self(self, *sub, path);
            continue;
          }
        }
        // A key that would match a wildcard but for its name says so.
        for (const KeySpec& s : schema_->keys()) {
          auto pattern = split_key(s.key);
          std::size_t bad = 0;
          if (pattern.size() == path.size() &&
              match_prefix(pattern, path, &bad) == PrefixMatch::bad_name) {
            status = bad_name(at, key, path[bad]);
            return;
          }
        }
        status = Error::invalid(fmt::format("{}: unknown key '{}'", where(at), key));
        return;
      }
      auto value = convert(*spec, key, node, at);
      if (!value) {
        status = std::move(value).error();
        return;
      }
      if (auto r = check(*spec, key, *value, at); !r) {
        status = std::move(r).error();
        return;
      }
      collect_instances(split_key(spec->key), path, named);
      staged.emplace_back(key, Entry{std::move(*value), at});
    }
  };
  walk(walk, root, Path{});
  if (!status) return status;
  for (auto& [key, entry] : staged) values_[key] = std::move(entry);
  for (auto& [prefix, name] : named) add_instance(prefix, name);
  return ok();
}

void Config::add_instance(const std::string& prefix, const std::string& name) {
  auto& names = instances_[prefix];
  auto at = std::lower_bound(names.begin(), names.end(), name);
  if (at == names.end() || *at != name) names.insert(at, name);
}

std::vector<std::string> Config::instances(std::string_view prefix) const {
  auto it = instances_.find(prefix);
  return it == instances_.end() ? std::vector<std::string>{} : it->second;
}

Result<void> Config::merge_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::from_errno("open config " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Error::from_errno("read config " + path.string());
  if (auto r = merge_text(text.str(), path.string()); !r) return r;
  files_.push_back(path);
  return ok();
}

Result<void> Config::set(std::string_view key, std::string_view text, std::string_view source) {
  const KeySpec* spec = schema_->find(key);
  Origin at{std::string(source), 0};
  if (spec == nullptr) return Error::invalid(fmt::format("{}: unknown key '{}'", source, key));
  if (is_wildcard(key)) {
    return Error::invalid(
        fmt::format("{}: {}: name an instance in place of '*'", source, key));
  }
  Value value;
  switch (spec->type) {
    case Type::boolean:
      if (text == "true" || text == "yes" || text == "1") {
        value = true;
      } else if (text == "false" || text == "no" || text == "0") {
        value = false;
      } else {
        return Error::invalid(fmt::format("{}: {}: expected boolean, got '{}'", source, key, text));
      }
      break;
    case Type::integer: {
      std::int64_t i = 0;
      // TOML's prefixes: 0o755, 0x1f, 0b101.
      int base = 10;
      std::string_view digits = text;
      if (digits.size() > 2 && digits[0] == '0') {
        if (digits[1] == 'o') base = 8;
        if (digits[1] == 'x') base = 16;
        if (digits[1] == 'b') base = 2;
        if (base != 10) digits.remove_prefix(2);
      }
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), i, base);
      if (ec != std::errc() || end != digits.data() + digits.size()) {
        return Error::invalid(fmt::format("{}: {}: expected integer, got '{}'", source, key, text));
      }
      value = i;
      break;
    }
    case Type::string: value = std::string(text); break;
    case Type::string_list: {
      StringList list;
      std::size_t start = 0;
      while (start <= text.size() && !text.empty()) {
        auto comma = text.find(',', start);
        list.emplace_back(text.substr(start, comma == std::string_view::npos ? text.npos
                                                                                : comma - start));
        if (comma == std::string_view::npos) break;
        start = comma + 1;
      }
      value = std::move(list);
      break;
    }
  }
  if (auto r = check(*spec, key, value, at); !r) return r;
  values_[std::string(key)] = Entry{std::move(value), at};
  std::vector<std::pair<std::string, std::string>> named;
  collect_instances(split_key(spec->key), split_key(key), named);
  for (auto& [prefix, name] : named) add_instance(prefix, name);
  return ok();
}

const Config::Entry& Config::entry(std::string_view key) const {
  auto it = values_.find(key);
  if (it == values_.end()) {
    // An instance of a wildcard key that nothing set: the wildcard's default.
    if (const KeySpec* spec = schema_->find(key); spec && is_wildcard(spec->key))
      it = values_.find(spec->key);
  }
  // Asking for a key the schema does not declare is a programming error.
  if (it == values_.end()) {

    std::fprintf(stderr, "symphony: config key '%.*s' is not in the schema\n",
                 static_cast<int>(key.size()), key.data());
    std::abort();
  }
  return it->second;
}

bool Config::get_bool(std::string_view key) const { return std::get<bool>(entry(key).value); }
std::int64_t Config::get_int(std::string_view key) const {
  return std::get<std::int64_t>(entry(key).value);
}
const std::string& Config::get_string(std::string_view key) const {
  return std::get<std::string>(entry(key).value);
}
const StringList& Config::get_list(std::string_view key) const {
  return std::get<StringList>(entry(key).value);
}
const Origin& Config::origin(std::string_view key) const { return entry(key).origin; }

std::vector<std::filesystem::path> files_with_dropins(const std::filesystem::path& main) {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  if (std::filesystem::is_regular_file(main, ec)) out.push_back(main);
  std::filesystem::path dir = main;
  dir += ".d";
  std::vector<std::filesystem::path> dropins;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".toml" && it->is_regular_file(ec)) dropins.push_back(it->path());
  }
  std::sort(dropins.begin(), dropins.end());
  out.insert(out.end(), dropins.begin(), dropins.end());
  return out;
}

const char* toml_type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    default: return "date/time";
  }
}

}  // namespace symphony::config
