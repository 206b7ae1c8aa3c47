// org.symphony.git: the bundled git operator. Wires git_ops (libgit2 on the
// workspace's repository) to the extension protocol through the C++ SDK:
// parameters in, outputs back, every git_ops error turned into a StepError
// that names the capability and whether another attempt could succeed.
#include <symphony/ext.h>

#include <string>

#include "extensions/git/git_ops.h"

namespace ext = symphony::ext;
namespace git = symphony::extensions::git;

namespace {

// A request error (no repository, unknown revision, bad parameter) fails the
// same way every time: not retryable.
[[noreturn]] void fail(const ext::Step& step, const symphony::Error& e) {
  throw ext::StepError(step.capability() + ": " + e.message(), !git::is_request_error(e));
}

template <class T>
T take(const ext::Step& step, symphony::Result<T> r) {
  if (!r) fail(step, r.error());
  return std::move(*r);
}

// The repository named by params.repo (default: the workspace itself).
git::Repository open_repository(const ext::Step& step) {
  std::string rel = take(step, git::repository_param(step.params()));
  auto dir = take(step, git::resolve_in_workspace(step.workspace(), rel, "params.repo"));
  return take(step, git::Repository::open(dir));
}

void git_status(ext::Step& step) {
  git::Repository repo = open_repository(step);
  git::Status status = take(step, repo.status());
  nlohmann::json out = git::to_json(status);
  step.summary(
      {{"branch", out["branch"]}, {"clean", status.clean()}, {"entries", status.entries.size()}});
  step.output_json("status", out);
}

void git_diff(ext::Step& step) {
  git::DiffOptions options = take(step, git::diff_options(step.params()));
  git::Repository repo = open_repository(step);
  git::Diff diff = take(step, repo.diff(options));
  step.summary(git::diff_summary(diff));
  step.output("patch", std::move(diff.patch), "text/x-diff");
}

void git_log(ext::Step& step) {
  git::LogOptions options = take(step, git::log_options(step.params()));
  git::Repository repo = open_repository(step);
  auto log = take(step, repo.log(options));
  step.summary({{"commits", log.size()}});
  step.output_json("log", git::to_json(log));
}

void git_blame(ext::Step& step) {
  std::string path = take(step, git::blame_path(step.params()));
  git::Repository repo = open_repository(step);
  auto blame = take(step, repo.blame(path));
  step.summary({{"path", path}, {"lines", blame.size()}});
  step.output_json("blame", git::to_json(blame));
}

}  // namespace

int main() {
  ext::Extension extension("org.symphony.git", "0.1.0");
  extension.capability("git.status", git_status)
      .capability("git.diff", git_diff)
      .capability("git.log", git_log)
      .capability("git.blame", git_blame);
  return extension.run();
}
