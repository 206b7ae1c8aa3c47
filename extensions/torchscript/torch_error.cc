// Picking the telling line out of a LibTorch error message (torch_error.h).
#include "extensions/torchscript/torch_error.h"

#include <cctype>
#include <optional>
#include <vector>

namespace symphony::extensions::torchscript {
namespace {

constexpr std::string_view kInterpreterFailure =
    "The following operation failed in the TorchScript interpreter";

// "RuntimeError: what" → "what" for a Python-style exception name (a word
// ending in Error or Exception); nullopt for any other line.
std::optional<std::string_view> after_exception_name(std::string_view line) {
  std::size_t colon = line.find(": ");
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  std::string_view name = line.substr(0, colon);
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.') return std::nullopt;
  }
  if (!name.ends_with("Error") && !name.ends_with("Exception")) return std::nullopt;
  return line.substr(colon + 2);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string torch_error_reason(std::string_view message) {
  std::vector<std::string_view> lines;
  for (std::size_t start = 0; start <= message.size();) {
    std::size_t nl = message.find('\n', start);
    if (nl == std::string_view::npos) nl = message.size();
    lines.push_back(message.substr(start, nl - start));
    start = nl + 1;
  }
  if (message.starts_with(kInterpreterFailure)) {
    // The traceback ends with the exception the operation raised; its
    // message may itself span lines, so take the last line that opens one.
    for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
      if (auto reason = after_exception_name(*it)) return std::string(trim(*reason));
    }
  }
  for (std::string_view line : lines) {
    if (!trim(line).empty()) return std::string(trim(line));
  }
  return "unknown LibTorch error";
}

}  // namespace symphony::extensions::torchscript
