// Looking up users and groups by name (the system's NSS databases), for the
// access allow-list and the socket's owning group.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace symphony {

// The uid of user `name`, or nullopt when there is no such user.
std::optional<std::uint32_t> lookup_user(const std::string& name);
// The gid of group `name`, or nullopt when there is no such group.
std::optional<std::uint32_t> lookup_group(const std::string& name);

}  // namespace symphony
