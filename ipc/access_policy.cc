// Building the allow-list from names or ids, and the check itself.
#include "ipc/access_policy.h"

#include <algorithm>
#include <charconv>
#include <optional>

#include "base/accounts.h"

namespace symphony::ipc {
namespace {

std::optional<std::uint32_t> numeric(const std::string& s) {
  std::uint32_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

bool contains(const std::vector<std::uint32_t>& v, std::uint32_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

AccessPolicy AccessPolicy::make(std::uint32_t self_uid, const std::vector<std::string>& users,
                                const std::vector<std::string>& groups) {
  AccessPolicy p;
  p.uids_ = {0};
  if (self_uid != 0) p.uids_.push_back(self_uid);
  for (const auto& u : users) {
    auto id = numeric(u);
    if (!id) id = lookup_user(u);
    if (id) {
      if (!contains(p.uids_, *id)) p.uids_.push_back(*id);
    } else {
      p.unresolved_.push_back("user " + u);
    }
  }
  for (const auto& g : groups) {
    auto id = numeric(g);
    if (!id) id = lookup_group(g);
    if (id) {
      if (!contains(p.gids_, *id)) p.gids_.push_back(*id);
    } else {
      p.unresolved_.push_back("group " + g);
    }
  }
  return p;
}

bool AccessPolicy::allows(const PeerCredentials& peer) const {
  if (contains(uids_, peer.uid)) return true;
  if (contains(gids_, peer.gid)) return true;
  return std::any_of(peer.groups.begin(), peer.groups.end(),
                     [&](std::uint32_t g) { return contains(gids_, g); });
}

}  // namespace symphony::ipc
