// Built instead of systemd.cc without libsystemd: the daemon runs in the
// foreground only, with no notifications and no socket activation.
#include <time.h>

#include "daemon/systemd.h"

namespace symphony::daemon::sd {

void notify(std::string_view) {}
std::optional<std::chrono::microseconds> watchdog_interval() { return std::nullopt; }
Result<std::vector<int>> listen_fds() { return std::vector<int>{}; }
std::uint64_t monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace symphony::daemon::sd
