// TorchScript modules loaded from files and kept between steps, so that a
// workflow which runs one model many times pays for torch::jit::load once.
// Entries are keyed by path and checked against the file on every lookup: a
// model rewritten on disk (new mtime, ctime, size or inode) is loaded afresh.
#pragma once

#include <cstddef>
#include <filesystem>
#include <list>
#include <memory>

#include "base/result.h"

namespace torch::jit {
struct Module;
}

namespace symphony::extensions::torchscript {

// Whether ModuleCache::load found the module already loaded.
enum class CacheHit : bool { no = false, yes = true };

struct LoadedModule {
  // In eval mode. Shared with the cache; stays valid after eviction.
  std::shared_ptr<torch::jit::Module> module;
  CacheHit hit = CacheHit::no;
};

// Not thread-safe: an extension instance runs one step at a time.
class ModuleCache {
 public:
  // Keeps at most `capacity` modules (at least 1), dropping the least
  // recently used first: models can be large, the instance's memory is not.
  explicit ModuleCache(std::size_t capacity = 4);
  ~ModuleCache();
  ModuleCache(const ModuleCache&) = delete;
  ModuleCache& operator=(const ModuleCache&) = delete;

  // The module saved (torch.jit.save) in the file at `path`. Errors, each
  // starting "model PATH": the errno of opening the file (ENOENT, EACCES, …);
  // EINVAL ": not a regular file"; EINVAL ": not a TorchScript module: why".
  Result<LoadedModule> load(const std::filesystem::path& path);

  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry;
  std::size_t capacity_;
  std::list<Entry> entries_;  // most recently used first
};

}  // namespace symphony::extensions::torchscript
