// The code instrument's analysis: exact line counts, functions, complexity
// and nesting on crafted C++ and Python (with braces and keywords hidden in
// comments, strings and raw strings), each finding rule, the score formula
// and its bounds, the tree walk with its globs and limits, report merging,
// and a smoke run over a real directory of this repository.
#include "extensions/code/analyzer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>

#include "extensions/code/lexer.h"
#include "extensions/code/report.h"
#include "stage/manifest.h"
#include "tests/support/temp_dir.h"

namespace symphony::extensions::code {
namespace {

using symphony::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

Function fn(std::string name, int line, int length, int complexity, int nesting) {
  return Function{std::move(name), line, length, complexity, nesting};
}

LineCounts lines(std::size_t total, std::size_t code, std::size_t comment, std::size_t blank) {
  return LineCounts{total, code, comment, blank};
}

constexpr const char* kCpp = R"src(// A header comment with { braces } and if (x) keywords.
#include <string>
#define OPEN {
/* block comment
   with } and while (true) */

namespace demo {

const char* kText = "if (a) { return; } // not a comment";
const char* kRaw = R"x(
  } if for while { "quoted" )"
)x";
char brace = '{';

class Widget {
 public:
  int size() const { return n_; }  // inline
  void set(int n) noexcept;

 private:
  int n_ = 0;
};

void Widget::set(int n) noexcept {
  if (n > 0 && n < 100) {
    n_ = n;
  } else {
    n_ = 0;
  }
}

int classify(int x) {
  switch (x) {
    case 1:
      return 10;
    case 2:
      return 20;
    default:
      for (int i = 0; i < x; ++i) {
        while (x > i || x == 3) {
          x = x > 5 ? x - 1 : x + 1;
        }
      }
  }
  try {
    throw 1;
  } catch (int) {
    return -1;
  }
  return x;
}

auto lambda = [](int v) { if (v) return 1; return 0; };

}  // namespace demo
)src";

TEST(Analyzer, CppCountsIgnoreBracesAndKeywordsInCommentsAndStrings) {
  FileAnalysis a = analyze_source("demo.cc", Language::cpp, kCpp);
  EXPECT_EQ(a.lines, lines(55, 44, 3, 8));
  EXPECT_THAT(a.functions,
              ElementsAre(fn("Widget::size", 17, 1, 1, 0), fn("Widget::set", 24, 7, 3, 1),
                          fn("classify", 32, 20, 8, 3)));
  EXPECT_EQ(a.max_nesting, 3);
  EXPECT_TRUE(a.findings.empty());
  EXPECT_EQ(a.score, 100.0);
}

constexpr const char* kConstructs = R"src(extern "C" {
int c_api(void) { return 0; }
}
namespace a::b {
template <typename T>
class Box {
 public:
  explicit Box(T v) : value_{v}, count_(0) {}
  ~Box() {}
  bool operator==(const Box& o) const { return value_ == o.value_; }
  T& operator()() { return value_; }
  operator bool() const { return count_ > 0; }
  struct Inner {
    void poke() {}
  };

 private:
  T value_;
  int count_;
};
template <typename T>
auto make(T v) -> Box<T> {
  return Box<T>{v};
}
}  // namespace a::b
TEST(BoxTest, Compares) {
  EXPECT_TRUE(true);
}
int main(int argc, char** argv) {
  auto f = [&](int x) {
    if (x) { return 1; }
    return 0;
  };
  return f(argc) && argv != nullptr;
}
)src";

TEST(Analyzer, CppFunctionsAreFoundInEveryDefiningForm) {
  FileAnalysis a = analyze_source("box.h", Language::cpp, kConstructs);
  EXPECT_THAT(
      a.functions,
      ElementsAre(fn("c_api", 2, 1, 1, 0), fn("Box::Box", 8, 1, 1, 0), fn("Box::~Box", 9, 1, 1, 0),
                  fn("Box::operator==", 10, 1, 1, 0), fn("Box::operator()", 11, 1, 1, 0),
                  fn("Box::operator bool", 12, 1, 1, 0), fn("Box::Inner::poke", 14, 1, 1, 0),
                  fn("make", 22, 3, 1, 0), fn("TEST(BoxTest, Compares)", 26, 3, 1, 0),
                  // The lambda is part of main: its `if` and its blocks count there.
                  fn("main", 29, 7, 3, 2)));
}

TEST(Analyzer, CppFollowsOneBranchOfConditionalsAndLexesEveryLiteral) {
  constexpr const char* kSource = R"src(#if defined(USE_TWO)
int pick(int a, int b) {
#else
int pick(int a) {
#endif
  return a;
}
#if 0
void dead() { if (x) { { {
#endif
int n = 1'000'000;
char q = '"';
const char* s = u8R"d(})d";
const wchar_t* w = L"{";
const char* t = "a \" { \\";  /* } */
#define LONG_MACRO(x) \
  do { if (x) { \
  } } while (0)
int after() { return n > 1 ? 1 : 0; }
)src";
  FileAnalysis a = analyze_source("pp.c", Language::c, kSource);
  EXPECT_THAT(a.functions, ElementsAre(fn("pick", 2, 6, 1, 0), fn("after", 19, 1, 2, 0)));
  EXPECT_EQ(a.lines, lines(19, 19, 0, 0));
}

TEST(Analyzer, CppRawStringsWithCustomDelimitersAndPrefixes) {
  auto tokens = lex_c_family("x = LR\"--(a )\" b)--\"; y = R\"(q)\";\n");
  std::vector<std::string_view> texts;
  for (const auto& t : tokens) texts.push_back(t.text);
  EXPECT_THAT(texts, ElementsAre("x", "=", "LR\"--(a )\" b)--\"", ";", "y", "=", "R\"(q)\"", ";"));
  EXPECT_EQ(tokens[2].kind, TokenKind::string);

  auto multi = lex_c_family("a /* one\ntwo */ b\n");
  ASSERT_EQ(multi.size(), 3u);
  EXPECT_EQ(multi[1].kind, TokenKind::comment);
  EXPECT_EQ(multi[1].line, 1);
  EXPECT_EQ(multi[1].end_line, 2);
}

constexpr const char* kPython = R"py("""Module docstring with def fake(): and { braces }."""
import os

# A comment with if and for.

TEXT = '''
def not_a_function():
    if True: pass
'''


class Parser:
    """Class docstring.

    Spans lines."""

    def parse(self, items):
        result = []
        for item in items:
            if item and not item.startswith("#"):
                result.append(item)
            elif item == "x" or item == "y":
                continue
        return [i for i in result if i]

    async def fetch(self):
        try:
            return await self.get()
        except (OSError, ValueError):
            return None


def outer(x):
    def inner(y):
        return y * 2 if y else 0
    while x > 0:
        x -= 1
    return inner(x)
)py";

TEST(Analyzer, PythonCountsFunctionsByIndentation) {
  FileAnalysis a = analyze_source("parser.py", Language::python, kPython);
  EXPECT_EQ(a.lines, lines(38, 25, 4, 9));
  EXPECT_THAT(a.functions,
              ElementsAre(fn("Parser.parse", 17, 8, 7, 2), fn("Parser.fetch", 26, 5, 2, 1),
                          fn("outer", 33, 6, 2, 1), fn("outer.inner", 34, 2, 2, 0)));
  EXPECT_EQ(a.max_nesting, 2);
  EXPECT_TRUE(a.findings.empty());
}

TEST(Analyzer, PythonBracketsAndContinuationsJoinLogicalLines) {
  constexpr const char* kSource = R"py(def f(a,
      b):
    x = [1,
  2]
    if a and \
b:
        return {
'k': 1 if x else 2}
    return r"\"" + b'x' + f"{a}"

def g(): return 1
)py";
  FileAnalysis a = analyze_source("cont.py", Language::python, kSource);
  EXPECT_THAT(a.functions, ElementsAre(fn("f", 1, 9, 4, 1), fn("g", 11, 1, 1, 0)));
  EXPECT_EQ(a.lines, lines(11, 10, 0, 1));
}

std::string cpp_findings_source() {
  std::string src;
  src += "// TODO: remove this hack\n";                                                       // 1
  src += "int deep(int a) {\n";                                                               // 2
  src += "  if (a) {\n    if (a) {\n      if (a) {\n        if (a) {\n          if (a) {\n";  // 3-7
  src += "            return 1;  \n";                                                         // 8
  src += "          }\n        }\n      }\n    }\n  }\n";             // 9-13
  src += "  return 0;\n}\n";                                          // 14-15
  src += "const char* s = \"TODO in a string is not a finding\";\n";  // 16
  src += "/* FIXME later */ int x = 1;\t\n";                          // 17
  src += "// TODOS is not a marker\n";                                // 18
  src += "int long_line = " + std::string(110, '1') + ";\n";          // 19
  src += "int big(int x) {\n";                                        // 20
  for (int i = 0; i < 85; ++i) src += "  x += 1;\n";                  // 21-105
  src += "  return x;\n}\n";                                          // 106-107
  return src;
}

TEST(Analyzer, EachRuleRaisesItsFinding) {
  FileAnalysis a = analyze_source("rules.cc", Language::cpp, cpp_findings_source());
  EXPECT_THAT(a.functions, ElementsAre(fn("deep", 2, 14, 6, 5), fn("big", 20, 88, 1, 0)));
  EXPECT_EQ(a.max_nesting, 5);
  EXPECT_THAT(a.findings, ElementsAre(Finding{1, "todo", Severity::info, "TODO: remove this hack"},
                                      Finding{7, "deep-nesting", Severity::warning,
                                              "function 'deep' nests blocks 5 deep (limit 4)"},
                                      Finding{8, "trailing-whitespace", Severity::info,
                                              "2 lines end in whitespace (first at line 8)"},
                                      Finding{17, "todo", Severity::info, "FIXME later"},
                                      Finding{19, "long-line", Severity::info,
                                              "line is 127 characters long (limit 120)"},
                                      Finding{20, "long-function", Severity::warning,
                                              "function 'big' is 88 lines long (limit 80)"}));
  EXPECT_EQ(a.lines, lines(107, 105, 2, 0));
  // 4 info and 2 warnings over 105 code lines: 100 − 0.25 × (4 + 2 × 5) / 0.105 = 66.67
  EXPECT_DOUBLE_EQ(a.score, 66.7);
}

std::string branches(std::string_view indent, int n, std::string_view line_template) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    std::string l(line_template);
    l.replace(l.find('#'), 1, std::to_string(i));
    out += std::string(indent) + l + "\n";
  }
  return out;
}

TEST(Analyzer, ComplexityAboveTheLimitIsAWarningAndAboveTwiceAnError) {
  std::string cpp = "int cx(int x) {\n" + branches("  ", 15, "if (x == #) return #;") +
                    "  return x && x || x ? 1 : 2;\n}\n";
  FileAnalysis a = analyze_source("cx.cc", Language::cpp, cpp);
  ASSERT_EQ(a.functions.size(), 1u);
  EXPECT_EQ(a.functions[0].complexity, 19);  // 1 + 15 if + && + || + ?
  EXPECT_THAT(a.findings,
              ElementsAre(Finding{1, "high-complexity", Severity::warning,
                                  "function 'cx' has cyclomatic complexity 19 (limit 15)"}));

  std::string py = "def cy(x):\n" + branches("    ", 30, "if x == #: return #") + "    return 0\n";
  FileAnalysis p = analyze_source("cy.py", Language::python, py);
  ASSERT_EQ(p.functions.size(), 1u);
  EXPECT_EQ(p.functions[0].complexity, 31);
  EXPECT_THAT(p.findings,
              ElementsAre(Finding{1, "high-complexity", Severity::error,
                                  "function 'cy' has cyclomatic complexity 31 (limit 15)"}));
}

TEST(Analyzer, RvalueReferencesAreNotDecisions) {
  FileAnalysis a = analyze_source(
      "ref.cc", Language::cpp,
      "void f(int a, int b) {\n  auto&& r = g();\n  const T&& s = h();\n  std::vector<int>&& v{};\n"
      "  use(a && b);\n}\n");
  ASSERT_EQ(a.functions.size(), 1u);
  EXPECT_EQ(a.functions[0].complexity, 2);
}

TEST(Analyzer, LongFilesAndModuleLevelNestingAreFindings) {
  std::string py;
  for (int i = 0; i < 1001; ++i) py += "x = 1\n";
  py +=
      "if x:\n for a in b:\n  while a:\n   with c:\n    try:\n     pass\n    except E:\n     "
      "pass\n";
  FileAnalysis a = analyze_source("long.py", Language::python, py);
  EXPECT_THAT(a.findings, ElementsAre(Finding{1, "long-file", Severity::warning,
                                              "file has 1009 lines (limit 1000)"},
                                      Finding{1006, "deep-nesting", Severity::warning,
                                              "module-level code nests blocks 5 deep (limit 4)"}));
  EXPECT_EQ(a.max_nesting, 5);
}

TEST(Analyzer, ScoreFollowsTheDocumentedFormulaWithinBounds) {
  EXPECT_DOUBLE_EQ(quality_score(0, {}, 0), 100.0);
  // kloc 0.2: 100 − 0.25 × (2 + 5) / 0.2 − 0.1 × 5 / 0.2 = 88.75 → 88.8
  EXPECT_DOUBLE_EQ(quality_score(200, {2, 1, 0}, 5), 88.8);
  // Small files count as 100 lines: one TODO costs 2.5.
  EXPECT_DOUBLE_EQ(quality_score(10, {1, 0, 0}, 0), 97.5);
  EXPECT_DOUBLE_EQ(quality_score(10, {0, 0, 10}, 0), 0.0);
  EXPECT_DOUBLE_EQ(quality_score(100000, {0, 0, 0}, 0), 100.0);

  FileAnalysis empty = analyze_source("empty.py", Language::python, "");
  EXPECT_EQ(empty.lines, lines(0, 0, 0, 0));
  EXPECT_EQ(empty.score, 100.0);

  std::string awful;
  for (int i = 0; i < 40; ++i)
    awful += "int v" + std::to_string(i) + " = 0;  // FIXME " + std::string(130, 'x') + " \n";
  FileAnalysis bad = analyze_source("awful.cc", Language::cpp, awful);
  EXPECT_EQ(bad.score, 0.0);

  FileAnalysis x =
      analyze_source("x.cc", Language::cpp, std::string(300, '\n') + "int f() { return 1; }\n");
  x.score = 50;
  FileAnalysis y = analyze_source("y.cc", Language::cpp, "int a;\nint b;\nint c;\n");
  y.score = 90;
  // Weighted by code lines: (50 × 1 + 90 × 3) / 4.
  EXPECT_DOUBLE_EQ(overall_score({x, y}), 80.0);
  EXPECT_DOUBLE_EQ(overall_score({}), 100.0);
}

TEST(Analyzer, LanguageIsChosenByExtension) {
  EXPECT_EQ(language_of("a/b.c"), Language::c);
  for (const char* p : {"x.cc", "x.cpp", "x.cxx", "x.h", "x.hh", "x.hpp"})
    EXPECT_EQ(language_of(p), Language::cpp) << p;
  EXPECT_EQ(language_of("tool.py"), Language::python);
  EXPECT_EQ(language_of("README.md"), std::nullopt);
  EXPECT_EQ(language_of("Makefile"), std::nullopt);
}

TEST(Glob, MatchesLikeGitignore) {
  EXPECT_TRUE(glob_match("*.cc", "a.cc"));
  EXPECT_TRUE(glob_match("*.cc", "deep/dir/a.cc"));  // no '/': any depth
  EXPECT_FALSE(glob_match("*.cc", "a.cc.txt"));
  EXPECT_TRUE(glob_match("src/*.cc", "src/a.cc"));
  EXPECT_FALSE(glob_match("src/*.cc", "src/x/a.cc"));
  EXPECT_TRUE(glob_match("src/**/*.cc", "src/a.cc"));
  EXPECT_TRUE(glob_match("src/**/*.cc", "src/x/y/a.cc"));
  EXPECT_TRUE(glob_match("**/test_*.py", "test_a.py"));
  EXPECT_TRUE(glob_match(".git/**", ".git/objects/ab/cd"));
  EXPECT_TRUE(glob_match("build*/**", "build-x/a.cc"));
  EXPECT_FALSE(glob_match("build*/**", "src/build/a.cc"));
  EXPECT_TRUE(glob_match("./src/?.h", "src/a.h"));
  EXPECT_FALSE(glob_match("src/?.h", "src/ab.h"));
  EXPECT_TRUE(glob_match("[ab].c", "b.c"));
  EXPECT_FALSE(glob_match("[!ab].c", "b.c"));
  EXPECT_TRUE(glob_match("[a-c]x.c", "cx.c"));
  EXPECT_TRUE(glob_match("\\*.c", "*.c"));
  EXPECT_FALSE(glob_match("\\*.c", "a.c"));
  // Many stars against a long path that almost matches: memoised, not exponential.
  EXPECT_FALSE(glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*b", std::string(400, 'a')));
  EXPECT_FALSE(glob_match("**/**/**/**/**/**/x", std::string(200, '/')));
}

class Tree : public ::testing::Test {
 protected:
  void SetUp() override {
    write("src/a.cc", "int f() { return 1; }\n");
    write("src/b.py", "def g():\n    return 2\n");
    write("src/notes.txt", "not code\n");
    write("src/gen/e.h", "// generated\nstruct E {};\n");
    write("build-x/c.cc", "int excluded() { return 0; }\n");
    write(".git/d.cc", "int excluded() { return 0; }\n");
    std::filesystem::create_symlink(ws_.path() / "src/a.cc", ws_.path() / "link.cc");
  }
  void write(const std::string& rel, std::string_view text) {
    auto p = ws_.path() / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  static std::vector<std::string> paths(const Analysis& a) {
    std::vector<std::string> out;
    for (const auto& f : a.files) out.push_back(f.path);
    return out;
  }
  Analysis run(const AnalyzeOptions& o, const AnalyzeHooks& hooks = {}) {
    auto r = analyze_tree(ws_.path(), o, hooks);
    if (!r) throw std::runtime_error(r.error().message());
    return std::move(*r);
  }
  TempDir ws_{"analyzer-tree"};
};

TEST_F(Tree, WalksSupportedFilesAndSkipsExcludedDirectoriesAndLinks) {
  std::vector<std::pair<std::size_t, std::size_t>> progress;
  AnalyzeHooks hooks;
  hooks.progress = [&](std::size_t done, std::size_t total) { progress.emplace_back(done, total); };
  Analysis a = run(AnalyzeOptions{}, hooks);
  EXPECT_EQ(a.root, ".");
  EXPECT_THAT(paths(a), ElementsAre("src/a.cc", "src/b.py", "src/gen/e.h"));
  EXPECT_EQ(a.totals.files, 3u);
  EXPECT_EQ(a.totals.lines, lines(5, 4, 1, 0));
  EXPECT_EQ(a.totals.functions, 2u);
  EXPECT_EQ(a.totals.languages, (std::map<std::string, std::size_t>{{"cpp", 2}, {"python", 1}}));
  EXPECT_EQ(a.score, 100.0);
  EXPECT_FALSE(a.truncated);
  EXPECT_THAT(progress, ElementsAre(std::pair<std::size_t, std::size_t>{3, 3}));
}

TEST_F(Tree, GlobsAreRelativeToTheAnalysedPath) {
  AnalyzeOptions o;
  o.path = "./src/";
  o.exclude = {"gen/**"};
  Analysis a = run(o);
  EXPECT_EQ(a.root, "src");
  EXPECT_THAT(paths(a), ElementsAre("src/a.cc", "src/b.py"));

  o.exclude = {};
  o.include = {"*.py", "*.txt"};
  Analysis py = run(o);
  EXPECT_THAT(paths(py), ElementsAre("src/b.py"));
  EXPECT_EQ(py.totals.other_files, 1u);  // notes.txt: included, but no language
  EXPECT_EQ(to_json(py)["totals"]["other_files"], 1);
}

TEST_F(Tree, MaxFilesTruncatesInPathOrder) {
  AnalyzeOptions o;
  o.max_files = 2;
  Analysis a = run(o);
  EXPECT_THAT(paths(a), ElementsAre("src/a.cc", "src/b.py"));
  EXPECT_TRUE(a.truncated);
}

TEST_F(Tree, ASingleFileIsAnalysedAsItIs) {
  AnalyzeOptions o;
  o.path = "src/b.py";
  Analysis a = run(o);
  EXPECT_EQ(a.root, "src/b.py");
  EXPECT_THAT(paths(a), ElementsAre("src/b.py"));
}

TEST_F(Tree, BadPathsAndCancellationAreNamedErrors) {
  AnalyzeOptions o;
  o.path = "src/notes.txt";
  auto txt = analyze_tree(ws_.path(), o);
  ASSERT_FALSE(txt);
  EXPECT_EQ(txt.error().code(), EINVAL);
  EXPECT_EQ(txt.error().message(),
            "params.path: 'src/notes.txt' is not a supported source file (.c .cc .cpp .cxx .h .hh "
            ".hpp .py)");

  o.path = "nope";
  auto missing = analyze_tree(ws_.path(), o);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ENOENT);
  EXPECT_EQ(missing.error().message(), "params.path: 'nope' does not exist in the workspace");

  o.path = "src/../..";
  auto up = analyze_tree(ws_.path(), o);
  ASSERT_FALSE(up);
  EXPECT_EQ(up.error().message(), "params.path: 'src/../..' contains '..'; paths must stay inside");

  TempDir outside("analyzer-outside");
  std::filesystem::create_directory_symlink(outside.path(), ws_.path() / "out");
  o.path = "out";
  auto escaped = analyze_tree(ws_.path(), o);
  ASSERT_FALSE(escaped);
  EXPECT_EQ(escaped.error().message(), "params.path: 'out' leads outside the workspace");

  o.path = ".";
  AnalyzeHooks hooks;
  hooks.cancelled = [] { return true; };
  auto cancelled = analyze_tree(ws_.path(), o, hooks);
  ASSERT_FALSE(cancelled);
  EXPECT_EQ(cancelled.error().code(), ECANCELED);
  EXPECT_EQ(cancelled.error().message(), "code.analyze: cancelled after 0 of 3 files");
}

TEST(AnalyzeOptions, ParamsAreCheckedAndNamed) {
  auto o = analyze_options(nlohmann::json::parse(
      R"({"path": "src", "include": ["*.cc"], "exclude": ["third_party/**"], "max_files": 10})"));
  ASSERT_TRUE(o) << o.error().message();
  EXPECT_EQ(o->path, "src");
  EXPECT_EQ(o->include, std::vector<std::string>{"*.cc"});
  EXPECT_EQ(o->exclude, std::vector<std::string>{"third_party/**"});
  EXPECT_EQ(o->max_files, 10u);

  auto d = analyze_options(nlohmann::json::object());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->path, ".");
  EXPECT_TRUE(d->include.empty());
  EXPECT_EQ(d->exclude, (std::vector<std::string>{".git/**", "build*/**"}));
  EXPECT_EQ(d->max_files, 5000u);

  EXPECT_EQ(analyze_options(nlohmann::json({{"max_files", "10"}})).error().message(),
            "params.max_files: expected integer, got string");
  EXPECT_EQ(analyze_options(nlohmann::json({{"max_files", 0}})).error().message(),
            "params.max_files: 0 is out of range (1 to 1000000)");
  EXPECT_EQ(analyze_options(nlohmann::json({{"include", "*.cc"}})).error().message(),
            "params.include: expected array, got string");
  EXPECT_EQ(analyze_options(nlohmann::json({{"exclude", {"a", 1}}})).error().message(),
            "params.exclude[1]: expected string, got integer");
  EXPECT_EQ(analyze_options(nlohmann::json({{"path", "/etc"}})).error().message(),
            "params.path: '/etc' is absolute; give a path relative to the workspace");
}

TEST(AnalysisJson, RoundTripsAndNamesBadFields) {
  Analysis a;
  a.root = "src";
  a.files.push_back(analyze_source("src/rules.cc", Language::cpp, cpp_findings_source()));
  a.files.push_back(analyze_source("src/p.py", Language::python, kPython));
  recompute(a);
  auto j = to_json(a);
  EXPECT_EQ(j["totals"]["files"], 2);
  EXPECT_EQ(j["totals"]["findings"], nlohmann::json({{"info", 4}, {"warning", 2}, {"error", 0}}));
  EXPECT_EQ(j["files"][1]["functions"][0], nlohmann::json({{"name", "Parser.parse"},
                                                           {"line", 17},
                                                           {"length", 8},
                                                           {"complexity", 7},
                                                           {"nesting", 2}}));
  auto back = analysis_from_json(j, "analyses[0]");
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(to_json(*back), j);

  j["files"][0]["lines"]["code"] = "many";
  EXPECT_EQ(analysis_from_json(j, "analyses[1]").error().message(),
            "analyses[1]: files[0].lines.code: expected non-negative integer, got string");
  j["files"][0].erase("lines");
  EXPECT_EQ(analysis_from_json(j, "analyses[1]").error().message(),
            "analyses[1]: files[0].lines: missing");
  EXPECT_EQ(analysis_from_json(nlohmann::json::array(), "analyses[2]").error().message(),
            "analyses[2]: expected object, got array");
}

std::string analysis_text(std::string root, std::vector<FileAnalysis> files) {
  Analysis a;
  a.root = std::move(root);
  a.files = std::move(files);
  recompute(a);
  return to_json(a).dump();
}

TEST(Report, MergesAnalysesAndAddsGitContext) {
  FileAnalysis rules = analyze_source("src/rules.cc", Language::cpp, cpp_findings_source());
  FileAnalysis demo = analyze_source("src/demo.cc", Language::cpp, kCpp);
  FileAnalysis parser = analyze_source("tools/parser.py", Language::python, kPython);
  // src/demo.cc is in both: it counts once.
  std::vector<std::string> inputs = {analysis_text("src", {demo, rules}),
                                     analysis_text(".", {demo, parser})};
  std::string status = R"({"branch": "main", "head": "0123456789abcdef0123456789abcdef01234567",
    "clean": false, "entries": [{"path": "src/a.cc", "index": "modified", "worktree": "none"},
                                {"path": "new.py", "index": "none", "worktree": "new"}]})";
  std::string log =
      R"([{"commit": "fedcba9876543210fedcba9876543210fedcba98", "author": "Ada Lovelace",
    "email": "ada@example.org", "time": "2023-11-14T23:13:20+01:00", "summary": "Fix the | pipe"}])";
  auto input = parse_report_input("Nightly", inputs, status, log);
  ASSERT_TRUE(input) << input.error().message();
  Report r = build_report(*input);

  // 105 + 44 + 25 code lines; scores 66.7, 100, 100.
  double expected = std::round((66.7 * 105 + 100 * 44 + 100 * 25) / 174 * 10) / 10;
  EXPECT_EQ(r.summary,
            nlohmann::json::parse(R"({"title": "Nightly", "analyses": 2, "roots": ["src", "."],
    "files": 3, "lines": {"total": 200, "code": 174, "comment": 9, "blank": 17}, "functions": 9,
    "findings": {"info": 4, "warning": 2, "error": 0}, "languages": {"cpp": 2, "python": 1},
    "score": )" + nlohmann::json(expected).dump() +
                                  "}"));

  const std::string& md = r.markdown;
  EXPECT_THAT(md, HasSubstr("# Nightly\n"));
  EXPECT_THAT(md, HasSubstr("| Score | **" + fmt::format("{:.1f}", expected) + "** / 100 |"));
  EXPECT_THAT(md, HasSubstr("| Files | 3 (cpp 2, python 1) |"));
  EXPECT_THAT(md, HasSubstr("| Lines | 200 (174 code, 9 comment, 17 blank) |"));
  EXPECT_THAT(md, HasSubstr("| `src` | 2 | 149 | 5 | 6 | "));
  EXPECT_THAT(
      md,
      HasSubstr("## Worst files\n\n| File | Score | Code lines | Findings | Highest complexity |\n"
                "|---|---:|---:|---:|---:|\n| `src/rules.cc` | 66.7 | 105 | 6 | 6 |\n\n"));
  EXPECT_THAT(md, HasSubstr("| warning | `src/rules.cc:7` | deep-nesting | function 'deep' nests "
                            "blocks 5 deep (limit 4) |"));
  EXPECT_THAT(md, HasSubstr("| `classify` | `src/demo.cc:32` | 8 | 20 | 3 |"));
  EXPECT_THAT(
      md,
      HasSubstr(
          "Branch `main` at `0123456789`: 2 changed paths (1 staged, 0 unstaged, 1 untracked)."));
  EXPECT_THAT(
      md,
      HasSubstr("| `fedcba9876` | 2023-11-14T23:13:20+01:00 | Ada Lovelace | Fix the \\| pipe |"));
}

TEST(Report, WithoutGitInputsHasNoGitSections) {
  auto input =
      parse_report_input("Code report", {analysis_text(".", {})}, std::nullopt, std::nullopt);
  ASSERT_TRUE(input) << input.error().message();
  Report r = build_report(*input);
  EXPECT_THAT(r.markdown, Not(HasSubstr("## Working tree")));
  EXPECT_THAT(r.markdown, Not(HasSubstr("## Recent commits")));
  EXPECT_THAT(r.markdown, HasSubstr("Every file scores 100."));
  EXPECT_EQ(r.summary["score"], 100.0);
  EXPECT_EQ(r.summary["files"], 0);
}

TEST(Report, BadInputsAreNamed) {
  std::string good = analysis_text(".", {});
  EXPECT_EQ(parse_report_input("t", {}, std::nullopt, std::nullopt).error().message(),
            "analyses: missing input (one or more code.analyze results)");
  EXPECT_THAT(
      parse_report_input("t", {good, "{not json"}, std::nullopt, std::nullopt).error().message(),
      HasSubstr("analyses[1]: not JSON: "));
  EXPECT_EQ(parse_report_input("t", {R"({"root": ".", "files": [{"path": 3}]})"}, std::nullopt,
                               std::nullopt)
                .error()
                .message(),
            "analyses[0]: files[0].path: expected string, got integer");
  EXPECT_EQ(parse_report_input("t", {good}, std::nullopt, std::string(R"([{"commit": 1}])"))
                .error()
                .message(),
            "git_log[0].commit: expected string, got integer");
  EXPECT_EQ(parse_report_input("t", {good}, std::string("[]"), std::nullopt).error().message(),
            "git_status: expected object, got array");
  EXPECT_EQ(parse_report_input("", {good}, std::nullopt, std::nullopt).error().message(),
            "params.title: empty title");
}

TEST(Analyzer, SmokeRunOverThisRepositorysBase) {
  const char* root = std::getenv("SYMPHONY_SOURCE_ROOT");
  if (root == nullptr) GTEST_SKIP() << "SYMPHONY_SOURCE_ROOT is not set";
  AnalyzeOptions o;
  o.path = "base";
  auto r = analyze_tree(root, o);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_GT(r->totals.files, 5u);
  EXPECT_GT(r->totals.functions, 20u);
  EXPECT_GT(r->totals.lines.code, 500u);
  EXPECT_GT(r->totals.lines.comment, 0u);
  EXPECT_EQ(r->totals.lines.total,
            r->totals.lines.code + r->totals.lines.comment + r->totals.lines.blank);
  EXPECT_GE(r->score, 0.0);
  EXPECT_LE(r->score, 100.0);
  for (const auto& f : r->files) {
    EXPECT_TRUE(f.path.starts_with("base/")) << f.path;
    EXPECT_GE(f.score, 0.0);
    EXPECT_LE(f.score, 100.0);
    for (const auto& fn : f.functions) {
      EXPECT_GE(fn.complexity, 1) << f.path << " " << fn.name;
      EXPECT_GE(fn.length, 1) << f.path << " " << fn.name;
      EXPECT_LE(fn.line + fn.length - 1, static_cast<int>(f.lines.total))
          << f.path << " " << fn.name;
    }
  }
  EXPECT_NO_THROW((void)to_json(*r).dump());
}

// The manifest the program ships with parses, and declares exactly what
// main.cc registers, with the workspace read-only.
TEST(CodeManifest, DeclaresTheCapabilitiesTheProgramRegisters) {
  const char* root = std::getenv("SYMPHONY_SOURCE_ROOT");
  if (root == nullptr) GTEST_SKIP() << "SYMPHONY_SOURCE_ROOT is not set";
  auto m = stage::load_manifest(std::filesystem::path(root) / "extensions/code/extension.toml");
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->id, "org.symphony.code");
  EXPECT_EQ(stage::to_string(m->version), "0.1.0");
  EXPECT_EQ(m->kind, stage::Kind::instrument);
  EXPECT_EQ(m->command, std::vector<std::string>{"./symphony-ext-code"});
  std::vector<std::string> names;
  for (const auto& c : m->capabilities) names.push_back(c.name);
  EXPECT_THAT(names, ElementsAre("code.analyze", "code.report"));
  const stage::Capability* analyze = m->find_capability("code.analyze");
  ASSERT_NE(analyze, nullptr);
  // The manifest's defaults are the library's.
  for (const auto& p : analyze->params) {
    if (p.name == "exclude") {
      EXPECT_EQ(p.default_value, nlohmann::json(AnalyzeOptions{}.exclude));
    } else if (p.name == "max_files") {
      EXPECT_EQ(p.default_value, nlohmann::json(AnalyzeOptions{}.max_files));
    }
  }
  const stage::Capability* report = m->find_capability("code.report");
  ASSERT_NE(report, nullptr);
  ASSERT_EQ(report->outputs.size(), 2u);
  EXPECT_EQ(report->outputs[0].media_type, "text/markdown");
  ASSERT_EQ(m->permissions.filesystem.size(), 1u);
  EXPECT_EQ(m->permissions.filesystem[0].access, sandbox::Access::read_only);
  EXPECT_TRUE(stage::check_compatible(*m, "0.1.0"));
}

}  // namespace
}  // namespace symphony::extensions::code
