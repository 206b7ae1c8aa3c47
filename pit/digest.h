// Content digests for the Pit: SHA-256 (OpenSSL's EVP, the implementation
// Debian keeps patched), written as "sha256:<64 hex>" like OCI and Bazel's
// remote cache. The artifact store addresses blobs by it, the DAG tracker
// builds memoization keys from it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"

namespace symphony::pit {

class Digest {
 public:
  static constexpr std::size_t kSize = 32;

  Digest() = default;
  explicit Digest(const std::array<std::uint8_t, kSize>& bytes) : bytes_(bytes) {}

  // Parses "sha256:<64 lowercase or uppercase hex>" (or the bare 64 hex
  // digits). Errors say what is wrong: prefix, length, the offending char.
  static Result<Digest> parse(std::string_view text);
  // The digest of `data` in one call.
  static Digest of(std::span<const std::byte> data);
  static Digest of(std::string_view text);

  const std::array<std::uint8_t, kSize>& bytes() const { return bytes_; }
  std::string hex() const;        // 64 lowercase hex digits
  std::string to_string() const;  // "sha256:" + hex()

  friend bool operator==(const Digest&, const Digest&) = default;
  friend auto operator<=>(const Digest&, const Digest&) = default;

 private:
  std::array<std::uint8_t, kSize> bytes_{};
};

// Incremental hashing for streamed data. Not thread-safe; one per stream.
class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void update(std::span<const std::byte> data);
  void update(std::string_view text);
  // Returns the digest and resets the hasher for a new stream.
  Digest finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace symphony::pit

template <>
struct std::hash<symphony::pit::Digest> {
  std::size_t operator()(const symphony::pit::Digest& d) const noexcept {
    // SHA-256 output is uniformly distributed: its first word is a fine hash.
    std::size_t h;
    static_assert(sizeof(h) <= symphony::pit::Digest::kSize);
    __builtin_memcpy(&h, d.bytes().data(), sizeof(h));
    return h;
  }
};
