// Formatting of Error messages; kept out of the header so that <cstring> and
// the context-joining logic are compiled once.
#include "base/result.h"

#include <cstring>

namespace symphony {

std::string Error::message() const {
  if (code_ == 0 || describes_itself_) return context_;
  std::string out = context_;
  out += ": ";
  out += std::strerror(code_);
  return out;
}

Error& Error::wrap(std::string_view outer) & {
  std::string joined(outer);
  joined += ": ";
  joined += context_;
  context_ = std::move(joined);
  return *this;
}

Error&& Error::wrap(std::string_view outer) && { return std::move(wrap(outer)); }

}  // namespace symphony
