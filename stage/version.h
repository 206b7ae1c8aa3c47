// Semantic versions (semver 2.0.0) and the version ranges a manifest states
// for the Symphony it works with (">=0.1, <0.3", "^1.2", "~0.4.1"). Kept apart
// from the manifest because the registry and the extension host compare
// versions too (hot swap picks the newest installed version).
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace symphony::stage {

struct Version {
  std::uint64_t major = 0;
  std::uint64_t minor = 0;
  std::uint64_t patch = 0;
  std::vector<std::string> prerelease;  // "1.0.0-rc.1" -> {"rc", "1"}
  std::vector<std::string> build;       // "+build.5" -> {"build", "5"}; ignored in ordering

  // Precedence per semver 2.0 §11: build metadata is ignored, so two
  // versions differing only in build compare equal (and ==).
  friend std::strong_ordering operator<=>(const Version& a, const Version& b);
  friend bool operator==(const Version& a, const Version& b) { return (a <=> b) == 0; }
};

// Strict semver 2.0: MAJOR.MINOR.PATCH, no leading zeros in numbers or in
// numeric prerelease identifiers, identifiers of [0-9A-Za-z-], non-empty.
// Errors say what is wrong ("'1.02.0': leading zero in minor").
Result<Version> parse_version(std::string_view text);
std::string to_string(const Version& v);

// A comma-separated list of comparators, all of which must hold:
//   >=V  >V  <=V  <V  =V  ^V  ~V
// V may be partial ("0.1" or "1"): missing parts are 0, and a partial V
// stands for every version that starts so (=0.1 is 0.1.x, <=0.1 is <0.2.0,
// >0.1 is >=0.2.0). ^ allows changes that do not touch the leftmost non-zero
// part (^1.2.3 = >=1.2.3, <2.0.0; ^0.2.3 = >=0.2.3, <0.3.0; ^0.0.3 = only
// 0.0.3's patch line). ~ allows patch changes (~1.2.3 = >=1.2.3, <1.3.0;
// ~1 = >=1.0.0, <2.0.0). Exclusive upper bounds also exclude the bound's
// prereleases: <0.3 does not admit 0.3.0-alpha.
class VersionRange {
 public:
  enum class Op { ge, gt, le, lt, eq, caret, tilde };
  struct Comparator {
    Op op = Op::eq;
    Version version;
    int parts = 3;  // how many of MAJOR.MINOR.PATCH were written
  };

  bool contains(const Version& v) const;
  const std::vector<Comparator>& comparators() const { return comparators_; }
  // The range as parsed, normalised: ">=0.1, <0.3".
  const std::string& text() const { return text_; }

 private:
  friend Result<VersionRange> parse_range(std::string_view text);
  std::vector<Comparator> comparators_;
  std::string text_;
};

// Errors name the comparator at fault: "'>=0.1, 0.3': comparator 2 ('0.3')
// needs an operator (>=, >, <=, <, =, ^, ~)".
Result<VersionRange> parse_range(std::string_view text);

}  // namespace symphony::stage
