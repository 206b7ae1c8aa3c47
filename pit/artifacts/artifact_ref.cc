// Artifact names and references ("name", "name@3"): the syntax rules and
// their error messages. Kept apart from the store so the CLI and the
// protocol layer can check a name without opening anything.
#include <charconv>
#include <string>

#include "pit/artifacts/artifact_store.h"

namespace symphony::pit {
namespace {

constexpr std::size_t kMaxNameLength = 200;

bool is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool is_name_char(char c) { return is_alnum(c) || c == '.' || c == '_' || c == '/' || c == '-'; }

// A character as a reader can see it in a message: printable ones as they
// are, others as \xNN.
std::string shown(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return std::string(1, c);
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string("\\x") + kHex[u >> 4] + kHex[u & 0xf];
}

}  // namespace

Result<void> validate_artifact_name(std::string_view name) {
  const std::string quoted = "artifact name '" + std::string(name) + "'";
  if (name.empty()) return Error::invalid("artifact name is empty");
  if (name.size() > kMaxNameLength) {
    return Error::invalid("artifact name is " + std::to_string(name.size()) + " characters long; the limit is " +
                          std::to_string(kMaxNameLength));
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!is_name_char(name[i])) {
      return Error::invalid(quoted + ": '" + shown(name[i]) + "' at position " + std::to_string(i + 1) +
                            " is not allowed (allowed: A-Z a-z 0-9 . _ / -)");
    }
  }
  if (!is_alnum(name.front())) {
    return Error::invalid(quoted + ": must start with a letter or digit, not '" + shown(name.front()) + "'");
  }
  if (auto at = name.find(".."); at != std::string_view::npos) {
    return Error::invalid(quoted + ": \"..\" at position " + std::to_string(at + 1) + " is not allowed");
  }
  if (auto at = name.find("//"); at != std::string_view::npos) {
    return Error::invalid(quoted + ": \"//\" at position " + std::to_string(at + 1) + " is not allowed");
  }
  if (name.back() == '/') return Error::invalid(quoted + ": must not end with '/'");
  return ok();
}

Result<ArtifactRef> ArtifactRef::parse(std::string_view text) {
  ArtifactRef ref;
  std::string_view name = text;
  if (auto at = text.rfind('@'); at != std::string_view::npos) {
    name = text.substr(0, at);
    std::string_view digits = text.substr(at + 1);
    const std::string where = "artifact reference '" + std::string(text) + "'";
    if (digits.empty()) return Error::invalid(where + ": no version after '@'");
    for (std::size_t i = 0; i < digits.size(); ++i) {
      if (digits[i] < '0' || digits[i] > '9') {
        return Error::invalid(where + ": '" + shown(digits[i]) + "' at position " + std::to_string(at + 2 + i) +
                              " is not a digit (the version is a number ≥ 1)");
      }
    }
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ref.version);
    if (ec != std::errc() || end != digits.data() + digits.size()) {
      return Error::invalid(where + ": version '" + std::string(digits) + "' is out of range");
    }
    if (ref.version == 0) return Error::invalid(where + ": versions start at 1");
  }
  if (auto valid = validate_artifact_name(name); !valid) return std::move(valid).error();
  ref.name = std::string(name);
  return ref;
}

std::string ArtifactRef::to_string() const {
  if (version == 0) return name;
  return name + "@" + std::to_string(version);
}

std::string_view to_string(Tier tier) {
  switch (tier) {
    case Tier::active:
      return "active";
    case Tier::archived:
      return "archived";
    case Tier::remote:
      return "remote";
  }
  return "unknown";
}

}  // namespace symphony::pit
