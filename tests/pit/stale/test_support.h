// Shared helpers of the stale manager's tests: a scratch directory, file
// I/O shortcuts and a pid that is certainly dead.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/support/temp_dir.h"

namespace symphony::pit::stale::testing {

// A scratch directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir : public ::symphony::testing::TempDir {
 public:
  TempDir()
      : ::symphony::testing::TempDir("symphony-stale", std::filesystem::temp_directory_path()) {}
};

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// A pid that belonged to a child which has exited and been reaped.
inline int dead_pid() {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

}  // namespace symphony::pit::stale::testing
