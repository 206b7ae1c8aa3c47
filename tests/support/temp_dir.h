// Test support: a scratch directory (mkdtemp) removed with its contents when
// it goes out of scope, and a count of the entries in a directory.
#pragma once

#include <stdlib.h>

#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace symphony::testing {

// A fresh directory <base>/<prefix>-XXXXXX (base is /tmp unless given, e.g.
// std::filesystem::temp_directory_path() to honour $TMPDIR), removed
// recursively by the destructor. Throws std::runtime_error if it cannot be
// created.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix, const std::filesystem::path& base = "/tmp") {
    std::string name = (base / (std::string(prefix) + "-XXXXXX")).string();
    if (::mkdtemp(name.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + name);
    path_ = name;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The number of entries directly in `dir` (0 if it cannot be read).
inline std::size_t count_entries(const std::filesystem::path& dir) {
  std::error_code ec;
  std::size_t n = 0;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

}  // namespace symphony::testing
