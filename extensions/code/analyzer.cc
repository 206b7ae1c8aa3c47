// Per-file analysis in four passes over the tokens of lexer.h: line
// classification, structure (functions, complexity, nesting: one pass for
// the brace languages, one for Python's indentation), findings, score. Then
// the tree walk with its globs, and the JSON forms.
#include "extensions/code/analyzer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <fstream>
#include <iterator>
#include <set>
#include <system_error>

#include "extensions/code/lexer.h"
#include "symphony/ext.h"

namespace symphony::extensions::code {
namespace {

// ---------------------------------------------------------------- structure

// A function being measured, with where its nesting first went too deep.
struct FunctionInfo {
  Function f;
  int deep_line = 0;
};

struct Structure {
  std::vector<FunctionInfo> functions;
  int max_nesting = 0;
  // Module-level Python code nesting too deep (0: it does not).
  int module_nesting = 0;
  int module_deep_line = 0;
};

void note_depth(FunctionInfo& fn, int depth, int line) {
  fn.f.nesting = std::max(fn.f.nesting, depth);
  if (depth > kMaxNesting && fn.deep_line == 0) fn.deep_line = line;
}

bool is_c_keyword(std::string_view s) {
  static const std::set<std::string_view> kKeywords = {"alignas",
                                                       "alignof",
                                                       "and",
                                                       "and_eq",
                                                       "asm",
                                                       "auto",
                                                       "bitand",
                                                       "bitor",
                                                       "bool",
                                                       "break",
                                                       "case",
                                                       "catch",
                                                       "char",
                                                       "char8_t",
                                                       "char16_t",
                                                       "char32_t",
                                                       "class",
                                                       "compl",
                                                       "concept",
                                                       "const",
                                                       "consteval",
                                                       "constexpr",
                                                       "constinit",
                                                       "const_cast",
                                                       "continue",
                                                       "co_await",
                                                       "co_return",
                                                       "co_yield",
                                                       "decltype",
                                                       "default",
                                                       "delete",
                                                       "do",
                                                       "double",
                                                       "dynamic_cast",
                                                       "else",
                                                       "enum",
                                                       "explicit",
                                                       "export",
                                                       "extern",
                                                       "false",
                                                       "float",
                                                       "for",
                                                       "friend",
                                                       "goto",
                                                       "if",
                                                       "inline",
                                                       "int",
                                                       "long",
                                                       "mutable",
                                                       "namespace",
                                                       "new",
                                                       "noexcept",
                                                       "not",
                                                       "not_eq",
                                                       "nullptr",
                                                       "operator",
                                                       "or",
                                                       "or_eq",
                                                       "private",
                                                       "protected",
                                                       "public",
                                                       "register",
                                                       "reinterpret_cast",
                                                       "requires",
                                                       "return",
                                                       "short",
                                                       "signed",
                                                       "sizeof",
                                                       "static",
                                                       "static_assert",
                                                       "static_cast",
                                                       "struct",
                                                       "switch",
                                                       "template",
                                                       "this",
                                                       "thread_local",
                                                       "throw",
                                                       "true",
                                                       "try",
                                                       "typedef",
                                                       "typeid",
                                                       "typename",
                                                       "union",
                                                       "unsigned",
                                                       "using",
                                                       "virtual",
                                                       "void",
                                                       "volatile",
                                                       "wchar_t",
                                                       "while",
                                                       "xor",
                                                       "xor_eq",
                                                       "__attribute__",
                                                       "__declspec",
                                                       "__typeof__",
                                                       "typeof",
                                                       "_Alignas",
                                                       "_Static_assert",
                                                       "_Generic",
                                                       "restrict",
                                                       "__restrict",
                                                       "_Noreturn",
                                                       "__asm__",
                                                       "__extension__"};
  return kKeywords.contains(s);
}

bool is_class_key(std::string_view s) {
  return s == "class" || s == "struct" || s == "union" || s == "enum";
}

bool all_caps(std::string_view s) {
  bool letter = false;
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') {
      letter = true;
    } else if (!(c == '_' || (c >= '0' && c <= '9'))) {
      return false;
    }
  }
  return letter;
}

// Tokens of the C family that take part in structure: no comments, no
// preprocessor directives, and only the first live branch of each
// conditional (#if 0 branches are dead; of #if/#elif/#else the first is
// kept), so that braces opened in two alternative branches count once.
std::vector<const Token*> live_tokens(const std::vector<Token>& tokens) {
  struct Cond {
    bool parent_active;
    bool taken;
    bool active;
  };
  std::vector<Cond> conds;
  auto active = [&] { return conds.empty() || conds.back().active; };
  std::vector<const Token*> out;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const Token& t = tokens[i];
    if (t.kind == TokenKind::comment) continue;
    if (!t.preprocessor) {
      if (active()) out.push_back(&t);
      continue;
    }
    if (t.text != "#") continue;
    // A directive: `#`, its name and its operands, all on the same line.
    std::string_view name;
    std::string_view operand;
    if (i + 1 < tokens.size() && tokens[i + 1].preprocessor && tokens[i + 1].text != "#")
      name = tokens[i + 1].text;
    if (i + 2 < tokens.size() && tokens[i + 2].preprocessor && tokens[i + 2].text != "#")
      operand = tokens[i + 2].text;
    bool zero = operand == "0" && (i + 3 >= tokens.size() || !tokens[i + 3].preprocessor ||
                                   tokens[i + 3].text == "#");
    if (name == "if" || name == "ifdef" || name == "ifndef") {
      bool parent = active();
      bool take = !(name == "if" && zero);
      conds.push_back({parent, take, parent && take});
    } else if ((name == "elif" || name == "elifdef" || name == "elifndef") && !conds.empty()) {
      Cond& c = conds.back();
      bool take = !c.taken && !(name == "elif" && zero);
      c.active = c.parent_active && take;
      c.taken = c.taken || take;
    } else if (name == "else" && !conds.empty()) {
      Cond& c = conds.back();
      c.active = c.parent_active && !c.taken;
      c.taken = true;
    } else if (name == "endif" && !conds.empty()) {
      conds.pop_back();
    }
  }
  return out;
}

// What the tokens before a `{` at namespace or class scope (the "head")
// declare.
struct Head {
  bool open_paren = false;  // the brace is inside an unclosed ( or [
  bool assigns = false;     // a top-level `=`: an initializer, a lambda
  bool is_namespace = false;
  bool is_function = false;
  bool init_list = false;  // a constructor's member initializers follow the signature
  bool is_type = false;
  std::string name;  // the function's or the type's
  int line = 0;      // the function name's line
};

using Toks = std::vector<const Token*>;

bool is(const Token* t, std::string_view text) { return t != nullptr && t->text == text; }
bool is_name(const Token* t) {
  return t != nullptr && t->kind == TokenKind::identifier && !is_c_keyword(t->text);
}

// Index just past the `>` that closes the `<` at `open` (parentheses nest;
// `>` inside them does not close).
std::size_t skip_angles(const Toks& h, std::size_t open) {
  int angle = 0;
  int paren = 0;
  for (std::size_t k = open; k < h.size(); ++k) {
    std::string_view t = h[k]->text;
    if (t == "(" || t == "[") ++paren;
    if (t == ")" || t == "]") --paren;
    if (paren > 0) continue;
    if (t == "<") ++angle;
    if (t == ">" && --angle == 0) return k + 1;
  }
  return h.size();
}

// Index of the `<` that opens the `>` at `close`, or npos.
std::size_t angle_open_before(const Toks& h, std::size_t close) {
  int angle = 0;
  for (std::size_t k = close + 1; k-- > 0;) {
    if (h[k]->text == ">") ++angle;
    if (h[k]->text == "<" && --angle == 0) return k;
  }
  return std::string::npos;
}

// The name ending at `last` (an identifier), with its qualifiers: `A::B::f`,
// `Foo<T>::bar` (as "Foo::bar"), `A::~A`.
std::string qualified_name(const Toks& h, std::size_t last) {
  std::string name(h[last]->text);
  std::size_t k = last;
  if (k > 0 && is(h[k - 1], "~")) {
    name = "~" + name;
    --k;
  }
  while (k >= 2 && is(h[k - 1], "::")) {
    std::size_t q = k - 2;
    if (is(h[q], ">")) {
      std::size_t open = angle_open_before(h, q);
      if (open == std::string::npos || open == 0) break;
      q = open - 1;
    }
    if (h[q]->kind != TokenKind::identifier) break;
    name = std::string(h[q]->text) + "::" + name;
    k = q;
  }
  return name;
}

// The text of h[from, to) with a space after each comma: "Suite, Name".
std::string joined(const Toks& h, std::size_t from, std::size_t to) {
  std::string out;
  for (std::size_t k = from; k < to; ++k) {
    out += h[k]->text;
    if (h[k]->text == ",") out += ' ';
  }
  return out;
}

Head read_head(const Toks& h) {
  Head out;
  std::size_t start = 0;
  while (start + 1 < h.size() && is(h[start], "template") && is(h[start + 1], "<"))
    start = skip_angles(h, start + 1);
  if (start >= h.size()) return out;

  // Top-level shape: unclosed brackets, `=`, class keys, `:`.
  int paren = 0;
  std::size_t class_key = std::string::npos;
  std::size_t class_colon = std::string::npos;  // a `:` after a class key (base clause)
  for (std::size_t k = start; k < h.size(); ++k) {
    std::string_view t = h[k]->text;
    if (t == "(" || t == "[")
      ++paren;
    else if (t == ")" || t == "]")
      --paren;
    else if (paren == 0) {
      if (t == "=" && !(k > 0 && is(h[k - 1], "operator"))) out.assigns = true;
      if (is_class_key(t) && class_key == std::string::npos) class_key = k;
      if (t == ":" && class_key != std::string::npos && class_colon == std::string::npos)
        class_colon = k;
    }
  }
  out.open_paren = paren > 0;

  if (is(h[start], "namespace") ||
      (is(h[start], "inline") && start + 1 < h.size() && is(h[start + 1], "namespace")) ||
      (is(h[start], "extern") && h.size() == start + 2 &&
       h[start + 1]->kind == TokenKind::string)) {
    out.is_namespace = true;
    return out;
  }

  // Candidate signatures: a name (or operator) followed by a parenthesised
  // list at the top level. Collection stops at `->` or `:` after the first,
  // where a trailing return type or member initializers begin.
  struct Candidate {
    std::string name;
    std::size_t name_at;
    std::size_t open;
    std::size_t close;
  };
  std::vector<Candidate> candidates;
  paren = 0;
  for (std::size_t k = start; k < h.size(); ++k) {
    std::string_view t = h[k]->text;
    if (paren == 0 && !candidates.empty() && (t == "->" || t == ":")) break;
    if (paren == 0 && t == "operator" && h[k]->kind == TokenKind::identifier) {
      std::size_t j = k + 1;
      std::string name = "operator";
      if (j + 1 < h.size() && is(h[j], "(") && is(h[j + 1], ")")) {
        name += "()";
        j += 2;
      } else {
        for (; j < h.size() && !is(h[j], "("); ++j) {
          if (h[j]->kind == TokenKind::identifier && !name.ends_with("::")) name += ' ';
          name += h[j]->text;
        }
      }
      if (j < h.size() && is(h[j], "(")) {
        std::size_t open = j;
        int depth = 0;
        std::size_t close = h.size();
        for (std::size_t m = open; m < h.size(); ++m) {
          if (is(h[m], "(")) ++depth;
          if (is(h[m], ")") && --depth == 0) {
            close = m;
            break;
          }
        }
        std::string qualified =
            k >= 2 && is(h[k - 1], "::") ? qualified_name(h, k - 2) + "::" + name : name;
        candidates.push_back({qualified, k, open, close});
        k = close < h.size() ? close : h.size() - 1;
        continue;
      }
    }
    if (t == "(" || t == "[") {
      if (paren == 0 && t == "(" && k > start) {
        std::size_t name_at = std::string::npos;
        if (is_name(h[k - 1])) {
          name_at = k - 1;
        } else if (is(h[k - 1], ">")) {
          std::size_t open = angle_open_before(h, k - 1);
          if (open != std::string::npos && open > start && is_name(h[open - 1])) name_at = open - 1;
        }
        if (name_at != std::string::npos) {
          int depth = 0;
          std::size_t close = h.size();
          for (std::size_t m = k; m < h.size(); ++m) {
            if (is(h[m], "(")) ++depth;
            if (is(h[m], ")") && --depth == 0) {
              close = m;
              break;
            }
          }
          candidates.push_back({qualified_name(h, name_at), name_at, k, close});
        }
      }
      ++paren;
    } else if (t == ")" || t == "]") {
      --paren;
    }
  }

  // A leading all-caps macro call (`EXPORT_API(x) int f()`) gives way to a
  // later candidate.
  std::size_t pick = 0;
  while (pick + 1 < candidates.size() && all_caps(candidates[pick].name)) ++pick;
  const Candidate* sig = candidates.empty() ? nullptr : &candidates[pick];
  // `class X : Base<F(int)> {` is a type, not a function named F.
  if (sig != nullptr && class_key < sig->name_at && class_colon < sig->name_at) sig = nullptr;

  if (sig != nullptr && sig->close < h.size()) {
    out.is_function = true;
    out.line = h[sig->name_at]->line;
    out.name = sig->name;
    if (all_caps(sig->name) && sig->name_at == start)
      out.name = fmt::format("{}({})", sig->name, joined(h, sig->open + 1, sig->close));
    int depth = 0;
    for (std::size_t k = sig->close + 1; k < h.size(); ++k) {
      std::string_view t = h[k]->text;
      if (t == "(") ++depth;
      if (t == ")") --depth;
      if (depth == 0 && t == ":") out.init_list = true;
    }
    return out;
  }
  if (class_key != std::string::npos) {
    out.is_type = true;
    for (std::size_t k = class_key + 1; k < h.size(); ++k) {
      std::string_view t = h[k]->text;
      if (t == ":" || t == "<" || t == "{") break;
      if (is(h[k], "[")) {  // [[attributes]]
        while (k < h.size() && !is(h[k], "]")) ++k;
        continue;
      }
      if (is_name(h[k]) && t != "final") out.name = std::string(t);
    }
  }
  return out;
}

// C and C++: a scope per brace.
Structure c_family_structure(const std::vector<Token>& tokens) {
  enum class Kind { namespace_, type, function, block, init, expr };
  struct Scope {
    Kind kind;
    int function = -1;  // index into functions while inside one
    int depth = 0;      // block nesting inside the function
    std::string name;   // a type's
  };
  Structure out;
  std::vector<Scope> stack;
  Toks head;
  Toks live = live_tokens(tokens);
  const Token* prev = nullptr;

  auto in_function = [&] { return !stack.empty() && stack.back().function >= 0; };
  auto in_expr = [&] { return !stack.empty() && stack.back().kind == Kind::expr; };
  auto type_prefix = [&] {
    std::string p;
    for (const auto& s : stack)
      if (s.kind == Kind::type && !s.name.empty()) p += s.name + "::";
    return p;
  };
  auto close_function = [&](const Scope& s, int end_line) {
    auto& f = out.functions[static_cast<std::size_t>(s.function)].f;
    f.length = end_line - f.line + 1;
  };

  for (std::size_t i = 0; i < live.size(); ++i) {
    const Token* t = live[i];
    const Token* next = i + 1 < live.size() ? live[i + 1] : nullptr;
    const Token* next2 = i + 2 < live.size() ? live[i + 2] : nullptr;
    std::string_view x = t->text;
    bool punct = t->kind == TokenKind::punct;
    if (in_function()) {
      Scope& top = stack.back();
      auto& fn = out.functions[static_cast<std::size_t>(top.function)];
      if (punct && x == "{") {
        // A statement block (after `)`, `else`, `do`, ...) nests; a braced
        // initializer (after `=`, `(`, a name, ...) does not.
        bool block =
            top.kind != Kind::init &&
            (prev == nullptr || is(prev, ")") || is(prev, ";") || is(prev, "{") || is(prev, "}") ||
             is(prev, ":") || is(prev, "]") || is(prev, "else") || is(prev, "do") ||
             is(prev, "try") || is(prev, "mutable") || is(prev, "noexcept") || is(prev, "const"));
        int depth = top.depth + (block ? 1 : 0);
        int function = top.function;
        stack.push_back({block ? Kind::block : Kind::init, function, depth, {}});
        note_depth(fn, depth, t->line);
        out.max_nesting = std::max(out.max_nesting, depth);
      } else if (punct && x == "}") {
        Scope s = stack.back();
        stack.pop_back();
        if (s.kind == Kind::function) {
          close_function(s, t->line);
          head.clear();
        }
      } else if (x == "if" || x == "for" || x == "while" || x == "case" || x == "catch" ||
                 x == "||" || x == "?" || x == "and" || x == "or") {
        ++fn.f.complexity;
      } else if (x == "&&") {
        // Not an rvalue reference: after a keyword or `>` (`auto&& x`,
        // `vector<int>&& v`), or declaring a variable (`T&& x = ...`, `T&& x{...}`).
        bool after_type =
            prev != nullptr &&
            ((prev->kind == TokenKind::identifier && is_c_keyword(prev->text)) || is(prev, ">"));
        bool declares = next != nullptr && next->kind == TokenKind::identifier &&
                        (is(next2, "=") || is(next2, "{"));
        if (!after_type && !declares) ++fn.f.complexity;
      }
      prev = t;
      continue;
    }
    if (in_expr()) {
      // Inside an initializer or lambda at namespace scope: opaque.
      if (punct && x == "{") stack.push_back({Kind::expr, -1, 0, {}});
      if (punct && x == "}") {
        stack.pop_back();
        if (!in_expr()) head.push_back(t);
      }
      prev = t;
      continue;
    }
    if (punct && x == "{") {
      Head h = read_head(head);
      const Token* last = head.empty() ? nullptr : head.back();
      bool member_init =
          h.is_function && h.init_list && (is(last, ">") || (last != nullptr && is_name(last)));
      if (h.open_paren || member_init || (h.assigns && !h.is_namespace)) {
        head.push_back(t);
        stack.push_back({Kind::expr, -1, 0, {}});
      } else if (h.is_namespace || head.empty()) {
        head.clear();
        stack.push_back({Kind::namespace_, -1, 0, {}});
      } else if (h.is_function) {
        std::string name = h.name.find("::") == std::string::npos ? type_prefix() + h.name : h.name;
        out.functions.push_back({Function{name, h.line, 1, 1, 0}, 0});
        head.clear();
        stack.push_back({Kind::function, static_cast<int>(out.functions.size() - 1), 0, {}});
      } else if (h.is_type) {
        head.clear();
        stack.push_back({Kind::type, -1, 0, h.name});
      } else {
        head.push_back(t);  // `int x{1}`: an initializer
        stack.push_back({Kind::expr, -1, 0, {}});
      }
    } else if (punct && x == "}") {
      if (!stack.empty()) stack.pop_back();
      head.clear();
    } else if (punct && x == ";") {
      head.clear();
    } else if (punct && x == ":" && head.size() <= 2 &&
               (is(prev, "public") || is(prev, "private") || is(prev, "protected") ||
                is(prev, "slots") || is(prev, "signals") || is(prev, "Q_SLOTS") ||
                is(prev, "Q_SIGNALS"))) {
      head.clear();  // an access specifier, not part of the next declaration
    } else {
      head.push_back(t);
    }
    prev = t;
  }
  // Unbalanced braces (a macro, a conditional we could not follow): what is
  // still open ends with the file.
  int last_line = live.empty() ? 0 : live.back()->end_line;
  for (const auto& s : stack)
    if (s.kind == Kind::function) close_function(s, last_line);
  return out;
}

// Python: logical lines and an indentation stack.
Structure python_structure(std::vector<Token>& tokens) {
  enum class Kind { function, type, block };
  struct Scope {
    Kind kind;
    int indent;
    int function;  // innermost enclosing function (for blocks and functions: itself)
    int depth;     // block nesting since the nearest function, class or module
    std::string name;
  };
  Structure out;
  std::vector<Scope> stack;
  int prev_end = 0;

  auto pop_to = [&](int indent) {
    while (!stack.empty() && stack.back().indent >= indent) {
      const Scope& s = stack.back();
      if (s.kind == Kind::function) {
        auto& f = out.functions[static_cast<std::size_t>(s.function)].f;
        f.length = prev_end - f.line + 1;
      }
      stack.pop_back();
    }
  };

  std::vector<Token*> line;
  for (auto& tok : tokens) {
    if (tok.kind == TokenKind::comment) continue;
    if (tok.kind != TokenKind::newline) {
      line.push_back(&tok);
      continue;
    }
    if (line.empty()) continue;
    // A statement that is only a string is a docstring: documentation.
    if (std::all_of(line.begin(), line.end(),
                    [](const Token* t) { return t->kind == TokenKind::string; })) {
      for (Token* t : line) t->kind = TokenKind::comment;
    }
    int indent = line.front()->column;
    pop_to(indent);

    std::size_t first = 0;
    if (line[0]->text == "async" && line.size() > 1) first = 1;
    std::string_view kw = line[first]->kind == TokenKind::identifier ? line[first]->text : "";
    bool header = line.back()->text == ":" || kw == "def" || kw == "class";
    if (!header) {
      // `if x: return y` has its body after the colon: still a header.
      int depth = 0;
      for (const Token* t : line) {
        if (t->text == "(" || t->text == "[" || t->text == "{") ++depth;
        if (t->text == ")" || t->text == "]" || t->text == "}") --depth;
        if (depth == 0 && t->text == ":" && t->kind == TokenKind::punct) header = true;
      }
    }
    static const std::set<std::string_view> kBlocks = {
        "if", "elif", "else", "for", "while", "try", "except", "finally", "with", "match", "case"};
    auto enclosing_function = [&] { return stack.empty() ? -1 : stack.back().function; };
    auto qualifier = [&] {
      std::string q;
      for (const auto& s : stack)
        if (s.kind != Kind::block) q += s.name + ".";
      return q;
    };
    if (header && kw == "def" && first + 1 < line.size()) {
      out.functions.push_back(
          {Function{qualifier() + std::string(line[first + 1]->text), line[first]->line, 1, 1, 0},
           0});
      int index = static_cast<int>(out.functions.size() - 1);
      stack.push_back({Kind::function, indent, index, 0, std::string(line[first + 1]->text)});
    } else if (header && kw == "class" && first + 1 < line.size()) {
      stack.push_back({Kind::type, indent, -1, 0, std::string(line[first + 1]->text)});
    } else if (header && kBlocks.contains(kw)) {
      int depth = (!stack.empty() && stack.back().kind == Kind::block ? stack.back().depth : 0) + 1;
      int function = enclosing_function();
      stack.push_back({Kind::block, indent, function, depth, {}});
      out.max_nesting = std::max(out.max_nesting, depth);
      if (function >= 0) {
        note_depth(out.functions[static_cast<std::size_t>(function)], depth, line.front()->line);
      } else if (depth > out.module_nesting) {
        if (depth > kMaxNesting && out.module_deep_line == 0)
          out.module_deep_line = line.front()->line;
        out.module_nesting = depth;
      }
    }
    int function = enclosing_function();
    if (function >= 0) {
      auto& f = out.functions[static_cast<std::size_t>(function)].f;
      for (std::size_t k = 0; k < line.size(); ++k) {
        const Token* t = line[k];
        if (t->kind != TokenKind::identifier) continue;
        std::string_view x = t->text;
        // Every `if` (statement, conditional expression, comprehension
        // filter) decides; a `for` only as a statement (a comprehension's
        // `for` just iterates).
        if (x == "if" || x == "elif" || x == "while" || x == "except" || x == "and" || x == "or" ||
            (x == "for" && k == first) || (x == "case" && k == 0 && header))
          ++f.complexity;
      }
    }
    prev_end = line.back()->end_line;
    line.clear();
  }
  pop_to(-1);
  return out;
}

// ---------------------------------------------------------------- lines

std::size_t code_points(std::string_view s) {
  return static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

struct LineScan {
  LineCounts counts;
  std::vector<Finding> findings;
};

// Counts and the per-line rules (long lines, trailing whitespace, the file's length).
LineScan scan_lines(std::string_view text, const std::vector<Token>& tokens) {
  std::vector<std::string_view> lines;
  for (std::size_t start = 0; start < text.size();) {
    auto nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view l = text.substr(start, nl - start);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    lines.push_back(l);
    start = nl + 1;
  }
  enum Mark : unsigned char { none = 0, code = 1, comment = 2 };
  std::vector<unsigned char> marks(lines.size() + 2, none);
  for (const auto& t : tokens) {
    if (t.kind == TokenKind::newline) continue;
    unsigned char m = t.kind == TokenKind::comment ? comment : code;
    for (int l = t.line; l <= t.end_line && static_cast<std::size_t>(l) < marks.size(); ++l)
      marks[l] |= m;
  }

  LineScan out;
  out.counts.total = lines.size();
  std::size_t trailing = 0;
  int first_trailing = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::string_view l = lines[i];
    int number = static_cast<int>(i + 1);
    bool blank = std::all_of(l.begin(), l.end(), [](char c) {
      return c == ' ' || c == '\t' || c == '\f' || c == '\v' || c == '\r';
    });
    if (blank)
      ++out.counts.blank;
    else if ((marks[i + 1] & code) != 0 || marks[i + 1] == none)
      ++out.counts.code;
    else
      ++out.counts.comment;
    if (!l.empty() && (l.back() == ' ' || l.back() == '\t')) {
      if (trailing++ == 0) first_trailing = number;
    }
    if (std::size_t n = code_points(l); n > static_cast<std::size_t>(kMaxLineLength))
      out.findings.push_back(
          {number, "long-line", Severity::info,
           fmt::format("line is {} characters long (limit {})", n, kMaxLineLength)});
  }
  if (trailing > 0)
    out.findings.push_back(
        {first_trailing, "trailing-whitespace", Severity::info,
         fmt::format("{} line{} end{} in whitespace (first at line {})", trailing,
                     trailing == 1 ? "" : "s", trailing == 1 ? "s" : "", first_trailing)});
  if (lines.size() > static_cast<std::size_t>(kMaxFileLines))
    out.findings.push_back(
        {1, "long-file", Severity::warning,
         fmt::format("file has {} lines (limit {})", lines.size(), kMaxFileLines)});
  return out;
}

bool word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// TODO and FIXME as words in comments, one finding per comment line.
void todo_findings(const std::vector<Token>& tokens, std::vector<Finding>& out) {
  for (const auto& t : tokens) {
    if (t.kind != TokenKind::comment) continue;
    int line = t.line;
    std::size_t start = 0;
    while (start <= t.text.size()) {
      auto nl = t.text.find('\n', start);
      std::string_view l =
          t.text.substr(start, nl == std::string_view::npos ? t.text.npos : nl - start);
      for (std::string_view marker : {"TODO", "FIXME"}) {
        auto at = l.find(marker);
        while (at != std::string_view::npos) {
          bool before = at == 0 || !word_char(l[at - 1]);
          bool after = at + marker.size() >= l.size() || !word_char(l[at + marker.size()]);
          if (before && after) break;
          at = l.find(marker, at + 1);
        }
        if (at == std::string_view::npos) continue;
        std::string_view note = l.substr(at);
        for (std::string_view end : {"*/", "\"\"\"", "'''"})
          if (auto e = note.find(end); e != std::string_view::npos) note = note.substr(0, e);
        while (!note.empty() && (note.back() == ' ' || note.back() == '\t' || note.back() == '\r'))
          note.remove_suffix(1);
        if (note.size() > 100) note = note.substr(0, 100);
        out.push_back({line, "todo", Severity::info, std::string(note)});
        break;  // one per line, whichever marker comes
      }
      if (nl == std::string_view::npos) break;
      start = nl + 1;
      ++line;
    }
  }
}

double round1(double v) { return std::round(v * 10.0) / 10.0; }

}  // namespace

// ---------------------------------------------------------------- public

std::string_view to_string(Language language) {
  switch (language) {
    case Language::c:
      return "c";
    case Language::cpp:
      return "cpp";
    case Language::python:
      return "python";
  }
  return "cpp";
}

std::optional<Language> language_of(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  if (ext == ".c") return Language::c;
  if (ext == ".cc" || ext == ".cpp" || ext == ".cxx" || ext == ".h" || ext == ".hh" ||
      ext == ".hpp")
    return Language::cpp;
  if (ext == ".py") return Language::python;
  return std::nullopt;
}

std::string_view to_string(Severity severity) {
  switch (severity) {
    case Severity::info:
      return "info";
    case Severity::warning:
      return "warning";
    case Severity::error:
      return "error";
  }
  return "info";
}

LineCounts& LineCounts::operator+=(const LineCounts& other) {
  total += other.total;
  code += other.code;
  comment += other.comment;
  blank += other.blank;
  return *this;
}

FindingCounts count_findings(const std::vector<Finding>& findings) {
  FindingCounts out;
  for (const auto& f : findings) {
    switch (f.severity) {
      case Severity::info:
        ++out.info;
        break;
      case Severity::warning:
        ++out.warning;
        break;
      case Severity::error:
        ++out.error;
        break;
    }
  }
  return out;
}

double quality_score(std::size_t code_lines, const FindingCounts& findings,
                     std::size_t complexity_excess) {
  double kloc = static_cast<double>(std::max<std::size_t>(code_lines, 100)) / 1000.0;
  double weight = static_cast<double>(findings.info + 5 * findings.warning + 15 * findings.error);
  double score = 100.0 - 0.25 * weight / kloc - 0.1 * static_cast<double>(complexity_excess) / kloc;
  return round1(std::clamp(score, 0.0, 100.0));
}

double overall_score(const std::vector<FileAnalysis>& files) {
  double weighted = 0;
  double lines = 0;
  for (const auto& f : files) {
    weighted += f.score * static_cast<double>(f.lines.code);
    lines += static_cast<double>(f.lines.code);
  }
  return lines == 0 ? 100.0 : round1(weighted / lines);
}

FileAnalysis analyze_source(std::string path, Language language, std::string_view text) {
  FileAnalysis out;
  out.path = std::move(path);
  out.language = language;
  std::vector<Token> tokens = language == Language::python ? lex_python(text) : lex_c_family(text);
  Structure s =
      language == Language::python ? python_structure(tokens) : c_family_structure(tokens);
  LineScan lines = scan_lines(text, tokens);  // after python_structure marked the docstrings
  out.lines = lines.counts;
  out.findings = std::move(lines.findings);
  todo_findings(tokens, out.findings);

  out.max_nesting = s.max_nesting;
  std::size_t excess = 0;
  for (auto& info : s.functions) {
    const Function& f = info.f;
    if (f.length > kMaxFunctionLines)
      out.findings.push_back({f.line, "long-function", Severity::warning,
                              fmt::format("function '{}' is {} lines long (limit {})", f.name,
                                          f.length, kMaxFunctionLines)});
    if (f.complexity > kMaxComplexity)
      out.findings.push_back(
          {f.line, "high-complexity",
           f.complexity > 2 * kMaxComplexity ? Severity::error : Severity::warning,
           fmt::format("function '{}' has cyclomatic complexity {} (limit {})", f.name,
                       f.complexity, kMaxComplexity)});
    if (f.nesting > kMaxNesting)
      out.findings.push_back({info.deep_line, "deep-nesting", Severity::warning,
                              fmt::format("function '{}' nests blocks {} deep (limit {})", f.name,
                                          f.nesting, kMaxNesting)});
    excess += static_cast<std::size_t>(std::max(0, f.complexity - kComplexityBudget));
    out.functions.push_back(f);
  }
  if (s.module_nesting > kMaxNesting)
    out.findings.push_back({s.module_deep_line, "deep-nesting", Severity::warning,
                            fmt::format("module-level code nests blocks {} deep (limit {})",
                                        s.module_nesting, kMaxNesting)});
  std::stable_sort(out.findings.begin(), out.findings.end(),
                   [](const Finding& a, const Finding& b) {
                     return a.line != b.line ? a.line < b.line : a.rule < b.rule;
                   });
  out.score = quality_score(out.lines.code, count_findings(out.findings), excess);
  return out;
}

void recompute(Analysis& analysis) {
  Totals t;
  t.other_files = analysis.totals.other_files;
  t.skipped = analysis.totals.skipped;
  for (const auto& f : analysis.files) {
    ++t.files;
    t.lines += f.lines;
    t.functions += f.functions.size();
    FindingCounts c = count_findings(f.findings);
    t.findings.info += c.info;
    t.findings.warning += c.warning;
    t.findings.error += c.error;
    ++t.languages[std::string(to_string(f.language))];
  }
  analysis.totals = std::move(t);
  analysis.score = overall_score(analysis.files);
}

// ---------------------------------------------------------------- globs

namespace {

bool match_class(std::string_view& p, char c, bool& matched) {
  // p starts just after '['. Returns false when the class is unterminated.
  std::size_t k = 0;
  bool negate = k < p.size() && (p[k] == '!' || p[k] == '^');
  if (negate) ++k;
  bool hit = false;
  bool first = true;
  while (k < p.size() && (p[k] != ']' || first)) {
    first = false;
    char lo = p[k];
    if (k + 2 < p.size() && p[k + 1] == '-' && p[k + 2] != ']') {
      hit = hit || (c >= lo && c <= p[k + 2]);
      k += 3;
    } else {
      hit = hit || c == lo;
      ++k;
    }
  }
  if (k >= p.size()) return false;
  p.remove_prefix(k + 1);
  matched = hit != negate && c != '/';
  return true;
}

// Matching with memoisation on (pattern offset, path offset): every step
// works on suffixes of the two, so `*a*a*a*b` against a long path costs
// O(pattern × path), not exponential time.
class Glob {
 public:
  Glob(std::string_view pattern, std::string_view path)
      : pattern_(pattern), path_(path), memo_((pattern.size() + 1) * (path.size() + 1), -1) {}
  bool match() { return sub(pattern_, path_); }

 private:
  // Whether the pattern suffix `p` matches the path suffix `s`.
  bool sub(std::string_view p, std::string_view s) {
    signed char& m =
        memo_[(pattern_.size() - p.size()) * (path_.size() + 1) + (path_.size() - s.size())];
    if (m < 0) m = compute(p, s) ? 1 : 0;
    return m == 1;
  }
  bool compute(std::string_view p, std::string_view s) {
    while (!p.empty()) {
      if (p.starts_with("**")) {
        std::string_view rest = p.substr(2);
        if (rest.starts_with("/")) {
          rest.remove_prefix(1);
          if (sub(rest, s)) return true;
          for (std::size_t i = 0; i < s.size(); ++i)
            if (s[i] == '/' && sub(rest, s.substr(i + 1))) return true;
          return false;
        }
        for (std::size_t i = 0; i <= s.size(); ++i)
          if (sub(rest, s.substr(i))) return true;
        return false;
      }
      if (p[0] == '*') {
        std::string_view rest = p.substr(1);
        for (std::size_t i = 0; i <= s.size(); ++i) {
          if (sub(rest, s.substr(i))) return true;
          if (i < s.size() && s[i] == '/') break;
        }
        return false;
      }
      if (s.empty()) return false;
      if (p[0] == '?') {
        if (s[0] == '/') return false;
        p.remove_prefix(1);
      } else if (p[0] == '[') {
        std::string_view cls = p.substr(1);
        bool matched = false;
        if (match_class(cls, s[0], matched)) {
          if (!matched) return false;
          p = cls;
        } else {
          if (s[0] != '[') return false;  // an unterminated '[' is literal
          p.remove_prefix(1);
        }
      } else {
        if (p[0] == '\\' && p.size() > 1) p.remove_prefix(1);
        if (p[0] != s[0]) return false;
        p.remove_prefix(1);
      }
      s.remove_prefix(1);
    }
    return s.empty();
  }

  std::string_view pattern_;
  std::string_view path_;
  std::vector<signed char> memo_;
};

bool glob_here(std::string_view p, std::string_view s) { return Glob(p, s).match(); }

std::string_view strip_dot_slash(std::string_view p) {
  while (p.starts_with("./")) p.remove_prefix(2);
  return p;
}

// Whether the directory `dir` (relative, no trailing '/') is excluded as a
// whole: the pattern matches it, or it is `PREFIX/**` and PREFIX matches it.
bool excludes_directory(std::string_view pattern, std::string_view dir) {
  pattern = strip_dot_slash(pattern);
  if (glob_match(pattern, dir)) return true;
  if (pattern.ends_with("/**")) {
    std::string_view prefix = pattern.substr(0, pattern.size() - 3);
    // The prefix was anchored by the slash that followed it.
    return glob_here(prefix, dir);
  }
  return false;
}

std::string_view json_type(const nlohmann::json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  return v.type_name();
}

Result<std::vector<std::string>> string_array(const nlohmann::json& params, std::string_view name) {
  const auto& v = params.at(name);
  if (!v.is_array())
    return Error::invalid(fmt::format("params.{}: expected array, got {}", name, json_type(v)));
  std::vector<std::string> out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string())
      return Error::invalid(
          fmt::format("params.{}[{}]: expected string, got {}", name, i, json_type(v[i])));
    auto s = v[i].get<std::string>();
    if (s.empty()) return Error::invalid(fmt::format("params.{}[{}]: empty glob", name, i));
    out.push_back(std::move(s));
  }
  return out;
}

// "" and "." → "."; refuses absolute paths and "..".
Result<std::string> normalise_relative(std::string_view path, std::string_view field) {
  if (!path.empty() && path.front() == '/')
    return Error::invalid(
        fmt::format("{}: '{}' is absolute; give a path relative to the workspace", field, path));
  std::string out;
  std::size_t start = 0;
  while (true) {
    auto slash = path.find('/', start);
    auto part = path.substr(start, slash == std::string_view::npos ? path.npos : slash - start);
    if (part == "..")
      return Error::invalid(
          fmt::format("{}: '{}' contains '..'; paths must stay inside", field, path));
    if (!part.empty() && part != ".") {
      if (!out.empty()) out += '/';
      out += part;
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out.empty() ? std::string(".") : out;
}

std::optional<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return std::nullopt;
  return text;
}

std::string join(const std::string& root, const std::string& rel) {
  return root == "." ? rel : root + "/" + rel;
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view path) {
  pattern = strip_dot_slash(pattern);
  if (pattern.find('/') == std::string_view::npos) {
    auto slash = path.rfind('/');
    return glob_here(pattern, slash == std::string_view::npos ? path : path.substr(slash + 1));
  }
  return glob_here(pattern, path);
}

// ---------------------------------------------------------------- tree walk

Result<AnalyzeOptions> analyze_options(const nlohmann::json& params) {
  AnalyzeOptions out;
  if (params.is_null()) return out;
  if (!params.is_object())
    return Error::invalid(fmt::format("params: expected object, got {}", json_type(params)));
  if (auto it = params.find("path"); it != params.end() && !it->is_null()) {
    if (!it->is_string())
      return Error::invalid(fmt::format("params.path: expected string, got {}", json_type(*it)));
    auto norm = normalise_relative(it->get<std::string>(), "params.path");
    if (!norm) return std::move(norm.error());
    out.path = std::move(*norm);
  }
  for (std::string_view name : {"include", "exclude"}) {
    auto it = params.find(name);
    if (it == params.end() || it->is_null()) continue;
    auto globs = string_array(params, name);
    if (!globs) return std::move(globs.error());
    (name == "include" ? out.include : out.exclude) = std::move(*globs);
  }
  if (auto it = params.find("max_files"); it != params.end() && !it->is_null()) {
    if (!it->is_number_integer())
      return Error::invalid(
          fmt::format("params.max_files: expected integer, got {}", json_type(*it)));
    auto n = it->get<std::int64_t>();
    if (n < 1 || n > 1000000)
      return Error::invalid(fmt::format("params.max_files: {} is out of range (1 to 1000000)", n));
    out.max_files = static_cast<std::size_t>(n);
  }
  return out;
}

Result<Analysis> analyze_tree(const std::filesystem::path& workspace, const AnalyzeOptions& options,
                              const AnalyzeHooks& hooks) {
  namespace fs = std::filesystem;
  auto root_rel = normalise_relative(options.path, "params.path");
  if (!root_rel) return std::move(root_rel.error());
  if (workspace.empty()) return Error::invalid("params.path: the step has no workspace to analyse");
  fs::path root = *root_rel == "." ? workspace : workspace / *root_rel;
  std::error_code ec;
  auto real_ws = fs::canonical(workspace, ec);
  if (ec) return Error(ec.value(), fmt::format("workspace '{}'", workspace.string()));
  auto real_root = fs::canonical(root, ec);
  if (ec.value() == ENOENT)
    return Error::described(
        ENOENT, fmt::format("params.path: '{}' does not exist in the workspace", *root_rel));
  if (ec) return Error(ec.value(), fmt::format("params.path: resolve '{}'", *root_rel));
  if (std::mismatch(real_ws.begin(), real_ws.end(), real_root.begin(), real_root.end()).first !=
      real_ws.end())
    return Error::invalid(fmt::format("params.path: '{}' leads outside the workspace", *root_rel));

  Analysis out;
  out.root = *root_rel;
  struct Candidate {
    std::string rel;  // relative to the workspace
    fs::path path;
    Language language;
  };
  std::vector<Candidate> candidates;

  if (fs::is_regular_file(root, ec)) {
    auto language = language_of(root);
    if (!language)
      return Error::invalid(fmt::format(
          "params.path: '{}' is not a supported source file (.c .cc .cpp .cxx .h .hh .hpp .py)",
          *root_rel));
    candidates.push_back({*root_rel, root, *language});
  } else if (fs::is_directory(root, ec)) {
    auto it =
        fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
    if (ec) return Error(ec.value(), fmt::format("params.path: read directory '{}'", *root_rel));
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) return Error(ec.value(), fmt::format("walk '{}'", *root_rel));
      const auto& entry = *it;
      std::string rel = entry.path().lexically_relative(root).generic_string();
      if (entry.is_symlink(ec)) continue;
      if (entry.is_directory(ec)) {
        if (std::any_of(options.exclude.begin(), options.exclude.end(),
                        [&](const std::string& p) { return excludes_directory(p, rel); }))
          it.disable_recursion_pending();
        continue;
      }
      if (!entry.is_regular_file(ec)) continue;
      if (std::any_of(options.exclude.begin(), options.exclude.end(),
                      [&](const std::string& p) { return glob_match(p, rel); }))
        continue;
      auto language = language_of(entry.path());
      if (!options.include.empty()) {
        if (!std::any_of(options.include.begin(), options.include.end(),
                         [&](const std::string& p) { return glob_match(p, rel); }))
          continue;
        if (!language) {
          ++out.totals.other_files;
          continue;
        }
      }
      if (!language) continue;
      candidates.push_back({join(*root_rel, rel), entry.path(), *language});
    }
  } else {
    return Error::invalid(
        fmt::format("params.path: '{}' is neither a regular file nor a directory", *root_rel));
  }

  std::sort(candidates.begin(), candidates.end(),
            [](const Candidate& a, const Candidate& b) { return a.rel < b.rel; });
  if (candidates.size() > options.max_files) {
    candidates.resize(options.max_files);
    out.truncated = true;
  }

  std::size_t done = 0;
  auto skip = [&](const Candidate& c, std::string reason) {
    ++out.totals.skipped;
    if (out.skipped.size() < kMaxSkippedListed) out.skipped.push_back({c.rel, std::move(reason)});
  };
  for (const auto& c : candidates) {
    if (hooks.cancelled && hooks.cancelled())
      return Error::described(ECANCELED, fmt::format("code.analyze: cancelled after {} of {} files",
                                                     done, candidates.size()));
    auto size = fs::file_size(c.path, ec);
    if (ec) {
      skip(c, ec.message());
    } else if (size > kMaxFileBytes) {
      skip(c, fmt::format("larger than {} MiB", kMaxFileBytes >> 20));
    } else if (auto text = read_file(c.path); !text) {
      skip(c, "cannot be read");
    } else {
      out.files.push_back(analyze_source(c.rel, c.language, *text));
    }
    ++done;
    if (hooks.progress && done % 50 == 0) hooks.progress(done, candidates.size());
  }
  if (hooks.progress) hooks.progress(done, candidates.size());
  recompute(out);
  return out;
}

// ---------------------------------------------------------------- JSON

namespace {

nlohmann::json to_json(const LineCounts& l) {
  return {{"total", l.total}, {"code", l.code}, {"comment", l.comment}, {"blank", l.blank}};
}

nlohmann::json to_json(const FindingCounts& c) {
  return {{"info", c.info}, {"warning", c.warning}, {"error", c.error}};
}

// Reads fields of one JSON object, naming each in errors: "WHERE: PATH.FIELD: ...".
class Reader {
 public:
  Reader(std::string_view where, std::string path) : where_(where), path_(std::move(path)) {}

  Error error(std::string_view field, std::string_view what) const {
    std::string at = path_ + std::string(field);
    if (!at.empty() && at.back() == '.') at.pop_back();
    if (at.empty()) return Error::invalid(fmt::format("{}: {}", where_, what));
    return Error::invalid(fmt::format("{}: {}: {}", where_, at, what));
  }
  Result<const nlohmann::json*> get(const nlohmann::json& obj, std::string_view field,
                                    nlohmann::json::value_t type) const {
    if (!obj.is_object()) return error("", fmt::format("expected object, got {}", json_type(obj)));
    auto it = obj.find(field);
    if (it == obj.end()) return error(field, "missing");
    bool ok = type == nlohmann::json::value_t::number_unsigned ? it->is_number_integer() && *it >= 0
              : type == nlohmann::json::value_t::number_float  ? it->is_number()
                                                               : it->type() == type;
    if (!ok) {
      std::string_view expected = type == nlohmann::json::value_t::number_unsigned
                                      ? "non-negative integer"
                                  : type == nlohmann::json::value_t::number_float ? "number"
                                  : type == nlohmann::json::value_t::string       ? "string"
                                  : type == nlohmann::json::value_t::array        ? "array"
                                  : type == nlohmann::json::value_t::boolean      ? "boolean"
                                                                                  : "object";
      return error(field, fmt::format("expected {}, got {}", expected, json_type(*it)));
    }
    return &*it;
  }
  Result<std::string> string(const nlohmann::json& obj, std::string_view field) const {
    auto v = get(obj, field, nlohmann::json::value_t::string);
    if (!v) return std::move(v.error());
    return (*v)->get<std::string>();
  }
  Result<std::size_t> count(const nlohmann::json& obj, std::string_view field) const {
    auto v = get(obj, field, nlohmann::json::value_t::number_unsigned);
    if (!v) return std::move(v.error());
    return (*v)->get<std::size_t>();
  }
  Result<double> number(const nlohmann::json& obj, std::string_view field) const {
    auto v = get(obj, field, nlohmann::json::value_t::number_float);
    if (!v) return std::move(v.error());
    return (*v)->get<double>();
  }

 private:
  std::string_view where_;
  std::string path_;
};

Result<FileAnalysis> file_from_json(const nlohmann::json& j, std::string_view where,
                                    std::size_t index) {
  Reader r(where, fmt::format("files[{}].", index));
  FileAnalysis f;
  auto path = r.string(j, "path");
  if (!path) return std::move(path.error());
  f.path = std::move(*path);
  auto lang = r.string(j, "language");
  if (!lang) return std::move(lang.error());
  if (*lang == "c")
    f.language = Language::c;
  else if (*lang == "cpp")
    f.language = Language::cpp;
  else if (*lang == "python")
    f.language = Language::python;
  else
    return r.error("language", fmt::format("'{}' is not one of c, cpp, python", *lang));

  auto lines = r.get(j, "lines", nlohmann::json::value_t::object);
  if (!lines) return std::move(lines.error());
  Reader lr(where, fmt::format("files[{}].lines.", index));
  for (auto [name, slot] :
       {std::pair{"total", &f.lines.total}, std::pair{"code", &f.lines.code},
        std::pair{"comment", &f.lines.comment}, std::pair{"blank", &f.lines.blank}}) {
    auto n = lr.count(**lines, name);
    if (!n) return std::move(n.error());
    *slot = *n;
  }

  auto functions = r.get(j, "functions", nlohmann::json::value_t::array);
  if (!functions) return std::move(functions.error());
  for (std::size_t i = 0; i < (*functions)->size(); ++i) {
    const auto& fj = (**functions)[i];
    Reader fr(where, fmt::format("files[{}].functions[{}].", index, i));
    Function fn;
    auto name = fr.string(fj, "name");
    if (!name) return std::move(name.error());
    fn.name = std::move(*name);
    for (auto [field, slot] : {std::pair{"line", &fn.line}, std::pair{"length", &fn.length},
                               std::pair{"complexity", &fn.complexity}}) {
      auto n = fr.count(fj, field);
      if (!n) return std::move(n.error());
      *slot = static_cast<int>(*n);
    }
    if (fj.contains("nesting")) {
      auto n = fr.count(fj, "nesting");
      if (!n) return std::move(n.error());
      fn.nesting = static_cast<int>(*n);
    }
    f.functions.push_back(std::move(fn));
  }

  auto findings = r.get(j, "findings", nlohmann::json::value_t::array);
  if (!findings) return std::move(findings.error());
  for (std::size_t i = 0; i < (*findings)->size(); ++i) {
    const auto& fj = (**findings)[i];
    Reader fr(where, fmt::format("files[{}].findings[{}].", index, i));
    Finding fd;
    auto line = fr.count(fj, "line");
    if (!line) return std::move(line.error());
    fd.line = static_cast<int>(*line);
    auto rule = fr.string(fj, "rule");
    if (!rule) return std::move(rule.error());
    fd.rule = std::move(*rule);
    auto severity = fr.string(fj, "severity");
    if (!severity) return std::move(severity.error());
    if (*severity == "info")
      fd.severity = Severity::info;
    else if (*severity == "warning")
      fd.severity = Severity::warning;
    else if (*severity == "error")
      fd.severity = Severity::error;
    else
      return fr.error("severity",
                      fmt::format("'{}' is not one of info, warning, error", *severity));
    auto message = fr.string(fj, "message");
    if (!message) return std::move(message.error());
    fd.message = std::move(*message);
    f.findings.push_back(std::move(fd));
  }
  if (j.contains("max_nesting")) {
    auto n = r.count(j, "max_nesting");
    if (!n) return std::move(n.error());
    f.max_nesting = static_cast<int>(*n);
  }
  auto score = r.number(j, "score");
  if (!score) return std::move(score.error());
  if (*score < 0 || *score > 100)
    return r.error("score", fmt::format("{} is not between 0 and 100", *score));
  f.score = *score;
  return f;
}

}  // namespace

nlohmann::json to_json(const FileAnalysis& file) {
  auto functions = nlohmann::json::array();
  for (const auto& f : file.functions)
    functions.push_back({{"name", ext::valid_utf8(f.name)},
                         {"line", f.line},
                         {"length", f.length},
                         {"complexity", f.complexity},
                         {"nesting", f.nesting}});
  auto findings = nlohmann::json::array();
  for (const auto& f : file.findings)
    findings.push_back({{"line", f.line},
                        {"rule", f.rule},
                        {"severity", to_string(f.severity)},
                        {"message", ext::valid_utf8(f.message)}});
  return {{"path", ext::valid_utf8(file.path)},
          {"language", to_string(file.language)},
          {"lines", to_json(file.lines)},
          {"functions", std::move(functions)},
          {"max_nesting", file.max_nesting},
          {"findings", std::move(findings)},
          {"score", file.score}};
}

nlohmann::json to_json(const Analysis& analysis) {
  auto files = nlohmann::json::array();
  for (const auto& f : analysis.files) files.push_back(to_json(f));
  auto skipped = nlohmann::json::array();
  for (const auto& s : analysis.skipped)
    skipped.push_back({{"path", ext::valid_utf8(s.path)}, {"reason", s.reason}});
  const Totals& t = analysis.totals;
  return {{"root", ext::valid_utf8(analysis.root)},
          {"files", std::move(files)},
          {"totals",
           {{"files", t.files},
            {"lines", to_json(t.lines)},
            {"functions", t.functions},
            {"findings", to_json(t.findings)},
            {"languages", t.languages},
            {"other_files", t.other_files},
            {"skipped", t.skipped}}},
          {"score", analysis.score},
          {"truncated", analysis.truncated},
          {"skipped", std::move(skipped)}};
}

Result<Analysis> analysis_from_json(const nlohmann::json& json, std::string_view where) {
  Reader r(where, "");
  Analysis out;
  auto root = r.string(json, "root");
  if (!root) return std::move(root.error());
  out.root = std::move(*root);
  auto files = r.get(json, "files", nlohmann::json::value_t::array);
  if (!files) return std::move(files.error());
  for (std::size_t i = 0; i < (*files)->size(); ++i) {
    auto f = file_from_json((**files)[i], where, i);
    if (!f) return std::move(f.error());
    out.files.push_back(std::move(*f));
  }
  if (auto totals = json.find("totals"); totals != json.end() && totals->is_object()) {
    Reader tr(where, "totals.");
    for (auto [field, slot] : {std::pair{"other_files", &out.totals.other_files},
                               std::pair{"skipped", &out.totals.skipped}}) {
      if (!totals->contains(field)) continue;
      auto n = tr.count(*totals, field);
      if (!n) return std::move(n.error());
      *slot = *n;
    }
  }
  if (auto t = json.find("truncated"); t != json.end() && t->is_boolean())
    out.truncated = t->get<bool>();
  recompute(out);
  return out;
}

}  // namespace symphony::extensions::code
