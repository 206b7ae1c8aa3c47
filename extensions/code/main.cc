// org.symphony.code: the bundled code instrument. Wires the analyzer and the
// report (pure libraries, tested without a daemon) to the extension protocol
// through the C++ SDK: parameters and input artifacts in, JSON and Markdown
// outputs back, progress while a tree is analysed, cancellation honoured.
#include <fmt/format.h>
#include <symphony/ext.h>

#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include "extensions/code/analyzer.h"
#include "extensions/code/report.h"

namespace ext = symphony::ext;
namespace code = symphony::extensions::code;

namespace {

// Bad parameters, missing paths and bad inputs fail the same way every time.
bool retryable(const symphony::Error& e) {
  return e.code() != EINVAL && e.code() != ENOENT && e.code() != ENOTDIR && e.code() != ECANCELED;
}

[[noreturn]] void fail(const ext::Step& step, const symphony::Error& e) {
  throw ext::StepError(step.capability() + ": " + e.message(), retryable(e));
}

void code_analyze(ext::Step& step) {
  auto options = code::analyze_options(step.params());
  if (!options) fail(step, options.error());
  code::AnalyzeHooks hooks;
  hooks.progress = [&step](std::size_t done, std::size_t total) {
    step.progress(total == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total),
                  fmt::format("analysed {} of {} files", done, total));
  };
  hooks.cancelled = [&step] { return step.cancelled(); };
  auto analysis = code::analyze_tree(step.workspace(), *options, hooks);
  if (!analysis) fail(step, analysis.error());
  const code::Totals& t = analysis->totals;
  step.summary({{"files", t.files},
                {"functions", t.functions},
                {"findings", t.findings.total()},
                {"score", analysis->score},
                {"truncated", analysis->truncated}});
  step.output("analysis", code::to_json(*analysis).dump(), "application/json");
}

// The data of the single input `name`, if given.
std::optional<std::string> single_input(const ext::Step& step, const std::string& name) {
  const auto& inputs = step.inputs(name);
  if (inputs.empty()) return std::nullopt;
  if (inputs.size() > 1)
    throw ext::StepError(
        fmt::format("{}: {}: expected one input, got {}", step.capability(), name, inputs.size()),
        /*retryable=*/false);
  return inputs.front().data;
}

void code_report(ext::Step& step) {
  std::string title = "Code report";
  if (auto it = step.params().find("title"); it != step.params().end() && !it->is_null()) {
    if (!it->is_string())
      throw ext::StepError(fmt::format("{}: params.title: expected string, got {}",
                                       step.capability(), it->type_name()),
                           /*retryable=*/false);
    title = it->get<std::string>();
  }
  std::vector<std::string> analyses;
  for (const auto& input : step.inputs("analyses")) analyses.push_back(input.data);
  auto input = code::parse_report_input(
      std::move(title), analyses, single_input(step, "git_status"), single_input(step, "git_log"));
  if (!input) fail(step, input.error());
  code::Report report = code::build_report(*input);
  step.summary({{"files", report.summary["files"]}, {"score", report.summary["score"]}});
  step.output("report", std::move(report.markdown), "text/markdown");
  step.output_json("summary", report.summary);
}

}  // namespace

int main() {
  ext::Extension extension("org.symphony.code", "0.1.0");
  extension.capability("code.analyze", code_analyze).capability("code.report", code_report);
  return extension.run();
}
