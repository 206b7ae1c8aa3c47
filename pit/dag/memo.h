// Memoization for the DAG tracker: a step's cache key (SHA-256 over what
// determines its result) and the MemoCache the tracker consults when a step
// becomes ready. A hit lets the workflow skip the step with the cached
// outputs; the daemon backs the cache with the artifact store, the in-memory
// implementation here serves tests and single-process use.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "pit/digest.h"

namespace symphony::pit::dag {

// One output of a step: an artifact version and its content digest
// (the artifact store's name@version plus the blob's SHA-256).
struct OutputRef {
  std::string name;
  std::uint64_t version = 0;
  Digest digest;
  friend bool operator==(const OutputRef&, const OutputRef&) = default;
};

// What a step's result depends on. `canonical_params` are the parameters in
// a canonical byte form chosen by the caller (the Conductor encodes them as
// msgpack with map keys sorted); the tracker hashes them as opaque bytes.
struct MemoKeyInput {
  std::string extension_id;
  std::string extension_version;
  std::string capability;
  std::string canonical_params;
  // Positional: the digests of the inputs in the order the step consumes
  // them (the tracker lists upstream outputs first, then external inputs).
  std::vector<Digest> input_digests;
};

// The cache key, version 1 of the encoding (stable; docs/pit/dag.md):
//   SHA-256( "symphony-pit-dag-memo-v1"
//            || str(extension_id) || str(extension_version)
//            || str(capability) || str(canonical_params)
//            || u64le(n) || digest_1 (32 raw bytes) || … || digest_n )
// where str(s) = u64le(byte length of s) || bytes of s. Length prefixes make
// the encoding injective: no two different inputs hash the same bytes.
Digest memo_key(const MemoKeyInput& input);

// Maps a memo key to the outputs a previous run produced. Implementations
// that can fail (a database, the artifact store) report a failed lookup as a
// miss and a failed store as a no-op: a lost memo entry costs a re-run, never
// a wrong result. Called from the tracker's thread only.
class MemoCache {
 public:
  virtual ~MemoCache() = default;
  virtual std::optional<std::vector<OutputRef>> lookup(const Digest& key) = 0;
  virtual void store(const Digest& key, std::span<const OutputRef> outputs) = 0;
};

// A map in memory; lost at exit. Not thread-safe.
class InMemoryMemoCache final : public MemoCache {
 public:
  std::optional<std::vector<OutputRef>> lookup(const Digest& key) override;
  void store(const Digest& key, std::span<const OutputRef> outputs) override;
  std::size_t size() const { return entries_.size(); }

 private:
  std::unordered_map<Digest, std::vector<OutputRef>> entries_;
};

}  // namespace symphony::pit::dag
