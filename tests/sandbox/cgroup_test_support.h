// Helpers shared by the cgroup and device-filter tests: ForkedChild, a child
// that waits until the test has put it in a cgroup, and ScratchSubtree, the
// per-test-process subtree in every hierarchy, removed however a test ends.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/unique_fd.h"
#include "sandbox/cgroup.h"

namespace symphony::sandbox::cgroup_testing {

// A forked child that waits at a pipe until release(), then runs its body
// (async-signal-safe calls only: it is a fork of a process with gtest and
// the sanitizers in it) and exits with what the body returns. A child still
// there when the helper goes away is killed and reaped.
class ForkedChild {
 public:
  // Forks; the child blocks until release(), then _exit(body()).
  // pid() is -1 when fork failed.
  template <class Body>
  static ForkedChild start(Body body) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return ForkedChild(-1, UniqueFd());
    pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::close(fds[1]);
      char c;
      while (::read(fds[0], &c, 1) < 0 && errno == EINTR) {
      }
      ::_exit(body());
    }
    ::close(fds[0]);
    return ForkedChild(pid, UniqueFd(fds[1]));
  }

  ForkedChild(ForkedChild&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)), gate_(std::move(other.gate_)) {}
  ForkedChild& operator=(ForkedChild&&) = delete;
  ~ForkedChild() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }

  pid_t pid() const { return pid_; }
  // Lets the body run. A byte rather than end-of-file: a later child
  // inherits this pipe's write end, which would hold end-of-file back.
  void release() {
    if (gate_) {
      while (::write(gate_.get(), "x", 1) < 0 && errno == EINTR) {
      }
    }
    gate_.reset();
  }
  // Reaps the child; returns its wait status (or -1).
  int wait() {
    int status = -1;
    if (pid_ <= 0) return status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }
  // The wait status once the child has exited, if it does within `limit`.
  std::optional<int> wait_for(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (pid_ > 0) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return status;
      }
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return std::nullopt;
  }

 private:
  ForkedChild(pid_t pid, UniqueFd gate) : pid_(pid), gate_(std::move(gate)) {}
  pid_t pid_;
  UniqueFd gate_;
};

inline std::string join_path(const std::string& a, const std::string& b) {
  if (b.empty() || b == "/") return a;
  return a + (b.front() == '/' ? "" : "/") + b;
}

// The pids in cgroup.procs of `dir` and below.
inline std::vector<int> pids_below(const std::string& dir) {
  std::vector<int> pids;
  std::ifstream procs(dir + "/cgroup.procs");
  for (int pid; procs >> pid;) pids.push_back(pid);
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (e->d_type != DT_DIR || name == "." || name == "..") continue;
      auto more = pids_below(dir + "/" + name);
      pids.insert(pids.end(), more.begin(), more.end());
    }
    ::closedir(d);
  }
  return pids;
}

// rmdir of a cgroup directory tree, deepest first, after killing what is in it.
inline void remove_cgroup_tree(const std::string& dir) {
  for (int i = 0; i < 200; ++i) {
    auto pids = pids_below(dir);
    if (pids.empty()) break;
    for (int pid : pids) {
      if (pid > 0 && pid != ::getpid()) ::kill(pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (DIR* d = ::opendir(dir.c_str())) {
    std::vector<std::string> children;
    while (const dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (e->d_type == DT_DIR && name != "." && name != "..") children.push_back(name);
    }
    ::closedir(d);
    for (const auto& c : children) remove_cgroup_tree(dir + "/" + c);
  }
  ::rmdir(dir.c_str());
}

// "symphony-test-<pid>" below our own group in every hierarchy of `host`:
// what CgroupOptions::subtree names in the tests. Removed on destruction,
// and on construction too (a crashed run whose pid we now have).
class ScratchSubtree {
 public:
  explicit ScratchSubtree(CgroupHost host)
      : host_(std::move(host)), name_("symphony-test-" + std::to_string(::getpid())) {
    remove();
  }
  ~ScratchSubtree() { remove(); }
  ScratchSubtree(const ScratchSubtree&) = delete;
  ScratchSubtree& operator=(const ScratchSubtree&) = delete;

  const std::string& name() const { return name_; }
  // The subtree's directory in the v2 hierarchy ("" key) or a v1 controller's.
  std::string base(const std::string& key) const {
    const std::string& mount = key.empty() ? host_.unified_mount : host_.v1_mounts.at(key);
    return join_path(join_path(mount, host_.self_paths.at(key)), name_);
  }
  void remove() const {
    if (!host_.unified_mount.empty()) remove_cgroup_tree(base(""));
    for (const auto& [controller, mount] : host_.v1_mounts) remove_cgroup_tree(base(controller));
  }

 private:
  CgroupHost host_;
  std::string name_;
};

inline bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace symphony::sandbox::cgroup_testing
