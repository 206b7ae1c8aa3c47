// Workflow file parsing (toml++) and planning. Parsing follows
// stage/manifest.cc: toml++'s parse_error is caught and turned into an Error
// so no exception leaves the module, and every check goes through Table,
// which knows the file and the field path, so each error names both with the
// line and column toml++ recorded. Planning works on the parsed definition
// only (no TOML positions left but each step's and input's line), so its
// errors name the file, the line and the step.
#include "conductor/workflow_file.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <toml++/toml.h>
#include <unordered_map>
#include <variant>

#include "base/toml_names.h"
#include "pit/artifacts/artifact_store.h"
#include "stage/toml_table.h"

namespace symphony::conductor {
namespace {

using stage::toml_field_error;
using stage::toml_location;
using stage::toml_wrong_type;
using nlohmann::json;

constexpr std::uint32_t kMaxAttempts = 100;
constexpr double kMaxMultiplier = 100.0;

// --- names ---------------------------------------------------------------------

bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// [a-z][a-z0-9_]*, at most 64: parameter, input and output names.
bool valid_identifier(std::string_view s) {
  if (s.empty() || s.size() > 64 || !(s[0] >= 'a' && s[0] <= 'z')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return lower_alnum(c) || c == '_'; });
}

// [a-z0-9][a-z0-9_-]*, at most 64. No '[' or '.', so a fan-out item's id
// ("analyze[2]") never collides with a step's and "steps.ID.OUTPUT" splits.
bool valid_step_id(std::string_view s) {
  if (s.empty() || s.size() > 64 || !lower_alnum(s[0])) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return lower_alnum(c) || c == '_' || c == '-'; });
}

// [a-z0-9][a-z0-9._-]*, at most 128.
bool valid_workflow_name(std::string_view s) {
  if (s.empty() || s.size() > 128 || !lower_alnum(s[0])) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return lower_alnum(c) || c == '_' || c == '-' || c == '.'; });
}

// Dot-separated [a-z][a-z0-9_]*, as in extension manifests ("git.log").
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

// Reverse DNS, as in extension manifests ("org.symphony.git").
bool valid_extension_id(std::string_view id) {
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

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// " (did you mean 'x'?)" for the closest candidate a typo away, else "".
template <class Names>
std::string suggestion(std::string_view wrong, const Names& candidates) {
  std::string best;
  std::size_t best_distance = 3;  // at most two edits
  for (const auto& c : candidates) {
    std::string_view name(c);
    std::size_t d = edit_distance(wrong, name);
    if (d < best_distance && d < name.size()) {
      best = std::string(name);
      best_distance = d;
    }
  }
  return best.empty() ? std::string() : fmt::format(" (did you mean '{}'?)", best);
}

std::vector<std::string> keys_of(const json& object) {
  std::vector<std::string> out;
  for (const auto& [k, v] : object.items()) out.push_back(k);
  return out;
}

// The type names of base/toml_names.h, for JSON values.
const char* json_type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::string: return "string";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    case json::value_t::number_float: return "float";
    case json::value_t::boolean: return "boolean";
    case json::value_t::array: return "array";
    case json::value_t::object: return "table";
    default: return "null";
  }
}

// Compact JSON; never throws (invalid UTF-8 from a --param is replaced).
std::string dump(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

// --- durations -------------------------------------------------------------------

// "250ms", "30s", "5m", "1h".
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

// --- substitution ----------------------------------------------------------------

// A string with ${...} references, split into literal text and references.
// "${params.dirs}" → one reference {"params", "dirs"}; "a$${b" → literal "a${b".
struct Segment {
  bool reference = false;
  std::string text;               // literal text, or the reference as written ("${item}")
  std::vector<std::string> path;  // reference: "params.cfg.depth" → {params, cfg, depth}
};

bool key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// The segments of `s`, or what is wrong with its first malformed reference.
std::variant<std::vector<Segment>, std::string> scan(std::string_view s) {
  std::vector<Segment> out;
  std::string literal;
  auto flush = [&] {
    if (!literal.empty()) out.push_back({false, std::move(literal), {}});
    literal.clear();
  };
  for (std::size_t i = 0; i < s.size();) {
    if (s.compare(i, 3, "$${") == 0) {
      literal += "${";
      i += 3;
      continue;
    }
    if (s.compare(i, 2, "${") != 0) {
      literal += s[i++];
      continue;
    }
    auto close = s.find('}', i + 2);
    if (close == std::string_view::npos) {
      return fmt::format("'{}': '${{' at position {} is not closed by '}}' (write '$${{' for a literal '${{')",
                         s, i + 1);
    }
    std::string_view expr = s.substr(i + 2, close - i - 2);
    Segment ref{true, std::string(s.substr(i, close - i + 1)), {}};
    std::size_t start = 0;
    while (true) {
      auto dot = expr.find('.', start);
      auto part = expr.substr(start, dot == std::string_view::npos ? expr.npos : dot - start);
      if (part.empty() || !std::all_of(part.begin(), part.end(), key_char)) {
        return fmt::format("'{}' is not a reference (expected ${{params.NAME}}, ${{item}}, ${{item.KEY}} "
                           "or ${{index}})",
                           ref.text);
      }
      ref.path.emplace_back(part);
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
    const std::string& root = ref.path[0];
    bool well_formed = (root == "params" && ref.path.size() >= 2) || root == "item" ||
                       (root == "index" && ref.path.size() == 1);
    if (!well_formed) {
      return fmt::format("'{}' is not a reference (expected ${{params.NAME}}, ${{item}}, ${{item.KEY}} "
                         "or ${{index}})",
                         ref.text);
    }
    flush();
    out.push_back(std::move(ref));
    i = close + 1;
  }
  flush();
  return out;
}

// What references may name where they are written.
struct Scope {
  const json* params = nullptr;  // the declared parameters (with their values)
  bool fan_out = false;          // ${item} and ${index} are available
  const json* item = nullptr;    // planning: the current item
  std::size_t index = 0;
};

// The value a reference names, or why it names nothing.
std::variant<json, std::string> resolve(const Segment& ref, const Scope& scope) {
  const std::string& root = ref.path[0];
  if (root != "params" && !scope.fan_out) {
    return fmt::format("'{}' is only available in a step with for_each", ref.text);
  }
  if (root == "index") return json(scope.index);
  const json* at = nullptr;
  std::size_t first_key = 1;
  if (root == "params") {
    const std::string& name = ref.path[1];
    if (!scope.params->contains(name)) {
      return fmt::format("unknown parameter '{}' in '{}'{}", name, ref.text,
                         suggestion(name, keys_of(*scope.params)));
    }
    at = &(*scope.params)[name];
    first_key = 2;
  } else {
    at = scope.item;
    if (!at) return json();  // parsing: the item is not known yet
  }
  for (std::size_t i = first_key; i < ref.path.size(); ++i) {
    std::string so_far = fmt::format("{}", fmt::join(ref.path.begin(), ref.path.begin() + static_cast<std::ptrdiff_t>(i), "."));
    if (!at->is_object()) {
      return fmt::format("'{}': {} is {} {}, not a table", ref.text, so_far,
                         at->is_array() || at->is_number_integer() ? "an" : "a", json_type_name(*at));
    }
    if (!at->contains(ref.path[i])) {
      return fmt::format("'{}': {} has no key '{}'{}", ref.text, so_far, ref.path[i],
                         suggestion(ref.path[i], keys_of(*at)));
    }
    at = &(*at)[ref.path[i]];
  }
  return *at;
}

// `s` with its references replaced: a string that is one reference takes the
// value with its type; otherwise references are rendered into the text
// (strings as they are, anything else as JSON).
std::variant<json, std::string> substitute_string(const std::string& s, const Scope& scope) {
  auto scanned = scan(s);
  if (auto* e = std::get_if<std::string>(&scanned)) return std::move(*e);
  auto& segments = std::get<std::vector<Segment>>(scanned);
  if (segments.size() == 1 && segments[0].reference) return resolve(segments[0], scope);
  std::string out;
  for (const auto& seg : segments) {
    if (!seg.reference) {
      out += seg.text;
      continue;
    }
    auto v = resolve(seg, scope);
    if (auto* e = std::get_if<std::string>(&v)) return std::move(*e);
    const json& value = std::get<json>(v);
    out += value.is_string() ? value.get<std::string>() : dump(value);
  }
  return json(std::move(out));
}

// Every string in `value`, recursively; `path` names the field in errors.
Result<json> substitute(const json& value, const Scope& scope, const std::string& path,
                        const std::function<Error(const std::string&, const std::string&)>& error) {
  if (value.is_string()) {
    auto v = substitute_string(value.get<std::string>(), scope);
    if (auto* e = std::get_if<std::string>(&v)) return error(path, *e);
    return std::move(std::get<json>(v));
  }
  if (value.is_array()) {
    json out = json::array();
    for (std::size_t i = 0; i < value.size(); ++i) {
      auto v = substitute(value[i], scope, fmt::format("{}[{}]", path, i), error);
      if (!v) return v;
      out.push_back(std::move(*v));
    }
    return out;
  }
  if (value.is_object()) {
    json out = json::object();
    for (const auto& [k, v] : value.items()) {
      auto s = substitute(v, scope, fmt::format("{}.{}", path, k), error);
      if (!s) return s;
      out[k] = std::move(*s);
    }
    return out;
  }
  return value;
}

// --- TOML tables -------------------------------------------------------------------

int line_of(const toml::node& n) { return static_cast<int>(n.source().begin.line); }

// The shared reader, with the accessors only workflow files need.
class Table : public stage::TomlTable {
 public:
  using TomlTable::TomlTable;

  // Integer or float; absent: nullopt.
  Result<std::optional<double>> number(std::string_view key) const {
    const toml::node* n = get(key);
    if (!n) return std::optional<double>();
    if (auto i = n->as_integer()) return std::optional<double>(static_cast<double>(i->get()));
    if (auto f = n->as_floating_point()) {
      if (!std::isfinite(f->get())) return error(*n, key, "must be a finite number");
      return std::optional<double>(f->get());
    }
    return toml_wrong_type(source(), *n, path_of(key), "number");
  }

  // An array of strings with the node of each; absent: empty.
  Result<std::vector<std::pair<std::string, const toml::node*>>> strings(std::string_view key) const {
    auto arr = array(key);
    if (!arr) return std::move(arr).error();
    std::vector<std::pair<std::string, const toml::node*>> out;
    if (!*arr) return out;
    for (std::size_t i = 0; i < (*arr)->size(); ++i) {
      const toml::node& item = *(*arr)->get(i);
      auto s = item.as_string();
      if (!s) return toml_wrong_type(source(), item, fmt::format("{}[{}]", path_of(key), i), "string");
      out.emplace_back(s->get(), &item);
    }
    return out;
  }
};

Result<json> to_json(std::string_view source, const toml::node& n, const std::string& path) {
  switch (n.type()) {
    case toml::node_type::string: return json(n.as_string()->get());
    case toml::node_type::integer: return json(n.as_integer()->get());
    case toml::node_type::floating_point:
      if (!std::isfinite(n.as_floating_point()->get())) {
        return toml_field_error(source, n.source(), path, "must be a finite number");
      }
      return json(n.as_floating_point()->get());
    case toml::node_type::boolean: return json(n.as_boolean()->get());
    case toml::node_type::array: {
      json out = json::array();
      const auto& arr = *n.as_array();
      for (std::size_t i = 0; i < arr.size(); ++i) {
        auto v = to_json(source, *arr.get(i), fmt::format("{}[{}]", path, i));
        if (!v) return v;
        out.push_back(std::move(*v));
      }
      return out;
    }
    case toml::node_type::table: {
      json out = json::object();
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

// Checks every ${...} in the strings under `n` against `scope`, at the
// string's position.
Result<void> check_references(std::string_view source, const toml::node& n, const std::string& path,
                              const Scope& scope) {
  if (auto s = n.as_string()) {
    auto v = substitute_string(s->get(), scope);
    if (auto* e = std::get_if<std::string>(&v)) return toml_field_error(source, n.source(), path, *e);
    return ok();
  }
  if (auto arr = n.as_array()) {
    for (std::size_t i = 0; i < arr->size(); ++i) {
      auto r = check_references(source, *arr->get(i), fmt::format("{}[{}]", path, i), scope);
      if (!r) return r;
    }
  }
  if (auto t = n.as_table()) {
    for (const auto& [k, v] : *t) {
      auto r = check_references(source, v, fmt::format("{}.{}", path, k.str()), scope);
      if (!r) return r;
    }
  }
  return ok();
}

// --- fields ------------------------------------------------------------------------

// Integer milliseconds or a string with a unit; nullopt when absent.
Result<std::optional<std::chrono::milliseconds>> duration_field(const Table& t, std::string_view key,
                                                                bool allow_zero) {
  const toml::node* n = t.get(key);
  if (!n) return std::optional<std::chrono::milliseconds>();
  std::optional<std::chrono::milliseconds> d;
  if (auto i = n->as_integer()) {
    if (i->get() >= 0) d = std::chrono::milliseconds(i->get());
  } else if (auto s = n->as_string()) {
    d = parse_duration(s->get());
  } else {
    return toml_wrong_type(t.source(), *n, t.path_of(key), "integer (milliseconds) or string (\"30s\")");
  }
  if (!d || (!allow_zero && d->count() == 0)) {
    return t.error(*n, key,
                   fmt::format("expected a {} duration: milliseconds, or a number with ms, s, m or h "
                               "(\"250ms\", \"30s\", \"5m\", \"1h\")",
                               allow_zero ? "non-negative" : "positive"));
  }
  return d;
}

Result<RetryPolicy> parse_retry(const Table& step, const toml::table& table) {
  Table t(step.source(), table, step.path_of("retry"));
  if (auto r = t.only({"attempts", "backoff", "max_backoff", "multiplier", "jitter", "on"}); !r) return r.error();
  RetryPolicy p;
  if (const toml::node* n = t.get("attempts")) {
    auto i = n->as_integer();
    if (!i) return toml_wrong_type(t.source(), *n, t.path_of("attempts"), "integer");
    if (i->get() < 1 || i->get() > kMaxAttempts) {
      return t.error(*n, "attempts", fmt::format("must be between 1 and {}, got {}", kMaxAttempts, i->get()));
    }
    p.attempts = static_cast<std::uint32_t>(i->get());
  }
  auto backoff = duration_field(t, "backoff", true);
  if (!backoff) return std::move(backoff).error();
  if (*backoff) p.backoff = **backoff;
  auto max_backoff = duration_field(t, "max_backoff", true);
  if (!max_backoff) return std::move(max_backoff).error();
  if (*max_backoff) {
    if (**max_backoff < p.backoff) {
      return t.error(*t.get("max_backoff"), "max_backoff",
                     fmt::format("{}ms is less than backoff ({}ms)", (*max_backoff)->count(), p.backoff.count()));
    }
    p.max_backoff = **max_backoff;
  } else {
    // A long backoff alone must not be cut to the default cap.
    p.max_backoff = std::max(p.max_backoff, p.backoff);
  }
  auto multiplier = t.number("multiplier");
  if (!multiplier) return std::move(multiplier).error();
  if (*multiplier) {
    if (!(**multiplier >= 1.0 && **multiplier <= kMaxMultiplier)) {
      return t.error(*t.get("multiplier"), "multiplier",
                     fmt::format("must be between 1 and {}, got {}", kMaxMultiplier, **multiplier));
    }
    p.multiplier = **multiplier;
  }
  auto jitter = t.number("jitter");
  if (!jitter) return std::move(jitter).error();
  if (*jitter) {
    if (!(**jitter >= 0.0 && **jitter <= 1.0)) {
      return t.error(*t.get("jitter"), "jitter", fmt::format("must be between 0 and 1, got {}", **jitter));
    }
    p.jitter = **jitter;
  }
  if (t.get("on")) {
    auto on = t.strings("on");
    if (!on) return std::move(on).error();
    if (on->empty()) {
      return t.error(*t.get("on"), "on", "names no failure class (leave it out to retry on all of them)");
    }
    p.on.clear();
    for (std::size_t i = 0; i < on->size(); ++i) {
      const auto& [name, node] = (*on)[i];
      std::string path = fmt::format("{}[{}]", t.path_of("on"), i);
      auto c = parse_failure_class(name);
      if (!c) {
        std::vector<std::string_view> names;
        for (auto k : kAllFailureClasses) names.push_back(to_string(k));
        return toml_field_error(t.source(), node->source(), path,
                           fmt::format("'{}' is not one of {}", name, fmt::join(names, ", ")));
      }
      if (std::find(p.on.begin(), p.on.end(), *c) != p.on.end()) {
        return toml_field_error(t.source(), node->source(), path, fmt::format("'{}' is listed twice", name));
      }
      p.on.push_back(*c);
    }
  }
  return p;
}

std::string_view kInputForms = R"(expected "steps.STEP.OUTPUT", "artifact:NAME" or "artifact:NAME@VERSION")";

// "steps.STEP.OUTPUT" or "artifact:NAME[@VERSION]"; the error says why not.
std::variant<InputRef, std::string> parse_input_ref(std::string_view text) {
  InputRef ref;
  if (text.rfind("artifact:", 0) == 0) {
    auto parsed = pit::ArtifactRef::parse(text.substr(9));
    if (!parsed) return fmt::format("'{}': {}", text, parsed.error().context());
    ref.kind = InputRef::Kind::artifact;
    ref.artifact = parsed->name;
    if (parsed->version) ref.version = parsed->version;
    return ref;
  }
  if (text.rfind("steps.", 0) != 0) return fmt::format("'{}' is not an input reference ({})", text, kInputForms);
  std::string_view rest = text.substr(6);
  auto dot = rest.find('.');
  if (dot == std::string_view::npos) return fmt::format("'{}' names no output ({})", text, kInputForms);
  std::string_view step = rest.substr(0, dot), output = rest.substr(dot + 1);
  if (!valid_step_id(step)) {
    return fmt::format("'{}': '{}' is not a step id ([a-z0-9][a-z0-9_-]*)", text, step);
  }
  if (!valid_identifier(output)) {
    return fmt::format("'{}': '{}' is not an output name ([a-z][a-z0-9_]*)", text, output);
  }
  ref.kind = InputRef::Kind::step_output;
  ref.step = std::string(step);
  ref.output = std::string(output);
  return ref;
}

struct ParsedSteps {
  std::vector<StepDef> steps;
  std::unordered_map<std::string, int> lines;  // id → line, for duplicates
};

Result<StepDef> parse_step(std::string_view source, const toml::table& table, std::size_t index,
                           const json& params, const ParsedSteps& prior) {
  StepDef s;
  s.line = line_of(table);
  std::string indexed = fmt::format("steps[{}]", index);
  {
    Table t(source, table, indexed);
    auto id = t.string("id", true);
    if (!id) return std::move(id).error();
    if (!valid_step_id(**id)) {
      return t.error(*t.get("id"), "id",
                     fmt::format("'{}' is not a step id ([a-z0-9][a-z0-9_-]*, at most 64 characters)", **id));
    }
    if (auto at = prior.lines.find(**id); at != prior.lines.end()) {
      return t.error(*t.get("id"), "id", fmt::format("duplicate step id '{}' (first at line {})", **id, at->second));
    }
    s.id = std::move(**id);
  }
  Table t(source, table, fmt::format("steps[{}]", s.id));
  if (auto r = t.only({"id", "capability", "extension", "params", "inputs", "after", "for_each", "allow_empty",
                       "timeout", "retry", "cost"});
      !r) {
    return r.error();
  }

  auto capability = t.string("capability", true);
  if (!capability) return std::move(capability).error();
  if (!valid_capability_name(**capability)) {
    return t.error(*t.get("capability"), "capability",
                   fmt::format("'{}' is not dot-separated lowercase identifiers ([a-z][a-z0-9_]*, e.g. "
                               "\"git.log\")",
                               **capability));
  }
  s.capability = std::move(**capability);

  auto extension = t.string("extension");
  if (!extension) return std::move(extension).error();
  if (*extension) {
    const std::string& text = **extension;
    auto at = text.find('@');
    std::string id = text.substr(0, at);
    if (!valid_extension_id(id)) {
      return t.error(*t.get("extension"), "extension",
                     fmt::format("'{}' is not a reverse-DNS extension id (e.g. \"org.symphony.git\" or "
                                 "\"org.symphony.git@>=0.1\")",
                                 id));
    }
    if (at != std::string::npos) {
      auto range = stage::parse_range(std::string_view(text).substr(at + 1));
      if (!range) return t.error(*t.get("extension"), "extension", range.error().context());
      s.extension_range = std::move(*range);
    }
    s.extension = std::move(id);
  }

  // for_each first: it decides whether ${item} and ${index} may appear.
  Scope scope{&params, false, nullptr, 0};
  if (const toml::node* n = t.get("for_each")) {
    std::string path = t.path_of("for_each");
    if (n->is_array()) {
      if (auto r = check_references(source, *n, path, scope); !r) return r.error();
      auto j = to_json(source, *n, path);
      if (!j) return std::move(j).error();
      s.for_each = std::move(*j);
    } else if (auto str = n->as_string()) {
      auto scanned = scan(str->get());
      auto* segments = std::get_if<std::vector<Segment>>(&scanned);
      if (!segments || segments->size() != 1 || !(*segments)[0].reference ||
          (*segments)[0].path[0] != "params" || (*segments)[0].path.size() != 2) {
        return t.error(*n, "for_each",
                       fmt::format("'{}' is neither an array nor \"${{params.NAME}}\" naming an array parameter",
                                   str->get()));
      }
      auto value = resolve((*segments)[0], scope);
      if (auto* e = std::get_if<std::string>(&value)) return t.error(*n, "for_each", *e);
      const json& v = std::get<json>(value);
      if (!v.is_array()) {
        return t.error(*n, "for_each",
                       fmt::format("parameter '{}' is {} {}, not an array", (*segments)[0].path[1],
                                   v.is_number_integer() ? "an" : "a", json_type_name(v)));
      }
      s.for_each = json(str->get());
    } else {
      return toml_wrong_type(source, *n, path, "array or string (\"${params.NAME}\")");
    }
    scope.fan_out = true;
  }
  auto allow_empty = t.boolean("allow_empty");
  if (!allow_empty) return std::move(allow_empty).error();
  if (*allow_empty) {
    if (!s.for_each) return t.error(*t.get("allow_empty"), "allow_empty", "only means something with for_each");
    s.allow_empty = **allow_empty;
  }

  auto step_params = t.table("params");
  if (!step_params) return std::move(step_params).error();
  if (*step_params) {
    std::string path = t.path_of("params");
    if (auto r = check_references(source, **step_params, path, scope); !r) return r.error();
    auto j = to_json(source, **step_params, path);
    if (!j) return std::move(j).error();
    s.params = std::move(*j);
  }

  auto inputs = t.table("inputs");
  if (!inputs) return std::move(inputs).error();
  if (*inputs) {
    Table it(source, **inputs, t.path_of("inputs"));
    for (const auto& [key, node] : **inputs) {
      std::string name(key.str());
      if (!valid_identifier(name)) {
        return it.error(node, name, "input names are [a-z][a-z0-9_]*, at most 64 characters");
      }
      if (s.params.contains(name)) {
        return it.error(node, name, fmt::format("'{}' is both a parameter and an input of the step", name));
      }
      auto text = it.string(name);
      if (!text) return std::move(text).error();
      auto ref = parse_input_ref(**text);
      if (auto* e = std::get_if<std::string>(&ref)) return it.error(node, name, *e);
      InputRef r = std::move(std::get<InputRef>(ref));
      r.line = line_of(node);
      s.inputs.emplace(std::move(name), std::move(r));
    }
  }

  auto after = t.strings("after");
  if (!after) return std::move(after).error();
  for (std::size_t i = 0; i < after->size(); ++i) {
    const auto& [id, node] = (*after)[i];
    std::string path = fmt::format("{}[{}]", t.path_of("after"), i);
    if (!valid_step_id(id)) {
      return toml_field_error(source, node->source(), path, fmt::format("'{}' is not a step id ([a-z0-9][a-z0-9_-]*)", id));
    }
    if (std::find(s.after.begin(), s.after.end(), id) != s.after.end()) {
      return toml_field_error(source, node->source(), path, fmt::format("'{}' is listed twice", id));
    }
    s.after.push_back(id);
  }

  auto timeout = duration_field(t, "timeout", false);
  if (!timeout) return std::move(timeout).error();
  s.timeout = *timeout;

  auto retry = t.table("retry");
  if (!retry) return std::move(retry).error();
  if (*retry) {
    auto r = parse_retry(t, **retry);
    if (!r) return std::move(r).error();
    s.retry = std::move(*r);
  }

  auto cost = t.number("cost");
  if (!cost) return std::move(cost).error();
  if (*cost) {
    if (**cost < 0) return t.error(*t.get("cost"), "cost", fmt::format("must be at least 0, got {}", **cost));
    s.cost = **cost;
  }
  return s;
}

Result<WorkflowDef> parse_root(std::string_view source, const toml::table& root) {
  Table t(source, root, "");
  if (auto r = t.only({"name", "description", "failure", "params", "steps"}); !r) return r.error();
  WorkflowDef w;
  w.source = std::string(source);

  auto name = t.string("name", true);
  if (!name) return std::move(name).error();
  if (!valid_workflow_name(**name)) {
    return t.error(*t.get("name"), "name",
                   fmt::format("'{}' is not a workflow name ([a-z0-9][a-z0-9._-]*, at most 128 characters)", **name));
  }
  w.name = std::move(**name);

  auto description = t.string("description");
  if (!description) return std::move(description).error();
  w.description = description->value_or("");

  auto failure = t.string("failure");
  if (!failure) return std::move(failure).error();
  if (*failure) {
    if (**failure == "fail_workflow") {
      w.failure = pit::dag::FailurePolicy::fail_workflow;
    } else if (**failure == "continue") {
      w.failure = pit::dag::FailurePolicy::continue_independent;
    } else {
      return t.error(*t.get("failure"), "failure",
                     fmt::format("'{}' is not one of fail_workflow, continue", **failure));
    }
  }

  auto params = t.table("params");
  if (!params) return std::move(params).error();
  if (*params) {
    Table pt(source, **params, "params");
    for (const auto& [key, node] : **params) {
      if (!valid_identifier(key.str())) {
        return pt.error(node, key.str(), "parameter names are [a-z][a-z0-9_]*, at most 64 characters");
      }
      // A default is a value, never a template: ${...} in it stays as written.
      auto j = to_json(source, node, pt.path_of(key.str()));
      if (!j) return std::move(j).error();
      w.params[std::string(key.str())] = std::move(*j);
    }
  }

  const toml::node* steps = t.get("steps");
  if (!steps) return t.missing("steps");
  auto arr = t.array("steps");
  if (!arr) return std::move(arr).error();
  if ((*arr)->empty()) return t.error(*steps, "steps", "a workflow needs at least one step");
  ParsedSteps parsed;
  for (std::size_t i = 0; i < (*arr)->size(); ++i) {
    const toml::node& item = *(*arr)->get(i);
    if (!item.is_table()) return toml_wrong_type(source, item, fmt::format("steps[{}]", i), "table");
    auto s = parse_step(source, *item.as_table(), i, w.params, parsed);
    if (!s) return std::move(s).error();
    parsed.lines.emplace(s->id, s->line);
    parsed.steps.push_back(std::move(*s));
  }
  w.steps = std::move(parsed.steps);
  return w;
}

// --- planning ----------------------------------------------------------------------

Error step_error(const WorkflowDef& def, int line, std::string_view step, std::string_view what) {
  if (line <= 0) return Error::invalid(fmt::format("{}: step '{}': {}", def.source, step, what));
  return Error::invalid(fmt::format("{}:{}: step '{}': {}", def.source, line, step, what));
}

// `text` ("K=V") applied to `params`.
Result<void> apply_override(const WorkflowDef& def, json& params, const std::string& text) {
  auto fail = [&](std::string_view what) {
    return Error::invalid(fmt::format("{}: --param {}: {}", def.source, text, what));
  };
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return fail("expected NAME=VALUE");
  std::string key = text.substr(0, eq);
  std::string raw = text.substr(eq + 1);
  if (!params.contains(key)) {
    if (params.empty()) return fail("the workflow declares no parameters");
    return fail(fmt::format("unknown parameter '{}'{} (declared: {})", key, suggestion(key, keys_of(params)),
                            fmt::join(keys_of(params), ", ")));
  }
  // The value as TOML when it is one value ("3", "[\"a\"]", "\"x\""); as
  // text otherwise ("hello world", "src/main.cc", a date).
  std::optional<json> value;
  try {
    toml::table parsed = toml::parse(std::string_view("v = " + raw), std::string_view("--param"));
    if (parsed.size() == 1 && parsed.get("v")) {
      auto j = to_json("--param", *parsed.get("v"), "v");
      if (j) value = std::move(*j);
    }
  } catch (const toml::parse_error&) {
  }
  json& current = params[key];
  if (current.is_string()) {
    current = value && value->is_string() ? std::move(*value) : json(raw);
    return ok();
  }
  if (!value) value = json(raw);
  if (current.is_number_float() && value->is_number_integer()) {
    current = static_cast<double>(value->get<std::int64_t>());
    return ok();
  }
  bool same = current.type() == value->type() ||
              (current.is_number_integer() && value->is_number_integer());
  if (!same) {
    return fail(fmt::format("expected {} (the type of the default, {}), got {}", json_type_name(current),
                            dump(current), json_type_name(*value)));
  }
  current = std::move(*value);
  return ok();
}

// The fan-out items of `s` under `params`.
Result<json> items_of(const WorkflowDef& def, const StepDef& s, const json& params) {
  Scope scope{&params, false, nullptr, 0};
  auto error = [&](const std::string& path, const std::string& what) {
    return step_error(def, s.line, s.id, fmt::format("{}: {}", path, what));
  };
  auto items = substitute(*s.for_each, scope, "for_each", error);
  if (!items) return items;
  if (!items->is_array()) {
    return error("for_each", fmt::format("expected an array, got {}", json_type_name(*items)));
  }
  if (items->empty() && !s.allow_empty) {
    return error("for_each", "has no items (set allow_empty = true if the step and its dependents may be "
                             "left out)");
  }
  return items;
}

}  // namespace

std::string_view to_string(FailureClass c) {
  switch (c) {
    case FailureClass::crash: return "crash";
    case FailureClass::hang: return "hang";
    case FailureClass::timeout: return "timeout";
    case FailureClass::oom: return "oom";
    case FailureClass::syscall: return "syscall";
    case FailureClass::protocol: return "protocol";
    case FailureClass::failed: return "failed";
  }
  return "?";
}

std::optional<FailureClass> parse_failure_class(std::string_view text) {
  for (auto c : kAllFailureClasses)
    if (to_string(c) == text) return c;
  return std::nullopt;
}

bool RetryPolicy::retries(FailureClass c) const { return std::find(on.begin(), on.end(), c) != on.end(); }

std::chrono::milliseconds RetryPolicy::delay(std::uint32_t attempt, double random01) const {
  if (attempt == 0) attempt = 1;
  if (!(random01 >= 0.0)) random01 = 0.0;  // NaN too
  random01 = std::min(random01, 1.0);
  double cap = static_cast<double>(max_backoff.count());
  // Computed in double and capped before converting: multiplier^99 overflows
  // any integer type.
  double base = std::min(cap, static_cast<double>(backoff.count()) *
                                  std::pow(std::max(multiplier, 1.0), static_cast<double>(attempt - 1)));
  double j = std::clamp(jitter, 0.0, 1.0);
  double d = base * (1.0 - j * random01);
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(std::clamp(d, 0.0, cap))));
}

Result<WorkflowDef> parse_workflow(std::string_view text, std::string_view source_name) {
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    return Error::invalid(fmt::format("{}: {}", toml_location(source_name, e.source()), e.description()));
  }
  return parse_root(source_name, root);
}

Result<WorkflowDef> load_workflow(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::from_errno("open workflow " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Error::from_errno("read workflow " + path.string());
  return parse_workflow(text.str(), path.string());
}

Result<Plan> plan_workflow(const WorkflowDef& def, const std::vector<std::string>& overrides) {
  Plan plan;
  plan.name = def.name;
  plan.failure = def.failure;
  plan.params = def.params.is_object() ? def.params : json::object();
  for (const auto& o : overrides) {
    if (auto r = apply_override(def, plan.params, o); !r) return r.error();
  }

  // The step graph, by index: deps[i] = the steps i depends on.
  const std::size_t n = def.steps.size();
  std::unordered_map<std::string, std::size_t> index;
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < n; ++i) {
    const StepDef& s = def.steps[i];
    if (!index.emplace(s.id, i).second) return step_error(def, s.line, s.id, "duplicate step id");
    ids.push_back(s.id);
  }
  std::vector<std::vector<std::size_t>> deps(n);
  for (std::size_t i = 0; i < n; ++i) {
    const StepDef& s = def.steps[i];
    auto add = [&](const std::string& target, int line, const std::string& what) -> Result<void> {
      auto at = index.find(target);
      if (at == index.end()) {
        return step_error(def, line, s.id,
                          fmt::format("{} names unknown step '{}'{}", what, target, suggestion(target, ids)));
      }
      if (at->second == i) return step_error(def, line, s.id, fmt::format("{} names the step itself", what));
      if (std::find(deps[i].begin(), deps[i].end(), at->second) == deps[i].end()) deps[i].push_back(at->second);
      return ok();
    };
    for (const auto& [name, ref] : s.inputs) {
      if (ref.kind != InputRef::Kind::step_output) continue;
      if (auto r = add(ref.step, ref.line > 0 ? ref.line : s.line, fmt::format("input '{}'", name)); !r)
        return r.error();
    }
    for (const auto& a : s.after) {
      if (auto r = add(a, s.line, "after"); !r) return r.error();
    }
  }

  // Cycles, by depth-first search in file order: the first one found is
  // reported from the step where it closes, "a → b → a" reading "a depends
  // on b", as the DAG tracker writes it.
  enum class Mark : std::uint8_t { white, grey, black };
  std::vector<Mark> mark(n, Mark::white);
  std::vector<std::size_t> stack;
  std::optional<std::vector<std::size_t>> cycle;
  std::function<void(std::size_t)> visit = [&](std::size_t v) {
    mark[v] = Mark::grey;
    stack.push_back(v);
    for (std::size_t d : deps[v]) {
      if (cycle) break;
      if (mark[d] == Mark::grey) {
        auto from = std::find(stack.begin(), stack.end(), d);
        cycle.emplace(from, stack.end());
        cycle->push_back(d);
      } else if (mark[d] == Mark::white) {
        visit(d);
      }
    }
    stack.pop_back();
    mark[v] = Mark::black;
  };
  for (std::size_t i = 0; i < n && !cycle; ++i)
    if (mark[i] == Mark::white) visit(i);
  if (cycle) {
    std::vector<std::string_view> names;
    for (std::size_t v : *cycle) names.push_back(def.steps[v].id);
    const StepDef& first = def.steps[cycle->front()];
    return step_error(def, first.line, first.id, fmt::format("cycle: {}", fmt::join(names, " → ")));
  }

  // Topological order; among ready steps the earliest in the file first.
  std::vector<std::size_t> waiting(n);
  std::vector<std::vector<std::size_t>> dependents(n);
  for (std::size_t i = 0; i < n; ++i) {
    waiting[i] = deps[i].size();
    for (std::size_t d : deps[i]) dependents[d].push_back(i);
  }
  std::set<std::size_t> ready;
  for (std::size_t i = 0; i < n; ++i)
    if (waiting[i] == 0) ready.insert(i);
  std::vector<std::size_t> order;
  while (!ready.empty()) {
    std::size_t v = *ready.begin();
    ready.erase(ready.begin());
    order.push_back(v);
    for (std::size_t d : dependents[v])
      if (--waiting[d] == 0) ready.insert(d);
  }

  // Expansion, in that order, so a step's producers are known before it.
  std::vector<std::vector<std::string>> concrete(n);
  for (std::size_t g : order) {
    const StepDef& s = def.steps[g];
    std::vector<std::optional<std::size_t>> items_index;
    json items = json::array();
    if (s.for_each) {
      auto resolved = items_of(def, s, plan.params);
      if (!resolved) return std::move(resolved).error();
      items = std::move(*resolved);
      for (std::size_t k = 0; k < items.size(); ++k) items_index.emplace_back(k);
    } else {
      items_index.emplace_back(std::nullopt);
    }

    std::vector<PlannedInput> inputs;
    std::set<std::string> depends_on;
    for (const auto& [name, ref] : s.inputs) {
      PlannedInput in{name, ref, {}};
      if (ref.kind == InputRef::Kind::step_output) {
        in.from_steps = concrete[index.at(ref.step)];
        depends_on.insert(in.from_steps.begin(), in.from_steps.end());
      }
      inputs.push_back(std::move(in));
    }
    for (const auto& a : s.after) {
      const auto& producers = concrete[index.at(a)];
      depends_on.insert(producers.begin(), producers.end());
    }

    for (const auto& k : items_index) {
      PlannedStep p;
      p.group = s.id;
      p.id = k ? fmt::format("{}[{}]", s.id, *k) : s.id;
      p.item_index = k;
      if (k) p.item = items[*k];
      p.capability = s.capability;
      p.extension = s.extension;
      p.extension_range = s.extension_range;
      Scope scope{&plan.params, k.has_value(), k ? &p.item : nullptr, k.value_or(0)};
      auto params = substitute(s.params.is_null() ? json::object() : s.params, scope, "params",
                               [&](const std::string& path, const std::string& what) {
                                 return step_error(def, s.line, p.id, fmt::format("{}: {}", path, what));
                               });
      if (!params) return std::move(params).error();
      p.params = std::move(*params);
      p.inputs = inputs;
      p.depends_on.assign(depends_on.begin(), depends_on.end());
      p.timeout = s.timeout;
      p.retry = s.retry;
      p.cost = s.cost;
      p.line = s.line;
      concrete[g].push_back(p.id);
      plan.steps.push_back(std::move(p));
    }
  }
  return plan;
}

std::vector<pit::dag::StepSpec> dag_specs(const Plan& plan) {
  std::vector<pit::dag::StepSpec> out;
  out.reserve(plan.steps.size());
  for (const auto& s : plan.steps) {
    pit::dag::StepSpec spec;
    spec.id = s.id;
    spec.inputs = s.depends_on;
    spec.cost = s.cost;
    spec.max_attempts = s.retry.attempts;
    out.push_back(std::move(spec));
  }
  return out;
}

}  // namespace symphony::conductor
