// Built instead of systemd.cc without libsystemd: the daemon runs in the
// foreground only, with no notifications and no socket activation.

#include "daemon/systemd.h"

namespace symphony::daemon::sd {

void notify(std::string_view) {}
std::optional<std::chrono::microseconds> watchdog_interval() { return std::nullopt; }
Result<std::vector<int>> listen_fds() { return std::vector<int>{}; }

}  // namespace symphony::daemon::sd
