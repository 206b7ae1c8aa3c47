// RAII ownership of memory mappings (mmap/munmap), used for io_uring rings,
// shared-memory channels and mapped artifact reads.
#pragma once

#include <cstddef>
#include <span>
#include <utility>

#include "base/result.h"

namespace symphony {

class Mapping {
 public:
  Mapping() = default;
  Mapping(Mapping&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  Mapping& operator=(Mapping&& other) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { reset(); }

  // Maps `size` bytes of `fd` at `offset` (mmap(2) semantics for prot/flags).
  static Result<Mapping> map(int fd, std::size_t size, int prot, int flags, long offset = 0);
  // Anonymous private read-write memory.
  static Result<Mapping> anonymous(std::size_t size);

  std::byte* data() const { return static_cast<std::byte*>(data_); }
  std::size_t size() const { return size_; }
  std::span<std::byte> bytes() const { return {data(), size_}; }
  explicit operator bool() const { return data_ != nullptr; }

  void reset();

 private:
  Mapping(void* data, std::size_t size) : data_(data), size_(size) {}
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace symphony
