// Connection set-up and error reporting shared by every symphonyctl command.
#include "cli/ctl.h"

#include <cstdio>

#include "base/paths.h"

namespace symphony::cli {

namespace {

void say_unreachable(const std::string& address, const Error& e, bool user) {
  if (e.code() == EACCES) {
    std::fprintf(stderr,
                 "symphonyctl: cannot reach symphonyd at %s: %s. Ask an administrator to add "
                 "you to group 'symphony' (or to access.allow_users), then log in again.\n",
                 address.c_str(), e.message().c_str());
    return;
  }
  std::fprintf(stderr, "symphonyctl: cannot reach symphonyd at %s: %s. Start it with %s.\n",
               address.c_str(), e.message().c_str(),
               user ? "'symphonyd --user' (or 'systemctl --user start symphonyd.socket')"
                    : "'systemctl start symphonyd', or use --user to reach a per-user daemon "
                      "started with 'symphonyd --user'");
}

}  // namespace

// Connects and performs the handshake; on failure prints why and sets `exit`.
std::optional<ipc::Client> open(const Globals& g, int& exit) {
  std::string address = g.socket;
  if (address.empty()) {
    auto s = default_socket(g.user ? Mode::user : Mode::system);
    if (!s) {
      std::fprintf(stderr, "symphonyctl: %s\n", s.error().message().c_str());
      exit = kUnreachable;
      return std::nullopt;
    }
    address = *s;
  }
  auto client = ipc::Client::connect(address);
  if (!client) {
    say_unreachable(address, client.error(), g.user);
    exit = kUnreachable;
    return std::nullopt;
  }
  auto hello = client->hello("symphonyctl");
  if (!hello) {
    std::fprintf(stderr, "symphonyctl: symphonyd at %s: %s\n", address.c_str(),
                 hello.error().message().c_str());
    exit = kFailure;
    return std::nullopt;
  }
  return std::move(*client);
}

int fail(const Error& e) {
  std::fprintf(stderr, "symphonyctl: %s\n", e.message().c_str());
  // The client reports a daemon's error answer as "code: message".
  return e.message().starts_with("not_found: ") ? kNotFound : kFailure;
}

}  // namespace symphony::cli
