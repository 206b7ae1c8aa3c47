// LibTorch reports failures as exceptions whose messages run to dozens of
// lines (TorchScript tracebacks, C++ backtraces). Symphony's errors are
// results (base/result.h) of one line, so every call into LibTorch goes
// through catch_torch(), which keeps the line that says what went wrong.
#pragma once

#include <c10/util/Exception.h>

#include <exception>
#include <string>
#include <string_view>
#include <type_traits>

#include "base/result.h"

namespace symphony::extensions::torchscript {

// The line of a LibTorch error message that says what went wrong: for a
// failure inside the TorchScript interpreter, the final "RuntimeError: …"
// line of the traceback without its exception name; otherwise the first line.
std::string torch_error_reason(std::string_view message);

// Calls `f` (which returns a Result) and turns an exception it throws into
// Error::invalid("CONTEXT: reason"). LibTorch throws for bad input (shape,
// dtype, arguments) and for corrupt files alike; both are the request's fault.
template <class F>
std::invoke_result_t<F> catch_torch(std::string_view context, F&& f) {
  auto fail = [&](std::string_view message) {
    std::string text(context);
    text += ": ";
    text += torch_error_reason(message);
    return Error::invalid(std::move(text));
  };
  try {
    return f();
  } catch (const c10::Error& e) {
    return fail(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

}  // namespace symphony::extensions::torchscript
