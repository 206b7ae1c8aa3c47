// mmap/munmap behind Mapping.
#include "base/mapping.h"

#include <sys/mman.h>

#include <string>

namespace symphony {

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    reset();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Result<Mapping> Mapping::map(int fd, std::size_t size, int prot, int flags, long offset) {
  void* p = ::mmap(nullptr, size, prot, flags, fd, offset);
  if (p == MAP_FAILED) return Error::from_errno("mmap " + std::to_string(size) + " bytes");
  return Mapping(p, size);
}

Result<Mapping> Mapping::anonymous(std::size_t size) {
  return map(-1, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
}

void Mapping::reset() {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace symphony
