// The memo key encoding (version 1) and the in-memory memo cache.
#include "pit/dag/memo.h"

#include <array>

namespace symphony::pit::dag {
namespace {

constexpr std::string_view kMemoDomain = "symphony-pit-dag-memo-v1";

void put_u64(Hasher& h, std::uint64_t v) {
  std::array<char, 8> le{};
  for (std::size_t i = 0; i < le.size(); ++i) le[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  h.update(std::string_view(le.data(), le.size()));
}

void put_str(Hasher& h, std::string_view s) {
  put_u64(h, s.size());
  h.update(s);
}

}  // namespace

Digest memo_key(const MemoKeyInput& input) {
  Hasher h;
  h.update(kMemoDomain);
  put_str(h, input.extension_id);
  put_str(h, input.extension_version);
  put_str(h, input.capability);
  put_str(h, input.canonical_params);
  put_u64(h, input.input_digests.size());
  for (const Digest& d : input.input_digests) {
    h.update(std::as_bytes(std::span(d.bytes().data(), d.bytes().size())));
  }
  return h.finish();
}

std::optional<std::vector<OutputRef>> InMemoryMemoCache::lookup(const Digest& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

void InMemoryMemoCache::store(const Digest& key, std::span<const OutputRef> outputs) {
  entries_[key].assign(outputs.begin(), outputs.end());
}

}  // namespace symphony::pit::dag
