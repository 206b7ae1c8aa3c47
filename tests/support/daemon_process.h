// Test support: runs the real symphonyd binary in user mode inside a private
// temporary directory (runtime dir, config, state), captures its log, and
// gives tests real socket clients. The binary comes from $SYMPHONYD, which
// meson sets for every test that depends on it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "ipc/rpc_client.h"

namespace symphony::testing {

struct DaemonOptions {
  std::string loop_backend = "auto";
  std::vector<std::string> args;  // extra command-line arguments
  std::vector<std::string> env;   // extra "KEY=value" entries
  // Runs in the child between fork and exec (e.g. to place an fd at 3).
  std::function<void()> in_child;
  bool wait_until_serving = true;
  // Run in this existing directory (from make_temp_dir) instead of a fresh
  // one, so a restarted daemon finds its state; the caller removes it.
  std::string dir;
};

class DaemonProcess {
 public:
  explicit DaemonProcess(DaemonOptions options = {});
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& socket() const { return socket_; }
  const std::string& dir() const { return dir_; }
  // The user-mode config file the daemon reads (it may not exist yet).
  std::string config_file() const { return dir_ + "/config/symphony/symphonyd.toml"; }

  // Connects and says hello; fails the current test on error.
  ipc::Client client(const std::string& name = "test") const;
  bool wait_until_serving(std::chrono::milliseconds timeout) const;

  void send_signal(int signo) const;
  // Waits for the process to exit: its exit code, 128+N when killed by
  // signal N, or -1 on timeout.
  int wait_exit(std::chrono::milliseconds timeout);
  bool running() const { return pid_ > 0; }
  std::string log() const;

 private:
  std::string dir_;
  std::string socket_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  bool own_dir_ = true;
};

// The directory holding the test's data files (tests/ in the source tree).
std::string make_temp_dir(const std::string& prefix);
void remove_tree(const std::string& path);

}  // namespace symphony::testing
