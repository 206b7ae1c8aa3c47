// Hand-written scanners over a string_view: a cursor that knows its line and
// visual column, and one loop per language. Both are linear in the input and
// allocate only the token vector.
#include "extensions/code/lexer.h"

#include <algorithm>
#include <array>
#include <string>

namespace symphony::extensions::code {
namespace {

bool ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool ident_char(char c) { return ident_start(c) || (c >= '0' && c <= '9'); }
bool digit(char c) { return c >= '0' && c <= '9'; }
bool space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}

  bool done() const { return pos_ >= s_.size(); }
  char peek(std::size_t ahead = 0) const {
    return pos_ + ahead < s_.size() ? s_[pos_ + ahead] : '\0';
  }
  bool starts_with(std::string_view p) const { return s_.substr(pos_).starts_with(p); }
  std::size_t pos() const { return pos_; }
  int line() const { return line_; }
  int column() const { return column_; }

  void advance() {
    if (done()) return;
    char c = s_[pos_++];
    if (c == '\n') {
      ++line_;
      column_ = 0;
    } else if (c == '\t') {
      column_ = (column_ / 8 + 1) * 8;
    } else if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) {
      ++column_;  // UTF-8 continuation bytes take no column
    }
  }
  void advance(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) advance();
  }

  // A backslash followed by a newline (optionally "\r\n").
  bool at_continuation() const {
    return peek() == '\\' && (peek(1) == '\n' || (peek(1) == '\r' && peek(2) == '\n'));
  }
  void skip_continuation() { advance(peek(1) == '\r' ? 3 : 2); }

  std::string_view text_since(std::size_t start) const { return s_.substr(start, pos_ - start); }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
  int line_ = 1;
  int column_ = 0;
};

struct Emitter {
  Cursor& cur;
  std::vector<Token>& out;
  std::size_t start = 0;
  int line = 0;
  int column = 0;

  void begin() {
    start = cur.pos();
    line = cur.line();
    column = cur.column();
  }
  void emit(TokenKind kind, bool preprocessor = false) {
    // A token ending in a newline (a // comment never does; an unterminated
    // string may) ends on the line before the cursor.
    std::string_view text = cur.text_since(start);
    int end = cur.line();
    if (!text.empty() && text.back() == '\n') --end;
    out.push_back(Token{kind, text, line, end, column, preprocessor});
  }
};

// A quoted literal whose opening quote is at the cursor: up to the matching
// unescaped quote, or the end of the line when unterminated.
void skip_quoted(Cursor& cur) {
  char quote = cur.peek();
  cur.advance();
  while (!cur.done()) {
    char c = cur.peek();
    if (c == '\\') {
      cur.advance(2);
    } else if (c == quote) {
      cur.advance();
      return;
    } else if (c == '\n') {
      return;
    } else {
      cur.advance();
    }
  }
}

// C++ raw string: the cursor is at the opening quote after the R. Returns
// false (consuming nothing) when no valid delimiter follows.
bool skip_raw_string(Cursor& cur, std::string_view source) {
  std::size_t open = cur.pos() + 1;
  std::size_t paren = open;
  while (paren < source.size() && paren - open <= 16) {
    char c = source[paren];
    if (c == '(') break;
    if (c == ')' || c == '\\' || c == '"' || space(c) || c == '\n') return false;
    ++paren;
  }
  if (paren >= source.size() || source[paren] != '(') return false;
  std::string closing = ")";
  closing.append(source.substr(open, paren - open));
  closing += '"';
  std::size_t end = source.find(closing, paren + 1);
  end = end == std::string_view::npos ? source.size() : end + closing.size();
  cur.advance(end - cur.pos());
  return true;
}

// C and C++ literal prefixes: `L"x"`, `u8'c'`, and the raw forms `R"(x)"`.
bool is_string_prefix(std::string_view id, bool& raw) {
  static constexpr std::array<std::string_view, 4> kPlain = {"L", "u", "U", "u8"};
  static constexpr std::array<std::string_view, 5> kRaw = {"R", "LR", "uR", "UR", "u8R"};
  raw = std::find(kRaw.begin(), kRaw.end(), id) != kRaw.end();
  return raw || std::find(kPlain.begin(), kPlain.end(), id) != kPlain.end();
}

// Numbers: digits, letters (hex, suffixes), '.', the sign of an exponent
// and, in C++, digit separators (1'000).
void skip_number(Cursor& cur, bool separators) {
  while (!cur.done()) {
    char c = cur.peek();
    if (ident_char(c) || c == '.') {
      cur.advance();
      if ((c == 'e' || c == 'E' || c == 'p' || c == 'P') &&
          (cur.peek() == '+' || cur.peek() == '-'))
        cur.advance();
    } else if (separators && c == '\'' && ident_char(cur.peek(1))) {
      cur.advance();
    } else {
      break;
    }
  }
}

constexpr std::array<std::string_view, 24> kCPunct = {
    "<<=", ">>=", "<=>", "...", "->*", "::", "->", "&&", "||", "==", "!=", "<=",
    ">=",  "<<",  "+=",  "-=",  "*=",  "/=", "%=", "&=", "|=", "^=", "##", ".*"};

}  // namespace

std::vector<Token> lex_c_family(std::string_view source) {
  std::vector<Token> out;
  Cursor cur(source);
  Emitter em{cur, out};
  bool line_start = true;  // only whitespace since the last newline
  bool in_directive = false;

  while (!cur.done()) {
    char c = cur.peek();
    if (c == '\n') {
      cur.advance();
      line_start = true;
      in_directive = false;
      continue;
    }
    if (cur.at_continuation()) {
      cur.skip_continuation();
      continue;
    }
    if (space(c)) {
      cur.advance();
      continue;
    }
    bool was_line_start = line_start;
    line_start = false;
    em.begin();

    if (c == '/' && cur.peek(1) == '/') {
      // A line comment; a backslash at its end continues it, as in C.
      while (!cur.done() && cur.peek() != '\n') {
        if (cur.at_continuation())
          cur.skip_continuation();
        else
          cur.advance();
      }
      em.emit(TokenKind::comment);
      continue;
    }
    if (c == '/' && cur.peek(1) == '*') {
      cur.advance(2);
      while (!cur.done() && !cur.starts_with("*/")) cur.advance();
      cur.advance(2);
      em.emit(TokenKind::comment);
      continue;
    }
    if (c == '#' && was_line_start) {
      in_directive = true;
      cur.advance();
      em.emit(TokenKind::punct, true);
      continue;
    }
    if (c == '"' || c == '\'') {
      skip_quoted(cur);
      em.emit(TokenKind::string, in_directive);
      continue;
    }
    if (digit(c) || (c == '.' && digit(cur.peek(1)))) {
      skip_number(cur, true);
      em.emit(TokenKind::number, in_directive);
      continue;
    }
    if (ident_start(c)) {
      while (!cur.done() && ident_char(cur.peek())) cur.advance();
      std::string_view id = cur.text_since(em.start);
      bool raw = false;
      if ((cur.peek() == '"' || (cur.peek() == '\'')) && is_string_prefix(id, raw)) {
        if (raw && cur.peek() == '"' && skip_raw_string(cur, source)) {
          em.emit(TokenKind::string, in_directive);
          continue;
        }
        if (!raw) {
          skip_quoted(cur);
          em.emit(TokenKind::string, in_directive);
          continue;
        }
      }
      em.emit(TokenKind::identifier, in_directive);
      continue;
    }
    std::size_t len = 1;
    for (auto p : kCPunct) {
      if (cur.starts_with(p)) {
        len = p.size();
        break;
      }
    }
    cur.advance(len);
    em.emit(TokenKind::punct, in_directive);
  }
  return out;
}

namespace {

// Python string prefixes: r, u, b, f and their two-letter combinations, any case.
bool python_prefix(std::string_view id) {
  if (id.empty() || id.size() > 2) return false;
  for (char c : id) {
    char l = static_cast<char>(c | 0x20);
    if (l != 'r' && l != 'u' && l != 'b' && l != 'f') return false;
  }
  return true;
}

// A Python string whose first quote is at the cursor. Backslash skips the
// next character in raw strings too (r"\"" is one string).
void skip_python_string(Cursor& cur) {
  char q = cur.peek();
  bool triple = cur.peek(1) == q && cur.peek(2) == q;
  cur.advance(triple ? 3 : 1);
  while (!cur.done()) {
    char c = cur.peek();
    if (c == '\\') {
      cur.advance(2);
    } else if (c == q && (!triple || (cur.peek(1) == q && cur.peek(2) == q))) {
      cur.advance(triple ? 3 : 1);
      return;
    } else if (c == '\n' && !triple) {
      return;
    } else {
      cur.advance();
    }
  }
}

constexpr std::array<std::string_view, 14> kPyPunct = {
    "**=", "//=", ">>=", "<<=", "->", ":=", "**", "//", "==", "!=", "<=", ">=", "<<", ">>"};

}  // namespace

std::vector<Token> lex_python(std::string_view source) {
  std::vector<Token> out;
  Cursor cur(source);
  Emitter em{cur, out};
  int depth = 0;               // open brackets
  bool line_has_code = false;  // tokens since the last logical newline

  auto end_logical_line = [&] {
    if (line_has_code) {
      out.push_back(Token{TokenKind::newline, {}, cur.line(), cur.line(), cur.column(), false});
    }
    line_has_code = false;
  };

  while (!cur.done()) {
    char c = cur.peek();
    if (c == '\n') {
      if (depth == 0) end_logical_line();
      cur.advance();
      continue;
    }
    if (cur.at_continuation()) {
      cur.skip_continuation();
      continue;
    }
    if (space(c)) {
      cur.advance();
      continue;
    }
    em.begin();
    if (c == '#') {
      while (!cur.done() && cur.peek() != '\n') cur.advance();
      em.emit(TokenKind::comment);
      continue;
    }
    line_has_code = true;
    if (c == '"' || c == '\'') {
      skip_python_string(cur);
      em.emit(TokenKind::string);
      continue;
    }
    if (digit(c) || (c == '.' && digit(cur.peek(1)))) {
      skip_number(cur, false);
      em.emit(TokenKind::number);
      continue;
    }
    if (ident_start(c) && c != '$') {
      while (!cur.done() && ident_char(cur.peek()) && cur.peek() != '$') cur.advance();
      if ((cur.peek() == '"' || cur.peek() == '\'') && python_prefix(cur.text_since(em.start))) {
        skip_python_string(cur);
        em.emit(TokenKind::string);
        continue;
      }
      em.emit(TokenKind::identifier);
      continue;
    }
    std::size_t len = 1;
    for (auto p : kPyPunct) {
      if (cur.starts_with(p)) {
        len = p.size();
        break;
      }
    }
    if (len == 1) {
      if (c == '(' || c == '[' || c == '{') ++depth;
      if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
    }
    cur.advance(len);
    em.emit(TokenKind::punct);
  }
  end_logical_line();
  return out;
}

}  // namespace symphony::extensions::code
