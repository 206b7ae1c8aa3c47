// Report rendering: the analyses merged file by file, then one Markdown
// section per question a reader asks (how big, how good, where is it worst,
// what to fix first, what changed lately), each a GitHub-flavoured table.
#include "extensions/code/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace symphony::extensions::code {
namespace {

constexpr std::size_t kWorstFiles = 10;
constexpr std::size_t kTopFindings = 20;
constexpr std::size_t kComplexFunctions = 10;
constexpr std::size_t kRecentCommits = 10;

std::string_view json_type(const nlohmann::json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  return v.type_name();
}

Result<nlohmann::json> parse_json(std::string_view text, std::string_view where) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    return Error::invalid(fmt::format("{}: not JSON: {}", where, e.what()));
  }
}

// Every listed field of `obj` present with the JSON type the predicate accepts.
Result<void> require(const nlohmann::json& obj, std::string_view where,
                     std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
  if (!obj.is_object())
    return Error::invalid(fmt::format("{}: expected object, got {}", where, json_type(obj)));
  for (auto [name, type] : fields) {
    auto it = obj.find(name);
    if (it == obj.end()) return Error::invalid(fmt::format("{}.{}: missing", where, name));
    bool ok = type == "string"           ? it->is_string()
              : type == "string or null" ? it->is_string() || it->is_null()
              : type == "boolean"        ? it->is_boolean()
              : type == "array"          ? it->is_array()
                                         : false;
    if (!ok)
      return Error::invalid(
          fmt::format("{}.{}: expected {}, got {}", where, name, type, json_type(*it)));
  }
  return ok();
}

Result<void> check_git_status(const nlohmann::json& j) {
  if (auto r = require(j, "git_status",
                       {{"branch", "string or null"},
                        {"head", "string or null"},
                        {"entries", "array"},
                        {"clean", "boolean"}});
      !r)
    return r;
  const auto& entries = j["entries"];
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (auto r = require(entries[i], fmt::format("git_status.entries[{}]", i),
                         {{"path", "string"}, {"index", "string"}, {"worktree", "string"}});
        !r)
      return r;
  }
  return ok();
}

Result<void> check_git_log(const nlohmann::json& j) {
  if (!j.is_array())
    return Error::invalid(fmt::format("git_log: expected array, got {}", json_type(j)));
  for (std::size_t i = 0; i < j.size(); ++i) {
    if (auto r = require(j[i], fmt::format("git_log[{}]", i),
                         {{"commit", "string"},
                          {"author", "string"},
                          {"time", "string"},
                          {"summary", "string"}});
        !r)
      return r;
  }
  return ok();
}

// Text safe in a table cell: no line breaks, pipes escaped.
std::string cell(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n' || c == '\r')
      out += ' ';
    else
      out += c;
  }
  return out;
}

// A code span for a path or a name: `base/log.cc`.
std::string code(std::string_view s) {
  std::string t = cell(s);
  std::replace(t.begin(), t.end(), '`', '\'');
  return "`" + t + "`";
}

std::string plural(std::size_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

std::string findings_text(const FindingCounts& c) {
  return fmt::format("{}, {}, {} info", plural(c.error, "error", "errors"),
                     plural(c.warning, "warning", "warnings"), c.info);
}

std::string score_text(double s) { return fmt::format("{:.1f}", s); }

int rank(Severity s) { return s == Severity::error ? 0 : s == Severity::warning ? 1 : 2; }

Analysis merge(const std::vector<Analysis>& analyses) {
  Analysis out;
  std::set<std::string> seen;
  for (const auto& a : analyses) {
    for (const auto& f : a.files)
      if (seen.insert(f.path).second) out.files.push_back(f);
    out.totals.other_files += a.totals.other_files;
    out.totals.skipped += a.totals.skipped;
  }
  std::sort(out.files.begin(), out.files.end(),
            [](const FileAnalysis& x, const FileAnalysis& y) { return x.path < y.path; });
  recompute(out);
  return out;
}

nlohmann::json summary_json(const std::string& title, const std::vector<Analysis>& analyses,
                            const Analysis& merged) {
  auto roots = nlohmann::json::array();
  for (const auto& a : analyses) roots.push_back(a.root);
  const Totals& t = merged.totals;
  return {
      {"title", title},
      {"analyses", analyses.size()},
      {"roots", std::move(roots)},
      {"files", t.files},
      {"lines",
       {{"total", t.lines.total},
        {"code", t.lines.code},
        {"comment", t.lines.comment},
        {"blank", t.lines.blank}}},
      {"functions", t.functions},
      {"findings",
       {{"info", t.findings.info}, {"warning", t.findings.warning}, {"error", t.findings.error}}},
      {"languages", t.languages},
      {"score", merged.score}};
}

void overview(std::string& md, const std::vector<Analysis>& analyses, const Analysis& merged) {
  const Totals& t = merged.totals;
  std::string languages;
  for (const auto& [name, n] : t.languages)
    languages += fmt::format("{}{} {}", languages.empty() ? "" : ", ", name, n);
  md += "## Overview\n\n| | |\n|---|---|\n";
  md += fmt::format("| Score | **{}** / 100 |\n", score_text(merged.score));
  md += fmt::format("| Files | {}{} |\n", t.files, languages.empty() ? "" : " (" + languages + ")");
  md += fmt::format("| Lines | {} ({} code, {} comment, {} blank) |\n", t.lines.total, t.lines.code,
                    t.lines.comment, t.lines.blank);
  md += fmt::format("| Functions | {} |\n", t.functions);
  md += fmt::format("| Findings | {} |\n", findings_text(t.findings));
  if (t.skipped > 0) md += fmt::format("| Skipped | {} (unreadable or too large) |\n", t.skipped);
  md += '\n';
  if (analyses.size() > 1) {
    md +=
        "| Root | Files | Code lines | Functions | Findings | Score "
        "|\n|---|---:|---:|---:|---:|---:|\n";
    for (const auto& a : analyses)
      md += fmt::format("| {} | {} | {} | {} | {} | {} |\n", code(a.root), a.totals.files,
                        a.totals.lines.code, a.totals.functions, a.totals.findings.total(),
                        score_text(a.score));
    md += '\n';
  }
}

void worst_files(std::string& md, const Analysis& merged) {
  std::vector<const FileAnalysis*> files;
  for (const auto& f : merged.files)
    if (f.score < 100) files.push_back(&f);
  md += "## Worst files\n\n";
  if (files.empty()) {
    md += "Every file scores 100.\n\n";
    return;
  }
  std::stable_sort(files.begin(), files.end(), [](const FileAnalysis* a, const FileAnalysis* b) {
    return a->score != b->score ? a->score < b->score : a->lines.code > b->lines.code;
  });
  if (files.size() > kWorstFiles) files.resize(kWorstFiles);
  md +=
      "| File | Score | Code lines | Findings | Highest complexity |\n|---|---:|---:|---:|---:|\n";
  for (const auto* f : files) {
    int worst = 0;
    for (const auto& fn : f->functions) worst = std::max(worst, fn.complexity);
    md += fmt::format("| {} | {} | {} | {} | {} |\n", code(f->path), score_text(f->score),
                      f->lines.code, f->findings.size(), worst);
  }
  md += '\n';
}

void top_findings(std::string& md, const Analysis& merged) {
  struct Located {
    const FileAnalysis* file;
    const Finding* finding;
  };
  std::vector<Located> all;
  for (const auto& f : merged.files)
    for (const auto& x : f.findings) all.push_back({&f, &x});
  md += "## Top findings\n\n";
  if (all.empty()) {
    md += "No findings.\n\n";
    return;
  }
  std::stable_sort(all.begin(), all.end(), [](const Located& a, const Located& b) {
    // Worst first; among equals, the files that lose most first.
    if (rank(a.finding->severity) != rank(b.finding->severity))
      return rank(a.finding->severity) < rank(b.finding->severity);
    if (a.file->score != b.file->score) return a.file->score < b.file->score;
    if (a.file->path != b.file->path) return a.file->path < b.file->path;
    return a.finding->line < b.finding->line;
  });
  md += "| Severity | Where | Rule | Message |\n|---|---|---|---|\n";
  for (std::size_t i = 0; i < all.size() && i < kTopFindings; ++i) {
    const auto& [file, finding] = all[i];
    md += fmt::format("| {} | {} | {} | {} |\n", to_string(finding->severity),
                      code(fmt::format("{}:{}", file->path, finding->line)), finding->rule,
                      cell(finding->message));
  }
  if (all.size() > kTopFindings) md += fmt::format("\n… and {} more.\n", all.size() - kTopFindings);
  md += '\n';
}

void complex_functions(std::string& md, const Analysis& merged) {
  struct Located {
    const FileAnalysis* file;
    const Function* function;
  };
  std::vector<Located> all;
  for (const auto& f : merged.files)
    for (const auto& fn : f.functions) all.push_back({&f, &fn});
  md += "## Most complex functions\n\n";
  if (all.empty()) {
    md += "No functions.\n\n";
    return;
  }
  std::stable_sort(all.begin(), all.end(), [](const Located& a, const Located& b) {
    if (a.function->complexity != b.function->complexity)
      return a.function->complexity > b.function->complexity;
    return a.function->length > b.function->length;
  });
  md += "| Function | Where | Complexity | Lines | Nesting |\n|---|---|---:|---:|---:|\n";
  for (std::size_t i = 0; i < all.size() && i < kComplexFunctions; ++i) {
    const auto& [file, fn] = all[i];
    md += fmt::format("| {} | {} | {} | {} | {} |\n", code(fn->name),
                      code(fmt::format("{}:{}", file->path, fn->line)), fn->complexity, fn->length,
                      fn->nesting);
  }
  md += '\n';
}

void working_tree(std::string& md, const nlohmann::json& status) {
  md += "## Working tree\n\n";
  std::string branch =
      status["branch"].is_string() ? code(status["branch"].get<std::string>()) : "detached HEAD";
  std::string head = status["head"].is_string()
                         ? code(status["head"].get<std::string>().substr(0, 10))
                         : "no commit yet";
  md += fmt::format("Branch {} at {}: ", branch, head);
  if (status["clean"].get<bool>()) {
    md += "clean.\n\n";
    return;
  }
  std::size_t staged = 0, unstaged = 0, untracked = 0;
  for (const auto& e : status["entries"]) {
    if (e["index"] != "none") ++staged;
    if (e["worktree"] == "new")
      ++untracked;
    else if (e["worktree"] != "none")
      ++unstaged;
  }
  md += fmt::format("{} ({} staged, {} unstaged, {} untracked).\n\n",
                    plural(status["entries"].size(), "changed path", "changed paths"), staged,
                    unstaged, untracked);
}

void recent_commits(std::string& md, const nlohmann::json& log) {
  md += "## Recent commits\n\n";
  if (log.empty()) {
    md += "No commits.\n\n";
    return;
  }
  md += "| Commit | Date | Author | Summary |\n|---|---|---|---|\n";
  for (std::size_t i = 0; i < log.size() && i < kRecentCommits; ++i) {
    const auto& c = log[i];
    md += fmt::format("| {} | {} | {} | {} |\n", code(c["commit"].get<std::string>().substr(0, 10)),
                      cell(c["time"].get<std::string>()), cell(c["author"].get<std::string>()),
                      cell(c["summary"].get<std::string>()));
  }
  if (log.size() > kRecentCommits)
    md += fmt::format("\n… and {} more.\n", log.size() - kRecentCommits);
  md += '\n';
}

}  // namespace

Result<ReportInput> parse_report_input(std::string title, const std::vector<std::string>& analyses,
                                       const std::optional<std::string>& git_status,
                                       const std::optional<std::string>& git_log) {
  ReportInput out;
  if (title.empty()) return Error::invalid("params.title: empty title");
  out.title = std::move(title);
  if (analyses.empty())
    return Error::invalid("analyses: missing input (one or more code.analyze results)");
  for (std::size_t i = 0; i < analyses.size(); ++i) {
    std::string where = fmt::format("analyses[{}]", i);
    auto json = parse_json(analyses[i], where);
    if (!json) return std::move(json.error());
    auto a = analysis_from_json(*json, where);
    if (!a) return std::move(a.error());
    out.analyses.push_back(std::move(*a));
  }
  if (git_status) {
    auto json = parse_json(*git_status, "git_status");
    if (!json) return std::move(json.error());
    if (auto r = check_git_status(*json); !r) return std::move(r.error());
    out.git_status = std::move(*json);
  }
  if (git_log) {
    auto json = parse_json(*git_log, "git_log");
    if (!json) return std::move(json.error());
    if (auto r = check_git_log(*json); !r) return std::move(r.error());
    out.git_log = std::move(*json);
  }
  return out;
}

Report build_report(const ReportInput& input) {
  Analysis merged = merge(input.analyses);
  Report out;
  std::string& md = out.markdown;
  md += fmt::format("# {}\n\n", cell(input.title));
  std::string roots;
  for (const auto& a : input.analyses) roots += (roots.empty() ? "" : ", ") + code(a.root);
  md += fmt::format("{} analysed in {}: {}.{}\n\n", plural(merged.totals.files, "file", "files"),
                    plural(input.analyses.size(), "analysis", "analyses"), roots,
                    std::any_of(input.analyses.begin(), input.analyses.end(),
                                [](const Analysis& a) { return a.truncated; })
                        ? " Some analyses stopped at their max_files limit."
                        : "");
  overview(md, input.analyses, merged);
  worst_files(md, merged);
  top_findings(md, merged);
  complex_functions(md, merged);
  if (input.git_status) working_tree(md, *input.git_status);
  if (input.git_log) recent_commits(md, *input.git_log);
  md +=
      "Score per file: 100 − 0.25 × (info + 5 × warning + 15 × error) per KLOC − 0.1 × complexity "
      "above 10 per KLOC (a file under 100 code lines counts as 100), clamped to 0–100; overall: "
      "the "
      "files' scores weighted by code lines.\n";
  out.summary = summary_json(input.title, input.analyses, merged);
  return out;
}

}  // namespace symphony::extensions::code
