// The error model every Symphony module uses: a function returns a value or
// an Error (std::expected-style, C++20). An Error carries the errno that
// caused it (0 when there is none) and a human-readable context chain, so a
// failure deep in a setup step reaches the user as "what, where, why".
// Exceptions never cross a module boundary; third-party code that throws is
// wrapped at the call site.
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace symphony {

class Error {
 public:
  // `code` is an errno value (0 when the failure is not a system error);
  // `context` says what was being done ("bind /run/symphony/symphonyd.sock").
  Error(int code, std::string context) : code_(code), context_(std::move(context)) {}

  // An error from the current errno, for use right after a failed syscall.
  static Error from_errno(std::string context) { return Error(errno, std::move(context)); }
  // A validation error: EINVAL with a message that says what is wrong and where.
  static Error invalid(std::string message) { return described(EINVAL, std::move(message)); }
  // An error whose message is complete as it is (no strerror suffix), e.g.
  // one a remote peer reported.
  static Error described(int code, std::string message) {
    Error e(code, std::move(message));
    e.describes_itself_ = true;
    return e;
  }

  int code() const { return code_; }
  const std::string& context() const { return context_; }

  // "context: strerror(code)", or just the context when code is 0 or the
  // error came from invalid() (validation messages already say everything).
  std::string message() const;

  // Prefixes the context: "outer: inner". Returns *this for chaining.
  Error& wrap(std::string_view outer) &;
  Error&& wrap(std::string_view outer) &&;

 private:
  int code_;
  std::string context_;
  bool describes_itself_ = false;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  Error& error() & { return std::get<1>(v_); }
  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

  template <class U>
  T value_or(U&& fallback) const& {
    return has_value() ? value() : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT

  bool has_value() const { return !error_; }
  explicit operator bool() const { return has_value(); }
  Error& error() & { return *error_; }
  const Error& error() const& { return *error_; }
  Error&& error() && { return std::move(*error_); }

 private:
  std::optional<Error> error_;
};

// Success for Result<void>: `return ok();`
inline Result<void> ok() { return {}; }

}  // namespace symphony
