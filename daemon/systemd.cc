// sd_notify, sd_watchdog_enabled and sd_listen_fds from libsystemd.
#include "daemon/systemd.h"

#include <systemd/sd-daemon.h>

#include <string>

namespace symphony::daemon::sd {

void notify(std::string_view state) {
  std::string s(state);
  ::sd_notify(0, s.c_str());
}

std::optional<std::chrono::microseconds> watchdog_interval() {
  uint64_t usec = 0;
  if (::sd_watchdog_enabled(0, &usec) > 0 && usec > 0) return std::chrono::microseconds(usec);
  return std::nullopt;
}

Result<std::vector<int>> listen_fds() {
  // unset_environment=1: children we spawn must not think the fds are theirs.
  int n = ::sd_listen_fds(1);
  if (n < 0) return Error(-n, "sd_listen_fds");
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) fds.push_back(SD_LISTEN_FDS_START + i);
  return fds;
}


}  // namespace symphony::daemon::sd
