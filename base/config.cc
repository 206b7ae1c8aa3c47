// TOML parsing (toml++) and schema validation behind Config. toml++ throws
// toml::parse_error; it is caught here and turned into an Error naming the
// file and line, so no exception leaves this module.
#include "base/config.h"

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

const char* node_type_name(const toml::node& n) {
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

// Converts a TOML node to the type the schema asks for.
Result<Value> convert(const KeySpec& spec, const toml::node& node, const Origin& at) {
  auto wrong = [&](std::string_view got) {
    return Error::invalid(fmt::format("{}: {}: expected {}, got {}", where(at), spec.key,
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
                                            spec.key, i, node_type_name((*arr)[i])));
        }
        out.push_back(s->get());
      }
      return Value(std::move(out));
    }
  }
  return wrong("unknown");
}

}  // namespace

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
    std::string t = table_of(k.key);
    if (std::find(tables.begin(), tables.end(), t) == tables.end()) tables.push_back(t);
  }
  std::string out;
  for (const auto& table : tables) {
    if (!table.empty()) out += fmt::format("\n[{}]\n", table);
    for (const auto& k : keys_) {
      if (table_of(k.key) != table) continue;
      std::string leaf = table.empty() ? k.key : k.key.substr(table.size() + 1);
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
  for (const auto& k : schema.keys()) values_[k.key] = Entry{k.default_value, {"default", 0}};
}

Result<void> Config::check(const KeySpec& spec, const Value& value, const Origin& at) const {
  if (auto i = std::get_if<std::int64_t>(&value)) {
    if ((spec.min && *i < *spec.min) || (spec.max && *i > *spec.max)) {
      return Error::invalid(fmt::format("{}: {}: value {} out of range {}..{}", where(at),
                                        spec.key, *i, spec.min ? std::to_string(*spec.min) : "",
                                        spec.max ? std::to_string(*spec.max) : ""));
    }
  }
  if (auto s = std::get_if<std::string>(&value); s && !spec.choices.empty()) {
    if (std::find(spec.choices.begin(), spec.choices.end(), *s) == spec.choices.end()) {
      return Error::invalid(fmt::format("{}: {}: '{}' is not one of {}", where(at), spec.key, *s,
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
  Result<void> status = ok();
  auto walk = [&](auto&& self, const toml::table& table, const std::string& prefix) -> void {
    for (const auto& [k, node] : table) {
      if (!status) return;
      std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
      Origin at{std::string(source), static_cast<int>(node.source().begin.line)};
      const KeySpec* spec = schema_->find(key);
      if (spec == nullptr) {
        if (auto sub = node.as_table()) {
          // A table is known when some key lives under it.
          bool known = std::any_of(schema_->keys().begin(), schema_->keys().end(),
                                   [&](const KeySpec& s) { return s.key.rfind(key + ".", 0) == 0; });
          if (known) {
            self(self, *sub, key);
            continue;
          }
        }
        status = Error::invalid(fmt::format("{}: unknown key '{}'", where(at), key));
        return;
      }
      auto value = convert(*spec, node, at);
      if (!value) {
        status = std::move(value).error();
        return;
      }
      if (auto r = check(*spec, *value, at); !r) {
        status = std::move(r).error();
        return;
      }
      staged.emplace_back(key, Entry{std::move(*value), at});
    }
  };
  walk(walk, root, "");
  if (!status) return status;
  for (auto& [key, entry] : staged) values_[key] = std::move(entry);
  return ok();
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
  if (auto r = check(*spec, value, at); !r) return r;
  values_[std::string(key)] = Entry{std::move(value), at};
  return ok();
}

const Config::Entry& Config::entry(std::string_view key) const {
  auto it = values_.find(key);
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

}  // namespace symphony::config
