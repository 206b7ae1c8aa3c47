// Tokenizers for the code instrument: one for the C family (C and C++) and
// one for Python. They exist so that the analyzer never mistakes a brace or
// keyword inside a comment or a string for code: comments (// /* */ and
// Python's #), string and character literals (with escapes, C++ raw strings
// R"d(...)d", prefixed literals, Python's triple-quoted and prefixed
// strings) and preprocessor directives are recognised as such. Malformed
// input (an unterminated string or comment) never fails: the token simply
// runs to the end of its line or of the file.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace symphony::extensions::code {

enum class TokenKind {
  identifier,  // names and keywords alike: `if`, `foo`, `operator`
  number,
  string,   // string or character literal, prefix included
  punct,    // operators and punctuation: `{`, `::`, `&&`, `->`
  comment,  // the whole comment, delimiters included
  newline,  // Python only: the end of a logical line (not inside brackets)
};

struct Token {
  TokenKind kind = TokenKind::punct;
  std::string_view text;  // a view into the source given to the lexer
  int line = 0;           // 1-based line of the first character
  int end_line = 0;       // line of the last character (> line for multi-line tokens)
  int column = 0;         // 0-based visual column of the first character (tabs to multiples of 8)
  // C family: the token belongs to a preprocessor directive (the `#`, the
  // directive's name and everything up to the unescaped end of its line).
  bool preprocessor = false;
};

// Tokens of C or C++ `source`, in order; views into `source`, which must
// outlive them. Multi-character punctuators that matter to the analyzer are
// single tokens (`::` `->` `&&` `||` `...` `==` `!=` `<=` `>=` `<<` and the
// compound assignments); `>>` is two `>` tokens, so that template argument
// lists close. Line continuations (backslash-newline) are skipped.
std::vector<Token> lex_c_family(std::string_view source);

// Tokens of Python `source`, with a `newline` token at the end of each
// logical line (none for blank or comment-only lines, nor inside brackets or
// after a backslash continuation). `column` of a line's first token is its
// indentation.
std::vector<Token> lex_python(std::string_view source);

}  // namespace symphony::extensions::code
