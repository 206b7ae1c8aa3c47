// Manifest parsing (toml++) and its translation into a sandbox spec. toml++
// throws toml::parse_error; it is caught here and turned into an Error, as in
// base/config.cc, so no exception leaves this module. Every check goes
// through Table, which knows the file and the field path, so each error
// names both along with the line and column toml++ recorded.
#include "stage/manifest.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <optional>
#include <sstream>
#include <toml++/toml.h>

#include "base/toml_names.h"
#include "stage/toml_table.h"

namespace symphony::stage {
namespace {

using config::toml_type_name;

bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// [a-z][a-z0-9_]*: capability name segments, parameter and output names.
bool valid_identifier(std::string_view s) {
  if (s.empty() || s.size() > 64 || !(s[0] >= 'a' && s[0] <= 'z')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return lower_alnum(c) || c == '_'; });
}

bool valid_id(std::string_view id) {
  if (id.size() > 255) return false;
  int labels = 0;
  std::size_t start = 0;
  while (true) {
    auto dot = id.find('.', start);
    auto label = id.substr(start, dot == std::string_view::npos ? id.npos : dot - start);
    if (label.empty() || !(label[0] >= 'a' && label[0] <= 'z') || label.back() == '-') return false;
    if (!std::all_of(label.begin(), label.end(), [](char c) { return lower_alnum(c) || c == '-'; }))
      return false;
    ++labels;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return labels >= 2;
}

bool valid_capability_name(std::string_view name) {
  std::size_t start = 0;
  while (true) {
    auto dot = name.find('.', start);
    if (!valid_identifier(name.substr(start, dot == std::string_view::npos ? name.npos : dot - start)))
      return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// "type/subtype" of RFC 6838 restricted-name characters.
bool valid_media_type(std::string_view s) {
  auto slash = s.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == s.size()) return false;
  auto ok = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$&-^_.+").find(c) != std::string_view::npos;
  };
  return std::all_of(s.begin(), s.begin() + slash, ok) &&
         std::all_of(s.begin() + slash + 1, s.end(), ok);
}

// The shared reader, with the one accessor only manifests need.
class Table : public TomlTable {
 public:
  using TomlTable::TomlTable;

  // An array of strings; absent: empty.
  Result<std::vector<std::string>> strings(std::string_view key) const {
    auto arr = array(key);
    if (!arr) return std::move(arr).error();
    std::vector<std::string> out;
    if (!*arr) return out;
    for (std::size_t i = 0; i < (*arr)->size(); ++i) {
      const toml::node& item = *(*arr)->get(i);
      auto s = item.as_string();
      if (!s) return toml_wrong_type(source(), item, fmt::format("{}[{}]", path_of(key), i), "string");
      out.push_back(s->get());
    }
    return out;
  }
};

// The tables of an array ([[capabilities]] or [{...}, {...}]).
Result<std::vector<const toml::table*>> tables_of(const Table& parent, std::string_view key) {
  auto arr = parent.array(key);
  if (!arr) return std::move(arr).error();
  std::vector<const toml::table*> out;
  if (!*arr) return out;
  for (std::size_t i = 0; i < (*arr)->size(); ++i) {
    const toml::node& item = *(*arr)->get(i);
    if (!item.is_table()) {
      return toml_wrong_type(parent.source(), item, fmt::format("{}[{}]", parent.path_of(key), i),
                        "table");
    }
    out.push_back(item.as_table());
  }
  return out;
}

template <class E>
Result<E> choice(const Table& t, std::string_view key, const toml::node& at,
                 const std::string& value,
                 std::initializer_list<std::pair<std::string_view, E>> choices) {
  for (const auto& [name, e] : choices)
    if (name == value) return e;
  std::vector<std::string_view> names;
  for (const auto& c : choices) names.push_back(c.first);
  return t.error(at, key, fmt::format("'{}' is not one of {}", value, fmt::join(names, ", ")));
}

Result<nlohmann::json> to_json(std::string_view source, const toml::node& n, const std::string& path) {
  switch (n.type()) {
    case toml::node_type::string: return nlohmann::json(n.as_string()->get());
    case toml::node_type::integer: return nlohmann::json(n.as_integer()->get());
    case toml::node_type::floating_point: return nlohmann::json(n.as_floating_point()->get());
    case toml::node_type::boolean: return nlohmann::json(n.as_boolean()->get());
    case toml::node_type::array: {
      nlohmann::json out = nlohmann::json::array();
      const auto& arr = *n.as_array();
      for (std::size_t i = 0; i < arr.size(); ++i) {
        auto v = to_json(source, *arr.get(i), fmt::format("{}[{}]", path, i));
        if (!v) return v;
        out.push_back(std::move(*v));
      }
      return out;
    }
    case toml::node_type::table: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& [k, v] : *n.as_table()) {
        auto j = to_json(source, v, fmt::format("{}.{}", path, k.str()));
        if (!j) return j;
        out[std::string(k.str())] = std::move(*j);
      }
      return out;
    }
    default:
      return toml_field_error(source, n.source(), path, "dates and times are not parameter values");
  }
}

bool default_fits(ParamType type, const toml::node& n) {
  switch (type) {
    case ParamType::string: return n.is_string();
    case ParamType::integer: return n.is_integer();
    case ParamType::number: return n.is_integer() || n.is_floating_point();
    case ParamType::boolean: return n.is_boolean();
    case ParamType::array: return n.is_array();
    case ParamType::object: return n.is_table();
    case ParamType::artifact: return false;
  }
  return false;
}

Result<Param> parse_param(const Table& params, std::string_view name, const toml::node& node) {
  std::string path = params.path_of(name);
  if (!valid_identifier(name)) {
    return params.error(node, name, "parameter names are [a-z][a-z0-9_]*, at most 64 characters");
  }
  if (!node.is_table()) return toml_wrong_type(params.source(), node, path, "table");
  Table t(params.source(), *node.as_table(), path);
  if (auto r = t.only({"type", "required", "default", "description"}); !r) return r.error();
  Param p;
  p.name = std::string(name);
  auto type = t.string("type", true);
  if (!type) return std::move(type).error();
  auto parsed = choice<ParamType>(t, "type", *t.get("type"), **type,
                                  {{"string", ParamType::string}, {"integer", ParamType::integer},
                                   {"number", ParamType::number}, {"boolean", ParamType::boolean},
                                   {"array", ParamType::array}, {"object", ParamType::object},
                                   {"artifact", ParamType::artifact}});
  if (!parsed) return std::move(parsed).error();
  p.type = *parsed;
  auto required = t.boolean("required");
  if (!required) return std::move(required).error();
  p.required = required->value_or(false);
  auto description = t.string("description");
  if (!description) return std::move(description).error();
  p.description = description->value_or("");
  if (const toml::node* d = t.get("default")) {
    if (p.type == ParamType::artifact) {
      return t.error(*d, "default", "an artifact parameter takes no default");
    }
    if (p.required) return t.error(*d, "default", "a required parameter takes no default");
    if (!default_fits(p.type, *d)) {
      return t.error(*d, "default", fmt::format("expected {} (the parameter's type), got {}",
                                                to_string(p.type), toml_type_name(*d)));
    }
    auto j = to_json(params.source(), *d, t.path_of("default"));
    if (!j) return std::move(j).error();
    p.default_value = std::move(*j);
  }
  return p;
}

Result<Capability> parse_capability(std::string_view source, const toml::table& table,
                                    const std::string& path) {
  Table t(source, table, path);
  if (auto r = t.only({"name", "description", "params", "outputs"}); !r) return r.error();
  Capability c;
  auto name = t.string("name", true);
  if (!name) return std::move(name).error();
  if (!valid_capability_name(**name)) {
    return t.error(*t.get("name"), "name",
                   fmt::format("'{}' is not dot-separated lowercase identifiers ([a-z][a-z0-9_]*, "
                               "e.g. \"git.diff\")", **name));
  }
  c.name = std::move(**name);
  auto description = t.string("description");
  if (!description) return std::move(description).error();
  c.description = description->value_or("");

  auto params = t.table("params");
  if (!params) return std::move(params).error();
  if (*params) {
    Table pt(source, **params, t.path_of("params"));
    for (const auto& [key, node] : **params) {
      auto p = parse_param(pt, key.str(), node);
      if (!p) return std::move(p).error();
      c.params.push_back(std::move(*p));
    }
  }

  auto outputs = tables_of(t, "outputs");
  if (!outputs) return std::move(outputs).error();
  for (std::size_t i = 0; i < outputs->size(); ++i) {
    Table ot(source, *(*outputs)[i], fmt::format("{}[{}]", t.path_of("outputs"), i));
    if (auto r = ot.only({"name", "media_type"}); !r) return r.error();
    Output o;
    auto oname = ot.string("name", true);
    if (!oname) return std::move(oname).error();
    if (!valid_identifier(**oname)) {
      return ot.error(*ot.get("name"), "name", "output names are [a-z][a-z0-9_]*");
    }
    for (const auto& prior : c.outputs) {
      if (prior.name == **oname) {
        return ot.error(*ot.get("name"), "name", fmt::format("duplicate output '{}'", **oname));
      }
    }
    auto media = ot.string("media_type", true);
    if (!media) return std::move(media).error();
    if (!valid_media_type(**media)) {
      return ot.error(*ot.get("media_type"), "media_type",
                      fmt::format("'{}' is not a media type (type/subtype)", **media));
    }
    o.name = std::move(**oname);
    o.media_type = std::move(**media);
    c.outputs.push_back(std::move(o));
  }
  return c;
}

// The path's segments joined by '/', with "." and empty segments dropped;
// nullopt when one is "..": a grant must not reach outside what it names.
std::optional<std::string> clean_segments(std::string_view path) {
  std::string out;
  std::size_t start = 0;
  while (start <= path.size()) {
    auto slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    auto seg = path.substr(start, slash - start);
    if (seg == "..") return std::nullopt;
    if (!seg.empty() && seg != ".") {
      if (!out.empty()) out += '/';
      out += seg;
    }
    start = slash + 1;
  }
  return out;
}

Result<Permissions> parse_permissions(std::string_view source, const toml::table& table) {
  Table t(source, table, "permissions");
  if (auto r = t.only({"filesystem", "network", "gpu", "devices"}); !r) return r.error();
  Permissions p;
  auto fs = tables_of(t, "filesystem");
  if (!fs) return std::move(fs).error();
  for (std::size_t i = 0; i < fs->size(); ++i) {
    Table g(source, *(*fs)[i], fmt::format("permissions.filesystem[{}]", i));
    if (auto r = g.only({"path", "access"}); !r) return r.error();
    auto path = g.string("path", true);
    if (!path) return std::move(path).error();
    const toml::node& at = *g.get("path");
    auto access = g.string("access", true);
    if (!access) return std::move(access).error();
    auto acc = choice<sandbox::Access>(g, "access", *g.get("access"), **access,
                                       {{"ro", sandbox::Access::read_only},
                                        {"rw", sandbox::Access::read_write}});
    if (!acc) return std::move(acc).error();
    if (path->value().find('\0') != std::string::npos) return g.error(at, "path", "contains a NUL byte");
    FilesystemGrant grant;
    grant.access = *acc;
    std::string_view raw = **path;
    std::string_view rest;
    if (!raw.empty() && raw[0] == '/') {
      grant.in_workspace = false;
      rest = raw;
    } else if (raw == "workspace" || raw.substr(0, 10) == "workspace/") {
      rest = raw.substr(9);
    } else {
      return g.error(at, "path",
                     fmt::format("'{}' is neither absolute nor under the workspace (write "
                                 "\"workspace\" or \"workspace/{}\")", raw, raw));
    }
    auto cleaned = clean_segments(rest);
    if (!cleaned) return g.error(at, "path", fmt::format("'{}': '..' is not allowed", raw));
    grant.path = grant.in_workspace ? *cleaned : "/" + *cleaned;
    if (!grant.in_workspace && grant.path == "/") {
      return g.error(at, "path", "the whole host filesystem ('/') cannot be granted");
    }
    p.filesystem.push_back(std::move(grant));
  }
  auto network = t.boolean("network");
  if (!network) return std::move(network).error();
  p.network = network->value_or(false);
  auto gpu = t.boolean("gpu");
  if (!gpu) return std::move(gpu).error();
  p.gpu = gpu->value_or(false);
  auto devices = t.strings("devices");
  if (!devices) return std::move(devices).error();
  for (std::size_t i = 0; i < devices->size(); ++i) {
    const std::string& d = (*devices)[i];
    auto cleaned = clean_segments(d);
    if (d.rfind("/dev/", 0) != 0 || !cleaned || "/" + *cleaned != d || d.size() <= 5) {
      const toml::node& at = *t.get("devices")->as_array()->get(i);
      return toml_field_error(source, at.source(), fmt::format("permissions.devices[{}]", i),
                         fmt::format("'{}' is not a normalised path under /dev/", d));
    }
  }
  p.devices = std::move(*devices);
  return p;
}

// "512M", "2G", "64K", "1T" (powers of 1024, case-insensitive, optional "B"
// or "iB") or a plain number of bytes.
std::optional<std::uint64_t> parse_size(std::string_view s) {
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end == s.data()) return std::nullopt;
  std::string unit(end, s.data() + s.size());
  for (auto& c : unit) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();
  if (unit.size() > 1 && unit.back() == 'I') unit.pop_back();
  int shift = 0;
  if (unit == "" || unit == "B") shift = 0;
  else if (unit == "K") shift = 10;
  else if (unit == "M") shift = 20;
  else if (unit == "G") shift = 30;
  else if (unit == "T") shift = 40;
  else return std::nullopt;
  if (shift && n > (UINT64_MAX >> shift)) return std::nullopt;
  return n << shift;
}

// "30s", "5m", "1h", "250ms" or an integer number of seconds.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view s) {
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end == s.data() || n < 0) return std::nullopt;
  std::string_view unit(end, static_cast<std::size_t>(s.data() + s.size() - end));
  std::int64_t ms_per = 0;
  if (unit == "ms") ms_per = 1;
  else if (unit == "s") ms_per = 1000;
  else if (unit == "m") ms_per = 60'000;
  else if (unit == "h") ms_per = 3'600'000;
  else return std::nullopt;
  if (n > INT64_MAX / ms_per) return std::nullopt;
  return std::chrono::milliseconds(n * ms_per);
}

Result<std::optional<sandbox::Bytes>> size_field(const Table& t, std::string_view key) {
  const toml::node* n = t.get(key);
  if (!n) return std::optional<sandbox::Bytes>();
  std::optional<std::uint64_t> bytes;
  if (auto i = n->as_integer()) {
    if (i->get() > 0) bytes = static_cast<std::uint64_t>(i->get());
  } else if (auto s = n->as_string()) {
    bytes = parse_size(s->get());
  } else {
    return toml_wrong_type(t.source(), *n, t.path_of(key), "integer (bytes) or string (\"512M\")");
  }
  if (!bytes || *bytes == 0) {
    return t.error(*n, key, "expected a positive size: bytes, or a number with K, M, G or T");
  }
  return std::optional<sandbox::Bytes>(sandbox::Bytes{*bytes});
}

Result<Limits> parse_limits(std::string_view source, const toml::table& table) {
  Table t(source, table, "limits");
  if (auto r = t.only({"cpu", "memory", "pids", "timeout", "gpu_memory"}); !r) return r.error();
  Limits l;
  if (const toml::node* n = t.get("cpu")) {
    double cpu = 0;
    if (auto i = n->as_integer()) cpu = static_cast<double>(i->get());
    else if (auto f = n->as_floating_point()) cpu = f->get();
    else return toml_wrong_type(source, *n, "limits.cpu", "number");
    if (!(cpu >= 0.01 && cpu <= 4096)) {
      return t.error(*n, "cpu", fmt::format("must be between 0.01 and 4096 CPUs, got {}", cpu));
    }
    l.cpu = cpu;
  }
  auto memory = size_field(t, "memory");
  if (!memory) return std::move(memory).error();
  l.memory = *memory;
  auto gpu_memory = size_field(t, "gpu_memory");
  if (!gpu_memory) return std::move(gpu_memory).error();
  l.gpu_memory = *gpu_memory;
  if (const toml::node* n = t.get("pids")) {
    auto i = n->as_integer();
    if (!i) return toml_wrong_type(source, *n, "limits.pids", "integer");
    if (i->get() < 1) return t.error(*n, "pids", fmt::format("must be at least 1, got {}", i->get()));
    l.pids = static_cast<std::uint64_t>(i->get());
  }
  if (const toml::node* n = t.get("timeout")) {
    std::optional<std::chrono::milliseconds> d;
    if (auto i = n->as_integer()) {
      if (i->get() > 0 && i->get() <= INT64_MAX / 1000) d = std::chrono::seconds(i->get());
    } else if (auto s = n->as_string()) {
      d = parse_duration(s->get());
    } else {
      return toml_wrong_type(source, *n, "limits.timeout", "integer (seconds) or string (\"30s\")");
    }
    if (!d || d->count() <= 0) {
      return t.error(*n, "timeout",
                     "expected a positive duration: seconds, or a number with ms, s, m or h");
    }
    l.timeout = d;
  }
  return l;
}

Result<Manifest> parse_root(std::string_view source, const toml::table& root) {
  Table t(source, root, "");
  if (auto r = t.only({"id", "version", "kind", "description", "symphony", "entry", "capabilities",
                       "permissions", "limits", "activation"});
      !r) {
    return r.error();
  }
  Manifest m;
  m.source = std::string(source);

  auto id = t.string("id", true);
  if (!id) return std::move(id).error();
  if (!valid_id(**id)) {
    return t.error(*t.get("id"), "id",
                   fmt::format("'{}' is not a reverse-DNS id (two or more dot-separated labels of "
                               "[a-z0-9-], each starting with a letter, e.g. \"org.symphony.git\")",
                               **id));
  }
  m.id = std::move(**id);

  auto version = t.string("version", true);
  if (!version) return std::move(version).error();
  auto v = parse_version(**version);
  if (!v) return t.error(*t.get("version"), "version", v.error().context());
  m.version = std::move(*v);

  auto kind = t.string("kind", true);
  if (!kind) return std::move(kind).error();
  auto k = choice<Kind>(t, "kind", *t.get("kind"), **kind,
                        {{"instrument", Kind::instrument}, {"operator", Kind::operator_},
                         {"motif", Kind::motif}});
  if (!k) return std::move(k).error();
  m.kind = *k;

  auto description = t.string("description");
  if (!description) return std::move(description).error();
  m.description = description->value_or("");

  auto range = t.string("symphony", true);
  if (!range) return std::move(range).error();
  auto parsed_range = parse_range(**range);
  if (!parsed_range) return t.error(*t.get("symphony"), "symphony", parsed_range.error().context());
  m.symphony = std::move(*parsed_range);
  m.symphony_line = static_cast<int>(t.get("symphony")->source().begin.line);

  auto entry = t.table("entry");
  if (!entry) return std::move(entry).error();
  if (!*entry) return t.missing("entry");
  Table et(source, **entry, "entry");
  if (auto r = et.only({"command"}); !r) return r.error();
  if (!et.get("command")) return et.missing("command");
  auto command = et.strings("command");
  if (!command) return std::move(command).error();
  if (command->empty() || command->front().empty()) {
    return et.error(*et.get("command"), "command", "needs a program: [\"/usr/bin/python3\", \"main.py\"]");
  }
  for (std::size_t i = 0; i < command->size(); ++i) {
    if ((*command)[i].find('\0') != std::string::npos) {
      return et.error(*et.get("command"), fmt::format("command[{}]", i), "contains a NUL byte");
    }
  }
  m.command = std::move(*command);

  auto caps = tables_of(t, "capabilities");
  if (!caps) return std::move(caps).error();
  for (std::size_t i = 0; i < caps->size(); ++i) {
    std::string path = fmt::format("capabilities[{}]", i);
    auto c = parse_capability(source, *(*caps)[i], path);
    if (!c) return std::move(c).error();
    if (m.find_capability(c->name)) {
      return toml_field_error(source, (*caps)[i]->get("name")->source(), path + ".name",
                         fmt::format("duplicate capability '{}'", c->name));
    }
    m.capabilities.push_back(std::move(*c));
  }

  auto permissions = t.table("permissions");
  if (!permissions) return std::move(permissions).error();
  if (*permissions) {
    auto p = parse_permissions(source, **permissions);
    if (!p) return std::move(p).error();
    m.permissions = std::move(*p);
  }

  auto limits = t.table("limits");
  if (!limits) return std::move(limits).error();
  if (*limits) {
    auto l = parse_limits(source, **limits);
    if (!l) return std::move(l).error();
    m.limits = std::move(*l);
  }

  auto activation = t.table("activation");
  if (!activation) return std::move(activation).error();
  if (*activation) {
    Table at(source, **activation, "activation");
    if (auto r = at.only({"on"}); !r) return r.error();
    auto on = at.string("on", true);
    if (!on) return std::move(on).error();
    auto a = choice<Activation>(at, "on", *at.get("on"), **on,
                                {{"demand", Activation::on_demand}, {"start", Activation::at_start}});
    if (!a) return std::move(a).error();
    m.activation = *a;
  }
  return m;
}

}  // namespace

std::string_view to_string(Kind kind) {
  switch (kind) {
    case Kind::instrument: return "instrument";
    case Kind::operator_: return "operator";
    case Kind::motif: return "motif";
  }
  return "?";
}

std::string_view to_string(ParamType type) {
  switch (type) {
    case ParamType::string: return "string";
    case ParamType::integer: return "integer";
    case ParamType::number: return "number";
    case ParamType::boolean: return "boolean";
    case ParamType::array: return "array";
    case ParamType::object: return "object";
    case ParamType::artifact: return "artifact";
  }
  return "?";
}

std::string_view to_string(Activation activation) {
  return activation == Activation::at_start ? "start" : "demand";
}

const Capability* Manifest::find_capability(std::string_view name) const {
  for (const auto& c : capabilities)
    if (c.name == name) return &c;
  return nullptr;
}

Result<Manifest> parse_manifest(std::string_view text, std::string_view source_name) {
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    return Error::invalid(fmt::format("{}: {}", toml_location(source_name, e.source()), e.description()));
  }
  return parse_root(source_name, root);
}

Result<Manifest> load_manifest(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::from_errno("open manifest " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Error::from_errno("read manifest " + path.string());
  auto m = parse_manifest(text.str(), path.string());
  if (!m) return m;
  std::error_code ec;
  auto absolute = std::filesystem::absolute(path, ec);
  if (ec) return Error(ec.value(), "resolve manifest path " + path.string());
  m->directory = absolute.lexically_normal().parent_path();
  return m;
}

Result<void> check_compatible(const Manifest& manifest, const Version& symphony_version) {
  if (manifest.symphony.contains(symphony_version)) return ok();
  std::string where = manifest.symphony_line > 0
                          ? fmt::format("{}:{}", manifest.source, manifest.symphony_line)
                          : manifest.source;
  return Error::invalid(fmt::format("{}: symphony: {} {} works with Symphony {}, not {}", where,
                                    manifest.id, to_string(manifest.version),
                                    manifest.symphony.text(), to_string(symphony_version)));
}

Result<void> check_compatible(const Manifest& manifest, std::string_view symphony_version) {
  auto v = parse_version(symphony_version);
  if (!v) return std::move(v).error().wrap("symphony version");
  return check_compatible(manifest, *v);
}

std::vector<std::string> entry_argv(const Manifest& manifest) {
  std::vector<std::string> argv = manifest.command;
  if (!argv.empty() && !argv[0].empty() && argv[0][0] != '/' && argv[0].find('/') != std::string::npos) {
    argv[0] = (manifest.directory / argv[0]).lexically_normal().string();
  }
  return argv;
}

Result<sandbox::Spec> sandbox_spec(const Manifest& manifest, const std::filesystem::path& workspace) {
  if (!manifest.directory.is_absolute()) {
    return Error::invalid(fmt::format("{}: the manifest has no absolute directory (load it with "
                                      "load_manifest)", manifest.source));
  }
  if (!workspace.is_absolute()) {
    return Error::invalid(fmt::format("workspace '{}' must be an absolute path", workspace.string()));
  }
  auto normal = [](const std::filesystem::path& p) {
    std::string s = p.lexically_normal().string();
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    return s;
  };
  sandbox::Spec spec;
  spec.argv = entry_argv(manifest);
  spec.cwd = normal(manifest.directory);
  spec.name = manifest.id;
  auto& p = spec.permissions;
  // The extension's own files: it cannot run without them, and it may not
  // change them (an update is a new install, not a self-modification).
  p.binds.push_back({spec.cwd, sandbox::Access::read_only});
  std::string root = normal(workspace);
  for (const auto& g : manifest.permissions.filesystem) {
    std::string path = g.in_workspace ? (g.path.empty() ? root : normal(std::filesystem::path(root) / g.path))
                                      : g.path;
    p.binds.push_back({std::move(path), g.access});
  }
  p.network = manifest.permissions.network;
  p.gpu = manifest.permissions.gpu;
  p.devices = manifest.permissions.devices;
  spec.limits.cpu = manifest.limits.cpu;
  spec.limits.memory = manifest.limits.memory;
  spec.limits.pids = manifest.limits.pids;
  spec.limits.timeout = manifest.limits.timeout;
  spec.limits.gpu_memory = manifest.limits.gpu_memory;
  if (auto r = sandbox::validate(spec); !r) {
    return std::move(r).error().wrap(fmt::format("sandbox spec for {}", manifest.id));
  }
  return spec;
}

}  // namespace symphony::stage
