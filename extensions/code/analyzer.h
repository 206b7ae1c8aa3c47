// The code instrument's analysis (org.symphony.code): per source file, line
// counts, functions with their length, cyclomatic complexity and nesting,
// findings from a few simple rules and a quality score; per tree, the same
// merged. C and C++ (.c .cc .cpp .cxx .h .hh .hpp) and Python (.py) are
// understood, by file extension, through the tokenizers in lexer.h, so that
// nothing inside a comment or a string counts as code. The rules and the
// score formula are documented in docs/bundled-extensions.md; the constants
// below are the ones that page quotes.
//
// Errors follow base/result.h: EINVAL or ENOENT for what the request got
// wrong (a bad parameter, a path that is not there), ECANCELED when the step
// was cancelled, anything else for I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace symphony::extensions::code {

enum class Language { c, cpp, python };
// "c", "cpp", "python".
std::string_view to_string(Language language);
// By extension: .c → c; .cc .cpp .cxx .h .hh .hpp → cpp (one lexer serves
// both, and .h is C++ more often than not); .py → python; anything else none.
std::optional<Language> language_of(const std::filesystem::path& path);

enum class Severity { info, warning, error };
std::string_view to_string(Severity severity);

// Rule thresholds: a finding is raised above each.
inline constexpr int kMaxFunctionLines = 80;
inline constexpr int kMaxComplexity = 15;   // an error above twice this
inline constexpr int kMaxLineLength = 120;  // characters (code points)
inline constexpr int kMaxNesting = 4;
inline constexpr int kMaxFileLines = 1000;
// Complexity above this costs score even before it is a finding.
inline constexpr int kComplexityBudget = 10;

// Every line is exactly one of code (any code on it), comment (only comment
// text, Python docstrings included) or blank (only whitespace).
struct LineCounts {
  std::size_t total = 0;
  std::size_t code = 0;
  std::size_t comment = 0;
  std::size_t blank = 0;
  LineCounts& operator+=(const LineCounts& other);
  bool operator==(const LineCounts&) const = default;
};

struct Function {
  // As written, qualified by its enclosing classes ("Outer::Inner::run",
  // "Parser.parse") or, for a Python nested function, by the enclosing
  // function ("outer.inner"). A definition through an all-caps macro with no
  // return type (gtest's TEST) is named with its arguments: "TEST(Suite, Name)".
  std::string name;
  int line = 0;        // the line of the name
  int length = 0;      // lines from `line` to the end of the body, inclusive
  int complexity = 1;  // 1 + decision points
  int nesting = 0;     // deepest block nesting inside the body (the body itself is 0)
  bool operator==(const Function&) const = default;
};

struct Finding {
  int line = 0;
  std::string rule;  // long-function, high-complexity, deep-nesting, long-line, todo, long-file,
                     // trailing-whitespace
  Severity severity = Severity::info;
  std::string message;
  bool operator==(const Finding&) const = default;
};

struct FileAnalysis {
  std::string path;  // as given (relative to the workspace in a tree analysis)
  Language language = Language::cpp;
  LineCounts lines;
  std::vector<Function> functions;  // in source order
  int max_nesting = 0;              // over the file, module-level Python code included
  std::vector<Finding> findings;    // by line, then rule
  double score = 100;               // 0–100, one decimal
};

// Analyses one file's text. Never fails: malformed source is analysed as far
// as it goes.
FileAnalysis analyze_source(std::string path, Language language, std::string_view text);

struct FindingCounts {
  std::size_t info = 0;
  std::size_t warning = 0;
  std::size_t error = 0;
  std::size_t total() const { return info + warning + error; }
  bool operator==(const FindingCounts&) const = default;
};
FindingCounts count_findings(const std::vector<Finding>& findings);

// The score of a body of code with `code_lines` lines of code, these
// findings and `complexity_excess` = Σ max(0, complexity − kComplexityBudget)
// over its functions:
//   kloc  = max(code_lines, 100) / 1000
//   score = clamp(100 − 0.25 × (info + 5 × warning + 15 × error) / kloc
//                     − 0.1 × complexity_excess / kloc, 0, 100)
// rounded to one decimal.
double quality_score(std::size_t code_lines, const FindingCounts& findings,
                     std::size_t complexity_excess);
// The mean of the files' scores weighted by their code lines (100 when there
// is no code at all), rounded to one decimal.
double overall_score(const std::vector<FileAnalysis>& files);

struct Totals {
  std::size_t files = 0;
  LineCounts lines;
  std::size_t functions = 0;
  FindingCounts findings;
  std::map<std::string, std::size_t> languages;  // "cpp" → files
  std::size_t other_files = 0;  // matched by `include` but not of a supported language
  std::size_t skipped = 0;      // unreadable or larger than kMaxFileBytes
};

struct Skipped {
  std::string path;
  std::string reason;
};

struct Analysis {
  std::string root;  // the analysed path, relative to the workspace ("." for all of it)
  std::vector<FileAnalysis> files;  // sorted by path
  Totals totals;
  double score = 100;
  bool truncated = false;        // more files matched than max_files
  std::vector<Skipped> skipped;  // the first kMaxSkippedListed of them
};

inline constexpr std::uintmax_t kMaxFileBytes = 8u << 20;
inline constexpr std::size_t kMaxSkippedListed = 100;

// Totals and score recomputed from `files` (other_files and skipped are kept).
void recompute(Analysis& analysis);

struct AnalyzeOptions {
  std::string path = ".";            // a directory or a file, relative to the workspace
  std::vector<std::string> include;  // globs; empty = every supported language
  std::vector<std::string> exclude = {".git/**", "build*/**"};
  std::size_t max_files = 5000;
};

// Step parameters (a JSON object) to options; errors name the parameter
// ("params.max_files: expected integer, got string"). Paths with ".." or
// absolute paths are refused.
Result<AnalyzeOptions> analyze_options(const nlohmann::json& params);

struct AnalyzeHooks {
  // Called after every 50 files and once at the end: files done, of total.
  std::function<void(std::size_t done, std::size_t total)> progress;
  // Polled before each file; true stops the analysis with ECANCELED.
  std::function<bool()> cancelled;
};

// Analyses `options.path` under `workspace`. Files are found by walking the
// directory (symbolic links are not followed), filtered by the globs
// (matched against the path relative to `options.path`; see glob_match),
// sorted by path and analysed up to max_files. Reported paths are relative
// to the workspace. A file path is analysed as it is, globs aside.
Result<Analysis> analyze_tree(const std::filesystem::path& workspace, const AnalyzeOptions& options,
                              const AnalyzeHooks& hooks = {});

// Glob matching on '/'-separated relative paths: `*` and `?` never match
// '/', `**` matches across directories (`**/` also matches no directory),
// `[abc]`, `[a-z]` and `[!a]` are classes, `\` escapes. A pattern without
// '/' is matched against the last component (at any depth), as in .gitignore.
bool glob_match(std::string_view pattern, std::string_view path);

// The JSON forms documented in docs/bundled-extensions.md, and back (for
// code.report, which reads analyses made elsewhere). Parsing checks every
// field it uses and names it: "analyses[1]: files[3].lines.code: expected
// integer".
nlohmann::json to_json(const FileAnalysis& file);
nlohmann::json to_json(const Analysis& analysis);
Result<Analysis> analysis_from_json(const nlohmann::json& json, std::string_view where);

}  // namespace symphony::extensions::code
