// Loading and caching of TorchScript modules (module_cache.h). The file is
// opened once and both its identity (fstat) and its bytes (pread, through a
// LibTorch read adapter) come from that descriptor, so the stamp stored with a
// module always describes the bytes it was loaded from.
#include "extensions/torchscript/module_cache.h"

#include <caffe2/serialize/read_adapter_interface.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>

#include "base/unique_fd.h"
#include "extensions/torchscript/torch_error.h"

namespace symphony::extensions::torchscript {
namespace {

// What identifies one version of a file. ctime is in it because mtime can be
// set back (cp -p, touch -d) while ctime cannot.
struct FileStamp {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  timespec mtime{};
  timespec ctime{};

  friend bool operator==(const FileStamp& a, const FileStamp& b) {
    return a.device == b.device && a.inode == b.inode && a.size == b.size &&
           a.mtime.tv_sec == b.mtime.tv_sec && a.mtime.tv_nsec == b.mtime.tv_nsec &&
           a.ctime.tv_sec == b.ctime.tv_sec && a.ctime.tv_nsec == b.ctime.tv_nsec;
  }
};

FileStamp stamp_of(const struct stat& st) {
  return FileStamp{st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
}

// LibTorch's archive reader over an open file, by pread.
class FdReadAdapter final : public caffe2::serialize::ReadAdapterInterface {
 public:
  FdReadAdapter(UniqueFd fd, std::size_t size) : fd_(std::move(fd)), size_(size) {}

  std::size_t size() const override { return size_; }

  // Reads up to `n` bytes at `pos`; fewer only at the end of the file or on an
  // I/O error, which the reader then reports as a truncated archive.
  std::size_t read(std::uint64_t pos, void* buf, std::size_t n,
                   const char* /*what*/) const override {
    std::size_t done = 0;
    while (done < n) {
      ssize_t got = ::pread(fd_.get(), static_cast<char*>(buf) + done, n - done,
                            static_cast<off_t>(pos + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) break;
      done += static_cast<std::size_t>(got);
    }
    return done;
  }

 private:
  UniqueFd fd_;
  std::size_t size_;
};

}  // namespace

struct ModuleCache::Entry {
  std::filesystem::path path;
  FileStamp stamp;
  std::shared_ptr<torch::jit::Module> module;
};

ModuleCache::ModuleCache(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 1)) {}

ModuleCache::~ModuleCache() = default;

Result<LoadedModule> ModuleCache::load(const std::filesystem::path& path) {
  std::string context = fmt::format("model {}", path.string());
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno(context);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno(context);
  if (!S_ISREG(st.st_mode)) return Error::invalid(context + ": not a regular file");
  FileStamp stamp = stamp_of(st);

  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [&](const Entry& e) { return e.path == path; });
  if (it != entries_.end()) {
    if (it->stamp == stamp) {
      entries_.splice(entries_.begin(), entries_, it);
      return LoadedModule{entries_.front().module, CacheHit::yes};
    }
    entries_.erase(
        it);  // a new version of the file: the old module goes now, before the new one loads
  }

  auto adapter =
      std::make_shared<FdReadAdapter>(std::move(fd), static_cast<std::size_t>(st.st_size));
  auto loaded = catch_torch(
      context + ": not a TorchScript module", [&]() -> Result<std::shared_ptr<torch::jit::Module>> {
        auto module = std::make_shared<torch::jit::Module>(torch::jit::load(adapter));
        module->eval();
        return module;
      });
  if (!loaded) return std::move(loaded).error();

  entries_.push_front(Entry{path, stamp, *loaded});
  while (entries_.size() > capacity_) entries_.pop_back();
  return LoadedModule{std::move(*loaded), CacheHit::no};
}

}  // namespace symphony::extensions::torchscript
