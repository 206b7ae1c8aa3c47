// What every symphonyctl command shares: global flags, exit codes, opening
// a connection with the handshake, and reporting failures the same way.
#pragma once

#include <optional>
#include <string>

#include "base/result.h"
#include "ipc/rpc_client.h"

namespace symphony::cli {

// Exit codes: 0 success, 1 failure, 2 usage error, 3 daemon not reachable,
// 4 what was asked for does not exist (artifact commands).
enum Exit { kOk = 0, kFailure = 1, kUsage = 2, kUnreachable = 3, kNotFound = 4 };

struct Globals {
  bool json = false;
  bool user = false;
  std::string socket;
};

// Connects and performs the handshake; on failure prints why and sets `exit`.
std::optional<ipc::Client> open(const Globals& g, int& exit);
// Prints "symphonyctl: <message>" and returns the exit code for it
// (kNotFound for a daemon's not_found answer, kFailure otherwise).
int fail(const Error& e);

}  // namespace symphony::cli
