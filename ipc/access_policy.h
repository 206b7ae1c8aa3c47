// Who may talk to the daemon: an allow-list of uids and gids checked against
// the kernel-reported credentials of every connection. Root and the daemon's
// own user are always allowed; by default so are members of group
// `symphony` (primary or supplementary).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "ipc/transport.h"

namespace symphony::ipc {

class AccessPolicy {
 public:
  // Allows root, `self_uid`, and the given users and groups. Entries are
  // names or numeric ids. A name that does not resolve is skipped and
  // reported in `unresolved()` (fail closed: nobody gains access by a typo).
  static AccessPolicy make(std::uint32_t self_uid, const std::vector<std::string>& users,
                           const std::vector<std::string>& groups);

  bool allows(const PeerCredentials& peer) const;
  const std::vector<std::string>& unresolved() const { return unresolved_; }
  const std::vector<std::uint32_t>& uids() const { return uids_; }
  const std::vector<std::uint32_t>& gids() const { return gids_; }

 private:
  std::vector<std::uint32_t> uids_;
  std::vector<std::uint32_t> gids_;
  std::vector<std::string> unresolved_;
};

}  // namespace symphony::ipc
