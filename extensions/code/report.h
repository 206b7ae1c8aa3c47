// code.report: merges one or more code.analyze results (a fan-out over
// directories, say) into a Markdown report for people and a JSON summary for
// the next step, optionally with the working tree's state and recent commits
// from the git extension's git.status and git.log outputs.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "extensions/code/analyzer.h"

namespace symphony::extensions::code {

struct ReportInput {
  std::string title = "Code report";
  std::vector<Analysis> analyses;            // at least one
  std::optional<nlohmann::json> git_status;  // as git.status outputs it
  std::optional<nlohmann::json> git_log;     // as git.log outputs it
};

struct Report {
  std::string markdown;
  nlohmann::json summary;
};

// Parses the step's inputs, each the raw JSON text of one artifact:
// `analyses` (one or more), `git_status` and `git_log` (each at most one).
// Errors name the input and the field ("analyses[1]: files[0].score: expected
// number, got string", "git_log: not JSON: ...").
Result<ReportInput> parse_report_input(std::string title, const std::vector<std::string>& analyses,
                                       const std::optional<std::string>& git_status,
                                       const std::optional<std::string>& git_log);

// Files that appear in more than one analysis (overlapping roots) count once,
// as in the first analysis that has them. The summary:
//   {title, analyses, roots: [..], files, lines: {total, code, comment, blank},
//    functions, findings: {info, warning, error}, languages: {cpp: n, ..},
//    score}
// where score is the files' scores weighted by code lines (overall_score).
Report build_report(const ReportInput& input);

}  // namespace symphony::extensions::code
