// getpwnam_r / getgrnam_r behind lookup_user and lookup_group.
#include "base/accounts.h"

#include <grp.h>
#include <pwd.h>

#include <vector>

namespace symphony {

std::optional<std::uint32_t> lookup_user(const std::string& name) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* out = nullptr;
  if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &out) == 0 && out) return pw.pw_uid;
  return std::nullopt;
}

std::optional<std::uint32_t> lookup_group(const std::string& name) {
  std::vector<char> buf(16384);
  group gr{};
  group* out = nullptr;
  if (::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &out) == 0 && out) return gr.gr_gid;
  return std::nullopt;
}

}  // namespace symphony
