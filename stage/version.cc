// Semver parsing and precedence, and range matching. Numbers are compared as
// integers; numeric prerelease identifiers, which may exceed 64 bits, are
// compared by length then digits (they have no leading zeros).
#include "stage/version.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace symphony::stage {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool all_digits(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_digit); }
bool ident_char(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    auto at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Error bad_version(std::string_view text, std::string_view why) {
  return Error::invalid(fmt::format("'{}' is not a semantic version: {}", text, why));
}

Result<std::uint64_t> parse_number(std::string_view whole, std::string_view part,
                                   std::string_view name) {
  if (!all_digits(part)) return bad_version(whole, fmt::format("{} must be a number", name));
  if (part.size() > 1 && part[0] == '0') {
    return bad_version(whole, fmt::format("leading zero in {}", name));
  }
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), n);
  if (ec != std::errc() || end != part.data() + part.size()) {
    return bad_version(whole, fmt::format("{} is too large", name));
  }
  return n;
}

Result<std::vector<std::string>> parse_identifiers(std::string_view whole, std::string_view part,
                                                   std::string_view name, bool numeric_rule) {
  std::vector<std::string> out;
  for (auto id : split(part, '.')) {
    if (id.empty()) return bad_version(whole, fmt::format("empty {} identifier", name));
    if (!std::all_of(id.begin(), id.end(), ident_char)) {
      return bad_version(whole, fmt::format("{} identifier '{}' has a character outside "
                                            "[0-9A-Za-z-]", name, id));
    }
    if (numeric_rule && all_digits(id) && id.size() > 1 && id[0] == '0') {
      return bad_version(whole, fmt::format("leading zero in {} identifier '{}'", name, id));
    }
    out.emplace_back(id);
  }
  return out;
}

std::strong_ordering compare_identifier(const std::string& a, const std::string& b) {
  bool an = all_digits(a), bn = all_digits(b);
  if (an && bn) {
    if (a.size() != b.size()) return a.size() <=> b.size();
    return a.compare(b) <=> 0;
  }
  // Numeric identifiers have lower precedence than alphanumeric ones.
  if (an != bn) return an ? std::strong_ordering::less : std::strong_ordering::greater;
  return a.compare(b) <=> 0;
}

// The version right after every version that starts with the first `parts`
// parts of v: bump(1.2, 2) = 1.3.0.
Version bump(const Version& v, int parts) {
  if (parts <= 1) return Version{v.major + 1, 0, 0, {}, {}};
  if (parts == 2) return Version{v.major, v.minor + 1, 0, {}, {}};
  return Version{v.major, v.minor, v.patch + 1, {}, {}};
}

// An exclusive upper bound admits no prerelease of the bound itself: v < B-0,
// "0" being the lowest prerelease there is.
bool below(const Version& v, Version bound) {
  if (bound.prerelease.empty()) bound.prerelease = {"0"};
  return v < bound;
}

std::string_view op_text(VersionRange::Op op) {
  switch (op) {
    case VersionRange::Op::ge: return ">=";
    case VersionRange::Op::gt: return ">";
    case VersionRange::Op::le: return "<=";
    case VersionRange::Op::lt: return "<";
    case VersionRange::Op::eq: return "=";
    case VersionRange::Op::caret: return "^";
    case VersionRange::Op::tilde: return "~";
  }
  return "?";
}

bool matches(const VersionRange::Comparator& c, const Version& v) {
  using Op = VersionRange::Op;
  const Version& b = c.version;
  switch (c.op) {
    case Op::ge: return v >= b;
    case Op::gt: return c.parts == 3 ? v > b : v >= bump(b, c.parts);
    case Op::le: return c.parts == 3 ? v <= b : below(v, bump(b, c.parts));
    case Op::lt: return below(v, b);
    case Op::eq: return c.parts == 3 ? v == b : (v >= b && below(v, bump(b, c.parts)));
    case Op::caret: {
      int keep = (b.major > 0 || c.parts == 1) ? 1 : (b.minor > 0 || c.parts == 2) ? 2 : 3;
      return v >= b && below(v, bump(b, keep));
    }
    case Op::tilde: return v >= b && below(v, bump(b, c.parts >= 2 ? 2 : 1));
  }
  return false;
}

}  // namespace

std::strong_ordering operator<=>(const Version& a, const Version& b) {
  if (auto c = a.major <=> b.major; c != 0) return c;
  if (auto c = a.minor <=> b.minor; c != 0) return c;
  if (auto c = a.patch <=> b.patch; c != 0) return c;
  // A prerelease has lower precedence than the release itself.
  if (a.prerelease.empty() || b.prerelease.empty()) {
    return a.prerelease.empty() <=> b.prerelease.empty();
  }
  std::size_t n = std::min(a.prerelease.size(), b.prerelease.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (auto c = compare_identifier(a.prerelease[i], b.prerelease[i]); c != 0) return c;
  }
  return a.prerelease.size() <=> b.prerelease.size();
}

Result<Version> parse_version(std::string_view text) {
  std::string_view rest = text;
  std::string_view build, pre;
  if (auto plus = rest.find('+'); plus != std::string_view::npos) {
    build = rest.substr(plus + 1);
    rest = rest.substr(0, plus);
    if (build.empty()) return bad_version(text, "empty build metadata after '+'");
  }
  if (auto dash = rest.find('-'); dash != std::string_view::npos) {
    pre = rest.substr(dash + 1);
    rest = rest.substr(0, dash);
    if (pre.empty()) return bad_version(text, "empty prerelease after '-'");
  }
  auto core = split(rest, '.');
  if (core.size() != 3) return bad_version(text, "expected MAJOR.MINOR.PATCH");
  Version v;
  const char* names[] = {"major", "minor", "patch"};
  std::uint64_t* fields[] = {&v.major, &v.minor, &v.patch};
  for (int i = 0; i < 3; ++i) {
    auto n = parse_number(text, core[i], names[i]);
    if (!n) return std::move(n).error();
    *fields[i] = *n;
  }
  if (!pre.empty()) {
    auto ids = parse_identifiers(text, pre, "prerelease", true);
    if (!ids) return std::move(ids).error();
    v.prerelease = std::move(*ids);
  }
  if (!build.empty()) {
    auto ids = parse_identifiers(text, build, "build", false);
    if (!ids) return std::move(ids).error();
    v.build = std::move(*ids);
  }
  return v;
}

std::string to_string(const Version& v) {
  std::string out = fmt::format("{}.{}.{}", v.major, v.minor, v.patch);
  if (!v.prerelease.empty()) out += fmt::format("-{}", fmt::join(v.prerelease, "."));
  if (!v.build.empty()) out += fmt::format("+{}", fmt::join(v.build, "."));
  return out;
}

bool VersionRange::contains(const Version& v) const {
  return std::all_of(comparators_.begin(), comparators_.end(),
                     [&](const Comparator& c) { return matches(c, v); });
}

Result<VersionRange> parse_range(std::string_view text) {
  VersionRange range;
  auto fail = [&](std::size_t index, std::string_view part, std::string_view why) {
    return Error::invalid(fmt::format("'{}' is not a version range: comparator {} ('{}') {}",
                                      text, index + 1, part, why));
  };
  if (trim(text).empty()) return Error::invalid("empty version range");
  auto parts = split(text, ',');
  std::vector<std::string> shown;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    std::string_view part = trim(parts[i]);
    if (part.empty()) return fail(i, part, "is empty");
    VersionRange::Comparator c;
    static constexpr std::pair<std::string_view, VersionRange::Op> kOps[] = {
        {">=", VersionRange::Op::ge}, {"<=", VersionRange::Op::le}, {">", VersionRange::Op::gt},
        {"<", VersionRange::Op::lt},  {"=", VersionRange::Op::eq},  {"^", VersionRange::Op::caret},
        {"~", VersionRange::Op::tilde}};
    std::string_view rest;
    bool found = false;
    for (const auto& [spelling, op] : kOps) {
      if (part.substr(0, spelling.size()) == spelling) {
        c.op = op;
        rest = trim(part.substr(spelling.size()));
        found = true;
        break;
      }
    }
    if (!found) return fail(i, part, "needs an operator (>=, >, <=, <, =, ^, ~)");
    // A partial version ("0.1") is padded to a full one for parsing; a
    // prerelease or build is only meaningful on a full one.
    std::string_view core = rest.substr(0, rest.find_first_of("-+"));
    c.parts = static_cast<int>(std::count(core.begin(), core.end(), '.')) + 1;
    if (c.parts > 3) return fail(i, part, "has more than MAJOR.MINOR.PATCH");
    if (c.parts < 3 && core.size() != rest.size()) {
      return fail(i, part, "may carry a prerelease or build only on a full MAJOR.MINOR.PATCH");
    }
    std::string full(rest);
    for (int p = c.parts; p < 3; ++p) full += ".0";
    auto v = parse_version(full);
    if (!v) {
      return fail(i, part, c.parts < 3 ? "is not MAJOR[.MINOR[.PATCH]] of plain numbers"
                                       : std::string_view(v.error().context()));
    }
    c.version = std::move(*v);
    shown.push_back(fmt::format("{}{}", op_text(c.op), rest));
    range.comparators_.push_back(std::move(c));
  }
  range.text_ = fmt::format("{}", fmt::join(shown, ", "));
  return range;
}

}  // namespace symphony::stage
