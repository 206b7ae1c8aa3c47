// The artifact store: users' results, content-addressed and versioned, and
// durable before acknowledged. Blobs are files under `objects/` named by their
// SHA-256 (written to `tmp/`, flushed, renamed, directory flushed), metadata
// lives in SQLite in WAL mode, and concurrent puts are group-committed so
// many share one flush. After a crash at any moment, every put that returned
// reads back byte-identical and no partial artifact is visible.
//
// Thread-safe: every method may be called from any thread. Writes (put,
// pin, tier changes, gc) block the calling thread until durable; the daemon
// calls them from worker threads, never from its event loop. The read-side
// lookups (`find_latest`, `find_blob`) are served from an in-memory index and
// cost tens of nanoseconds.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/mapping.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "pit/digest.h"

namespace symphony::pit {

// "NAME" or "NAME@VERSION". Names: 1–200 chars of [A-Za-z0-9._/-], starting
// with a letter or digit, no "..", no "//", not ending in "/".
struct ArtifactRef {
  std::string name;
  std::uint64_t version = 0;  // 0 = latest (in a query); ≥ 1 in stored data

  static Result<ArtifactRef> parse(std::string_view text);  // errors say what and where
  std::string to_string() const;                            // "name@3" or "name"
  friend bool operator==(const ArtifactRef&, const ArtifactRef&) = default;
};

// Checks a name against the rule above; the error says which character or
// rule is at fault.
Result<void> validate_artifact_name(std::string_view name);

struct Producer {
  std::string workflow;   // workflow id; empty for a put from the CLI
  std::string step;       // step id within the workflow
  std::string extension;  // "id@version" of the extension, or "symphonyctl"
  friend bool operator==(const Producer&, const Producer&) = default;
};

// Where a version's bytes live now (the stale manager moves them on).
enum class Tier { active, archived, remote };
std::string_view to_string(Tier tier);

struct VersionInfo {
  std::string name;
  std::uint64_t version = 0;  // 1, 2, 3… per name, assigned at commit
  Digest digest;
  std::uint64_t size = 0;
  std::string media_type;  // "application/octet-stream" unless given
  std::string kind;        // retention class for the stale manager; "default" unless given
  Producer producer;
  std::vector<ArtifactRef> inputs;  // lineage: the versions this one was made from
  std::optional<double> quality;    // in [0, 1]
  std::string scorer;               // who gave the quality score
  std::chrono::system_clock::time_point created;
  bool pinned = false;
  Tier tier = Tier::active;
};

struct PutOptions {
  std::string name;
  std::string media_type;
  std::string kind;
  Producer producer;
  std::vector<ArtifactRef> inputs;  // must name stored versions (version ≥ 1, or 0 = latest at commit)
  std::optional<double> quality;
  std::string scorer;
};

// One streamed put: write() any number of chunks (the bytes go to a
// temporary file, hashed on the way; nothing is held whole in memory), then
// commit() — which returns only when the blob and its metadata are on
// stable storage. Dropping a writer without commit() discards it. A writer
// must not outlive the store that made it.
class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  virtual Result<void> write(std::span<const std::byte> data) = 0;
  virtual std::uint64_t size() const = 0;
  virtual Result<VersionInfo> commit(const PutOptions& options) = 0;
};

// A read-only view of a whole blob, mapped (or empty for a zero-byte blob).
// Stays readable for the view's lifetime even if gc removes the blob file
// meanwhile: Linux keeps an unlinked file's pages alive while mapped.
struct BlobView {
  Digest digest;
  Mapping mapping;
  std::span<const std::byte> bytes() const { return {mapping.data(), mapping.size()}; }
};

struct BlobInfo {
  Digest digest;
  std::uint64_t size = 0;
  std::uint64_t versions = 0;  // how many versions point at it
};

struct GcReport {
  std::uint64_t blobs_removed = 0;
  std::uint64_t bytes_removed = 0;
  std::uint64_t blobs_kept_pinned = 0;  // named by a pinned version
  std::uint64_t blobs_kept_held = 0;    // held by a live workflow
  std::uint64_t blobs_kept_grace = 0;   // younger than the grace window
  std::vector<Digest> removed;          // (or: would be removed, in a dry run)
};

struct StoreStats {
  std::uint64_t names = 0;
  std::uint64_t versions = 0;
  std::uint64_t blobs = 0;
  std::uint64_t blob_bytes = 0;
  std::uint64_t puts = 0;            // since open
  std::uint64_t dedup_hits = 0;      // puts whose blob already existed
  std::uint64_t commit_batches = 0;  // group commits (puts / batches = batching factor)
  std::uint64_t pinned_versions = 0;
  std::uint64_t held_blobs = 0;
};

// The file-system calls the store makes, so tests can inject EIO, ENOSPC
// (and short writes) and prove the store fails the put cleanly and stays
// consistent. The default forwards to the kernel.
struct StoreIo {
  virtual ~StoreIo() = default;
  virtual ssize_t write(int fd, const void* buf, std::size_t len);
  virtual int fsync(int fd);
  virtual int fdatasync(int fd);
  virtual int renameat(int olddirfd, const char* oldpath, int newdirfd, const char* newpath);
  virtual int unlinkat(int dirfd, const char* path, int flags);
  virtual int openat(int dirfd, const char* path, int flags, unsigned mode);
  // Flushes the whole file system holding `fd`; a batch of new blobs is
  // flushed with one syncfs instead of one fdatasync each (see
  // StoreOptions::syncfs_threshold). Reports writeback errors (Linux ≥ 5.8).
  virtual int syncfs(int fd);
};

struct StoreOptions {
  std::filesystem::path root;  // created if missing: root/{objects,tmp}, root/meta.db
  // Group commit: a batch closes when this many puts wait or after this long.
  std::size_t max_batch = 256;
  std::chrono::microseconds max_batch_delay{200};
  // A batch with at least this many new blobs flushes them with one
  // syncfs(2) (one journal commit) rather than an fdatasync each; 0 = always
  // fdatasync each file (for a file system shared with heavy writers, whose
  // dirty data syncfs would flush too).
  std::size_t syncfs_threshold = 2;
  // gc never removes a blob younger than this (a put may be about to name it).
  std::chrono::seconds gc_grace{3600};
  std::uint64_t max_artifact_size = 64ull << 30;  // a put larger than this fails
  std::shared_ptr<StoreIo> io;                    // null = the kernel
};

class ArtifactStore {
 public:
  // Opens (or creates) the store. Recovery happens here: temporary files a
  // crash left in tmp/ are removed, and blob files no row refers to are
  // removed (they were never acknowledged). Errors name the path.
  static Result<std::unique_ptr<ArtifactStore>> open(StoreOptions options);
  virtual ~ArtifactStore() = default;

  // --- writes (durable before they return) ---
  virtual Result<std::unique_ptr<BlobWriter>> begin_put() = 0;
  // A whole small artifact in one call (begin_put + write + commit).
  virtual Result<VersionInfo> put(std::span<const std::byte> data, const PutOptions& options) = 0;
  virtual Result<void> pin(const ArtifactRef& ref) = 0;  // version 0 = latest
  virtual Result<void> unpin(const ArtifactRef& ref) = 0;
  // A live workflow holds the blobs it uses, so gc and the stale manager
  // leave them alone until it releases them (holds are not persisted: a
  // restart resumes workflows, which hold again).
  virtual void hold(std::string_view holder, std::span<const Digest> digests) = 0;
  virtual void release(std::string_view holder) = 0;
  // Removes blobs no version refers to that are not held and older than the
  // grace window; with `dry_run`, only reports what it would remove.
  virtual Result<GcReport> gc(bool dry_run) = 0;

  // --- queries ---
  virtual Result<VersionInfo> get(const ArtifactRef& ref) const = 0;  // version 0 = latest
  virtual Result<VersionInfo> best(std::string_view name) const = 0;  // highest quality, then newest
  virtual Result<std::vector<VersionInfo>> versions(std::string_view name) const = 0;  // oldest first
  // Latest version of every name, sorted by name; `prefix` filters.
  virtual Result<std::vector<VersionInfo>> list(std::string_view prefix = {}) const = 0;
  // The transitive inputs of a version, breadth first, each once.
  virtual Result<std::vector<VersionInfo>> lineage(const ArtifactRef& ref) const = 0;
  // Every version whose digest is `digest`.
  virtual Result<std::vector<VersionInfo>> by_digest(const Digest& digest) const = 0;

  // Hot-path lookups from the in-memory index (no SQLite, no allocation on
  // a hit beyond the shared_ptr copy). Null when absent.
  virtual std::shared_ptr<const VersionInfo> find_latest(std::string_view name) const = 0;
  virtual std::optional<BlobInfo> find_blob(const Digest& digest) const = 0;

  // --- reading bytes ---
  virtual Result<UniqueFd> open_blob(const Digest& digest) const = 0;  // O_RDONLY
  virtual Result<BlobView> map_blob(const Digest& digest) const = 0;

  // --- for the stale manager ---
  // Versions created before `cutoff` in `tier`, oldest first, at most
  // `limit` (a bounded slice of work). Pinned versions and versions whose
  // blob is held are left out.
  virtual Result<std::vector<VersionInfo>> candidates(Tier tier, std::chrono::system_clock::time_point cutoff,
                                                      std::size_t limit) const = 0;
  // Records that the version's bytes now live in `tier` at `location` (a
  // path the stale manager chose); durable before it returns. Refused for a
  // pinned version, and for one whose blob is held (a workflow is using it).
  virtual Result<void> set_tier(const ArtifactRef& ref, Tier tier, std::string location) = 0;
  virtual Result<std::string> tier_location(const ArtifactRef& ref) const = 0;
  // Deletes the version's metadata (its blob goes at the next gc when no
  // other version refers to it). Refused for a pinned or held version.
  virtual Result<void> remove_version(const ArtifactRef& ref) = 0;

  virtual StoreStats stats() const = 0;
  virtual const std::filesystem::path& root() const = 0;
};

}  // namespace symphony::pit
