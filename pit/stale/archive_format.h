// The archive tier's file format: one zstd file per artifact version. It
// opens with a zstd *skippable* frame (ignored by the plain `zstd -d` tool)
// that records what the file holds — "symphony-archive 1", the digest and
// name@version — followed by the version's bytes as ordinary zstd frames.
// Reading back always re-hashes the decompressed bytes and compares them with
// the digest the store recorded, so a corrupt archive is an error, never
// wrong data.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string>

#include "base/result.h"
#include "pit/digest.h"

namespace symphony::pit::stale {

// Receives decompressed bytes, in order.
using ByteSink = std::function<Result<void>(std::span<const std::byte>)>;

struct ArchiveHeader {
  Digest digest;     // of the uncompressed bytes
  std::string what;  // "name@version", for a human looking at the file
};

// Compresses everything readable from `in_fd` into `out_fd` (both owned by
// the caller) at zstd `level`. Returns the digest of what was read, which the
// caller compares with the store's: the archive is only recorded when they
// match. The header's digest is `header.digest`.
Result<Digest> write_archive(int in_fd, int out_fd, const ArchiveHeader& header, int level);

// Decompresses the archive readable from `in_fd` into `sink`, then checks
// that the bytes hash to `expected` (and that the header agrees). EBADMSG
// when the file is not an archive, is truncated or the digests differ; the
// sink may by then have seen bytes, so write to a temporary place.
Result<void> read_archive(int in_fd, const Digest& expected, const ByteSink& sink);

}  // namespace symphony::pit::stale
