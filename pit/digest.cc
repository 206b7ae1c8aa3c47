// SHA-256 through OpenSSL's EVP interface (one-shot and streamed).
#include "pit/digest.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <utility>

namespace symphony::pit {
namespace {

constexpr std::string_view kPrefix = "sha256:";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

struct Hasher::State {
  EVP_MD_CTX* ctx = nullptr;
  State() : ctx(EVP_MD_CTX_new()) {
    // Allocation failure of a few hundred bytes is not recoverable here.
    if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) std::abort();
  }
  ~State() { EVP_MD_CTX_free(ctx); }
};

Hasher::Hasher() : state_(std::make_unique<State>()) {}
Hasher::~Hasher() = default;
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;

void Hasher::update(std::span<const std::byte> data) {
  if (!data.empty()) EVP_DigestUpdate(state_->ctx, data.data(), data.size());
}

void Hasher::update(std::string_view text) {
  update(std::as_bytes(std::span(text.data(), text.size())));
}

Digest Hasher::finish() {
  std::array<std::uint8_t, Digest::kSize> out{};
  unsigned len = 0;
  EVP_DigestFinal_ex(state_->ctx, out.data(), &len);
  EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr);
  return Digest(out);
}

Digest Digest::of(std::span<const std::byte> data) {
  std::array<std::uint8_t, kSize> out{};
  unsigned len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return Digest(out);
}

Digest Digest::of(std::string_view text) { return of(std::as_bytes(std::span(text.data(), text.size()))); }

Result<Digest> Digest::parse(std::string_view text) {
  std::string_view hex = text;
  if (hex.starts_with(kPrefix)) {
    hex.remove_prefix(kPrefix.size());
  } else if (auto colon = hex.find(':'); colon != std::string_view::npos) {
    return Error::invalid("digest '" + std::string(text) + "': unsupported algorithm '" +
                          std::string(hex.substr(0, colon)) + "' (only sha256)");
  }
  if (hex.size() != 2 * kSize) {
    return Error::invalid("digest '" + std::string(text) + "': expected 64 hex digits after 'sha256:', got " +
                          std::to_string(hex.size()));
  }
  std::array<std::uint8_t, kSize> out{};
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = hex_value(hex[i]);
    int lo = hex_value(hex[i + 1]);
    if (hi < 0 || lo < 0) {
      std::size_t bad = hi < 0 ? i : i + 1;
      return Error::invalid("digest '" + std::string(text) + "': '" + std::string(1, hex[bad]) +
                            "' at hex digit " + std::to_string(bad + 1) + " is not a hex digit");
    }
    out[i / 2] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return Digest(out);
}

std::string Digest::hex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(2 * kSize, '0');
  for (std::size_t i = 0; i < kSize; ++i) {
    s[2 * i] = kDigits[bytes_[i] >> 4];
    s[2 * i + 1] = kDigits[bytes_[i] & 0xf];
  }
  return s;
}

std::string Digest::to_string() const { return std::string(kPrefix) + hex(); }

}  // namespace symphony::pit
