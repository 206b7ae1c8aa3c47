// The daemon's side of the systemd service protocol: readiness and status
// notifications, the watchdog, and socket activation. Every call is a no-op
// (or reports "nothing inherited") when not started by systemd, and when
// built without libsystemd (systemd_fallback.cc).
#pragma once

#include <chrono>
#include <optional>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace symphony::daemon::sd {

// Sends one notification ("READY=1\nSTATUS=…"); ignored without NOTIFY_SOCKET.
void notify(std::string_view state);
// The watchdog period systemd expects pings within, if enabled for us.
std::optional<std::chrono::microseconds> watchdog_interval();
// Sockets passed by socket activation (LISTEN_FDS), CLOEXEC set.
Result<std::vector<int>> listen_fds();

}  // namespace symphony::daemon::sd
