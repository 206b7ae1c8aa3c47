// fork/exec of symphonyd for integration tests, with a pidfd to wait on it
// without races against pid reuse.
#include "tests/support/daemon_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace symphony::testing {
namespace {

std::string binary() {
  const char* b = std::getenv("SYMPHONYD");
  return b ? b : "symphonyd";
}

}  // namespace

std::string make_temp_dir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + ".XXXXXX";
  char* d = ::mkdtemp(tmpl.data());
  if (d == nullptr) ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
  return tmpl;
}

void remove_tree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

DaemonProcess::DaemonProcess(DaemonOptions options) {
  own_dir_ = options.dir.empty();
  dir_ = own_dir_ ? make_temp_dir("symphony-it") : options.dir;
  std::filesystem::create_directories(dir_ + "/run");
  ::chmod((dir_ + "/run").c_str(), 0700);
  socket_ = dir_ + "/run/symphony/symphonyd.sock";
  for (std::size_t i = 0; i + 1 < options.args.size(); ++i) {
    if (options.args[i] == "--socket") socket_ = options.args[i + 1];
  }

  std::vector<std::string> argv = {binary(), "--user", "--log-target", "console",
                                   "--log-level", "debug", "--loop-backend",
                                   options.loop_backend};
  argv.insert(argv.end(), options.args.begin(), options.args.end());
  std::vector<std::string> env = {"XDG_RUNTIME_DIR=" + dir_ + "/run",
                                  "XDG_CONFIG_HOME=" + dir_ + "/config",
                                  "XDG_STATE_HOME=" + dir_ + "/state", "HOME=" + dir_,
                                  "PATH=/usr/bin:/bin"};
  env.insert(env.end(), options.env.begin(), options.env.end());
  std::string log = dir_ + "/daemon.log";

  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (options.dir.empty() ? O_TRUNC : O_APPEND), 0600);
    ::dup2(fd, STDERR_FILENO);
    ::dup2(fd, STDOUT_FILENO);
    // Tests block nothing, but gtest might; the daemon expects defaults.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (options.in_child) options.in_child();
    std::vector<char*> a, e;
    for (auto& s : argv) a.push_back(s.data());
    a.push_back(nullptr);
    // "LISTEN_PID=SELF" becomes this process's pid (socket-activation tests).
    for (auto& s : env) {
      if (s == "LISTEN_PID=SELF") s = "LISTEN_PID=" + std::to_string(::getpid());
      e.push_back(s.data());
    }
    e.push_back(nullptr);
    ::execve(a[0], a.data(), e.data());
    ::_exit(127);
  }
  pid_ = pid;
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (options.wait_until_serving) {
    EXPECT_TRUE(wait_until_serving(std::chrono::seconds(10))) << "symphonyd did not start:\n"
                                                              << this->log();
  }
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (pidfd_ >= 0) ::close(pidfd_);
  if (::testing::Test::HasFailure()) {
    std::cerr << "---- symphonyd log (" << dir_ << ") ----\n" << log() << "----\n";
  }
  if (own_dir_) remove_tree(dir_);
}

bool DaemonProcess::wait_until_serving(std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto c = ipc::Client::connect(socket_)) {
      if (c->hello("probe")) return true;
    }
    // Polling the socket is the only readiness signal a plain child gives.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

ipc::Client DaemonProcess::client(const std::string& name) const {
  auto c = ipc::Client::connect(socket_);
  if (!c) {
    ADD_FAILURE() << "connect " << socket_ << ": " << c.error().message();
    std::abort();
  }
  auto h = c->hello(name);
  EXPECT_TRUE(h) << (h ? "" : h.error().message());
  return std::move(*c);
}

void DaemonProcess::send_signal(int signo) const {
  if (pid_ > 0) ::kill(pid_, signo);
}

int DaemonProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  pollfd p{pidfd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return -1;
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string DaemonProcess::log() const {
  std::ifstream in(dir_ + "/daemon.log");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace symphony::testing
