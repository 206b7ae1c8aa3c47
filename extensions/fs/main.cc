// org.symphony.fs: the bundled file operator. Wires fs_ops (the confined file
// operations) to the extension protocol through the C++ SDK: parameters in,
// JSON outputs back, every fs_ops error turned into a StepError that says
// which capability failed and why.
#include <symphony/ext.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "extensions/fs/fs_ops.h"

namespace ext = symphony::ext;
namespace fsx = symphony::extensions::fs;

namespace {

constexpr std::uint64_t kDefaultMaxBytes = 16 * 1024 * 1024;

// Failures that another attempt may not repeat (a full disk, too many open
// files, an interrupted device); a bad path or a missing file will.
bool retryable(const symphony::Error& e) {
  switch (e.code()) {
    case EIO:
    case EAGAIN:
    case EINTR:
    case ENOMEM:
    case ENFILE:
    case EMFILE:
    case EBUSY:
    case ENOSPC:
    case EDQUOT:
    case ETIMEDOUT: return true;
    default: return false;
  }
}

[[noreturn]] void fail(const ext::Step& step, const symphony::Error& e) {
  throw ext::StepError(step.capability() + ": " + e.message(), retryable(e));
}

[[noreturn]] void bad_param(const ext::Step& step, const std::string& name, const char* what,
                            const nlohmann::json& got) {
  throw ext::StepError(step.capability() + ": params." + name + " must be " + what + ", got " +
                           got.type_name(),
                       /*retryable=*/false);
}

const nlohmann::json* param(const ext::Step& step, const std::string& name, bool required) {
  auto it = step.params().find(name);
  if (it == step.params().end() || it->is_null()) {
    if (required) {
      throw ext::StepError(step.capability() + ": params." + name + ": missing required parameter",
                           /*retryable=*/false);
    }
    return nullptr;
  }
  return &*it;
}

std::string string_param(const ext::Step& step, const std::string& name, std::string fallback,
                         bool required = false) {
  const nlohmann::json* v = param(step, name, required);
  if (v == nullptr) return fallback;
  if (!v->is_string()) bad_param(step, name, "a string", *v);
  return v->get<std::string>();
}

bool bool_param(const ext::Step& step, const std::string& name, bool fallback) {
  const nlohmann::json* v = param(step, name, false);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) bad_param(step, name, "a boolean", *v);
  return v->get<bool>();
}

std::uint64_t count_param(const ext::Step& step, const std::string& name, std::uint64_t fallback) {
  const nlohmann::json* v = param(step, name, false);
  if (v == nullptr) return fallback;
  if (v->is_number_unsigned() && v->get<std::uint64_t>() > 0) return v->get<std::uint64_t>();
  if (v->is_number_integer() && v->get<std::int64_t>() > 0) {
    return static_cast<std::uint64_t>(v->get<std::int64_t>());
  }
  bad_param(step, name, "a positive integer", *v);
}

fsx::Workspace workspace(const ext::Step& step) {
  if (step.workspace().empty()) {
    throw ext::StepError(step.capability() + ": the run has no workspace (fs works inside one)",
                         /*retryable=*/false);
  }
  auto ws = fsx::Workspace::open(step.workspace());
  if (!ws) fail(step, ws.error());
  return std::move(*ws);
}

void fs_list(ext::Step& step) {
  fsx::ListOptions options;
  options.path = string_param(step, "path", ".");
  options.recursive = bool_param(step, "recursive", false);
  options.pattern = string_param(step, "pattern", "");
  options.max_entries = count_param(step, "max_entries", options.max_entries);
  auto listing = fsx::list(workspace(step), options);
  if (!listing) fail(step, listing.error());
  nlohmann::json entries = nlohmann::json::array();
  for (const fsx::Entry& e : listing->entries) {
    entries.push_back({{"path", e.path}, {"type", e.type}, {"size", e.size}});
  }
  step.output_json("entries", entries);
  step.summary({{"entries", listing->entries.size()}, {"truncated", listing->truncated}});
}

void fs_read(ext::Step& step) {
  const std::string path = string_param(step, "path", "", /*required=*/true);
  auto content = fsx::read(workspace(step), path, count_param(step, "max_bytes", kDefaultMaxBytes));
  if (!content) fail(step, content.error());
  step.summary({{"path", path}, {"bytes", content->data.size()}, {"media_type", content->media_type}});
  step.output("content", std::move(content->data), content->media_type);
}

void fs_write(ext::Step& step) {
  fsx::WriteOptions options;
  options.path = string_param(step, "path", "", /*required=*/true);
  options.content = string_param(step, "content", "", /*required=*/true);
  options.create_parents = bool_param(step, "create_parents", false);
  auto written = fsx::write(workspace(step), options);
  if (!written) fail(step, written.error());
  nlohmann::json result = {{"path", options.path}, {"bytes", *written}};
  step.output_json("written", result);
  step.summary(result);
}

void fs_search(ext::Step& step) {
  fsx::SearchOptions options;
  options.pattern = string_param(step, "pattern", "", /*required=*/true);
  options.path = string_param(step, "path", ".");
  options.glob = string_param(step, "glob", "");
  options.max_matches = count_param(step, "max_matches", options.max_matches);
  options.ignore_case = bool_param(step, "ignore_case", false);
  auto found = fsx::search(workspace(step), options);
  if (!found) fail(step, found.error());
  nlohmann::json matches = nlohmann::json::array();
  for (const fsx::Match& m : found->matches) {
    matches.push_back({{"path", m.path}, {"line", m.line}, {"text", m.text}});
  }
  step.output_json("matches", matches);
  step.summary({{"matches", found->matches.size()},
                {"truncated", found->truncated},
                {"files_searched", found->files_searched},
                {"files_skipped", found->files_skipped}});
}

}  // namespace

int main() {
  ext::Extension extension("org.symphony.fs", "0.1.0");
  extension.capability("fs.list", fs_list)
      .capability("fs.read", fs_read)
      .capability("fs.write", fs_write)
      .capability("fs.search", fs_search);
  return extension.run();
}
