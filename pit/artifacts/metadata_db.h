// The artifact store's metadata in SQLite (WAL, synchronous=FULL): blobs,
// names with their last assigned version, versions with their lineage. The
// store keeps all of it in memory as well; this class is the durable copy,
// read whole at open and written one transaction per group commit. Not
// thread-safe: the store serialises every call under its write lock.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "pit/artifacts/artifact_store.h"
#include "pit/digest.h"

namespace symphony::pit {

class MetadataDb {
 public:
  struct BlobRow {
    Digest digest;
    std::uint64_t size = 0;
    std::chrono::system_clock::time_point created;
  };
  struct NameRow {
    std::string name;
    std::uint64_t last_version = 0;
  };
  // What one group commit writes: new blobs, new versions (with their
  // resolved inputs), and the new last_version of each name touched.
  struct Batch {
    std::vector<BlobRow> blobs;
    std::vector<const VersionInfo*> versions;
    std::vector<NameRow> names;
  };

  // Opens or creates `path` and its schema. Errors name the path.
  static Result<MetadataDb> open(const std::filesystem::path& path);
  MetadataDb(MetadataDb&& other) noexcept;
  MetadataDb& operator=(MetadataDb&& other) noexcept;
  MetadataDb(const MetadataDb&) = delete;
  MetadataDb& operator=(const MetadataDb&) = delete;
  ~MetadataDb();

  // Reads everything, calling back once per row (blobs first, then names,
  // then versions with their inputs filled in).
  Result<void> load(const std::function<void(BlobRow)>& on_blob, const std::function<void(NameRow)>& on_name,
                    const std::function<void(VersionInfo)>& on_version);

  // One transaction; durable when it returns. On error nothing was written.
  Result<void> commit(const Batch& batch);
  Result<void> set_pinned(const ArtifactRef& ref, bool pinned);
  Result<void> set_tier(const ArtifactRef& ref, Tier tier, const std::string& location);
  Result<std::string> location(const ArtifactRef& ref);
  Result<void> remove_version(const ArtifactRef& ref);
  Result<void> remove_blobs(std::span<const Digest> digests);

 private:
  explicit MetadataDb(sqlite3* db) : db_(db) {}
  Result<void> exec(const char* sql);
  Error error(std::string_view what) const;
  // Runs `body` inside BEGIN IMMEDIATE … COMMIT, rolling back on error.
  Result<void> transaction(const std::function<Result<void>()>& body);

  sqlite3* db_ = nullptr;
};

}  // namespace symphony::pit
