// The stale manager: moves artifact versions through the storage tiers as
// they age — active (the store's blobs) → archived (zstd files in an archive
// directory) → remote (a RemoteTier) → deleted — following a retention
// policy per artifact kind, never touching pinned or held versions, and
// cleans what crashed runs leave behind. Work comes in bounded slices so the
// daemon can interleave it with everything else.
//
// Every move is crash-safe in the same order: (1) write the new location
// completely and durably, (2) re-check that the version may still move, (3)
// record the new tier with ArtifactStore::set_tier() (durable), (4) remove
// the old bytes. A crash between steps leaves the old bytes, or both, never
// neither. Active bytes are the store's blobs (shared by digest): the stale
// manager never unlinks them; the store's gc reclaims a blob once no active
// version needs it.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "pit/artifacts/artifact_store.h"
#include "pit/stale/archive_format.h"
#include "pit/stale/leftovers.h"
#include "pit/stale/remote_tier.h"
#include "pit/stale/retention_policy.h"

namespace symphony::pit::stale {

// How much one run_slice() may do. At least one item is always attempted,
// and a move in progress is not interrupted (archiving a large artifact
// takes as long as compressing it), so the time bound is checked between
// items.
struct SliceBudget {
  std::size_t max_items = 64;
  std::chrono::milliseconds max_time{20};
};

// One step of one version's life: "report/x@3 active → archived, 1048576 bytes".
struct Move {
  ArtifactRef ref;
  std::string kind;
  Stage from = Stage::active;
  Stage to = Stage::archived;
  std::uint64_t bytes = 0;  // the version's (uncompressed) size
};
std::string to_string(const Move& move);

struct MoveFailure {
  Move move;
  std::string error;
};

struct SliceReport {
  std::vector<Move> moved;
  std::vector<MoveFailure> failed;  // retried after StaleOptions::retry_after
  std::size_t skipped = 0;          // pinned, held, moved or removed meanwhile
  bool more = false;                // due versions are left: schedule another slice
  std::chrono::microseconds took{0};
};

// The points between a move's steps, where tests inject a failure to prove
// that a crash there loses nothing.
enum class MoveStep {
  written,   // the new location is complete and durable; nothing recorded yet
  recorded,  // set_tier()/remove_version() done; the old bytes not yet removed
};

struct StaleOptions {
  std::vector<RetentionPolicy> policies;  // from retention_policies(); may be empty
  std::filesystem::path archive_dir;      // created if missing
  std::shared_ptr<RemoteTier> remote;     // null: no remote tier
  // The clock ages are measured against; null = system_clock::now.
  std::function<std::chrono::system_clock::time_point()> now;
  // How many candidates one look at a tier fetches (oldest first).
  std::size_t scan_window = 1024;
  int zstd_level = 3;
  // A version whose move failed is left alone this long before a retry.
  std::chrono::seconds retry_after{3600};
  // Tests: called between a move's steps; an error stops the move there, as
  // a crash would (nothing is undone). Null in production.
  std::function<Result<void>(MoveStep, const Move&)> fault;
};

struct LastSlice {
  std::chrono::system_clock::time_point at;
  std::size_t moved = 0;
  std::size_t failed = 0;
  bool more = false;
  std::chrono::microseconds took{0};
};

// Counters since open(), for `pit stats`.
struct StaleStats {
  std::uint64_t slices = 0;
  std::uint64_t archived = 0;     // versions moved into the archive
  std::uint64_t sent_remote = 0;  // versions moved into the remote tier
  std::uint64_t deleted = 0;
  std::uint64_t restored = 0;
  std::uint64_t failures = 0;
  std::uint64_t races = 0;              // moves skipped: pinned/held/moved meanwhile
  std::uint64_t bytes_archived = 0;     // compressed bytes written to the archive
  std::uint64_t bytes_sent_remote = 0;  // compressed bytes put to the remote tier
  std::uint64_t leftovers_removed = 0;
  std::uint64_t leftover_bytes_removed = 0;
  std::optional<LastSlice> last_slice;
};

// What the tiers hold now (counted, not remembered: survives restarts).
struct TierCensus {
  std::uint64_t active_versions = 0;  // the store's versions less the other tiers'
  std::uint64_t archived_versions = 0;
  std::uint64_t archived_bytes = 0;
  std::uint64_t remote_versions = 0;
  std::uint64_t remote_bytes = 0;
};

class StaleManager {
 public:
  // `store` must outlive the manager. Creates the archive directory.
  static Result<std::unique_ptr<StaleManager>> open(ArtifactStore& store, StaleOptions options);

  // Moves at most budget.max_items due versions (about budget.max_time of
  // work) one step each to where their policy says they belong, oldest
  // first. Blocks on disk I/O and the store's durable writes: call it from a
  // worker thread, not the event loop. An error return means a tier could
  // not be listed; a failing version is reported in `failed` and the slice
  // goes on.
  Result<SliceReport> run_slice(const SliceBudget& budget);

  // What run_slice() would move next (at most `limit` versions), changing
  // nothing.
  Result<std::vector<Move>> dry_run(std::size_t limit) const;

  // Reading back: writes the bytes of `ref` (any tier) to `dest`,
  // decompressing and verifying the digest; `dest` appears complete or not
  // at all. Leaves the version where it is.
  Result<void> read_to(const ArtifactRef& ref, const std::filesystem::path& dest) const;
  // Makes `ref` active again (same name and version) and removes its
  // archived or remote copy. When the store has already dropped the blob,
  // the bytes are put back through the store first (a put that briefly
  // creates, and then removes, one helper version of the name). Refused by
  // the store for a pinned version: unpin, restore, pin.
  Result<VersionInfo> restore(const ArtifactRef& ref);

  // clean_leftovers(options) plus archive files no version refers to (what a
  // crash between "record" and "remove old bytes" leaves); counted in stats.
  Result<LeftoverReport> clean_leftovers(const LeftoverOptions& options, DryRun dry_run);

  StaleStats stats() const;
  Result<TierCensus> census() const;

  // The archive file / remote key of a version: "<name>@<version>.zst",
  // each '/' of the name written as '%'.
  static std::string object_key(const ArtifactRef& ref);
  const std::filesystem::path& archive_dir() const { return options_.archive_dir; }

 private:
  struct Due {
    VersionInfo version;
    Stage to;
  };
  enum class Outcome { moved, skipped };

  StaleManager(ArtifactStore& store, StaleOptions options);
  std::chrono::system_clock::time_point now() const;
  HaveRemote have_remote() const { return options_.remote ? HaveRemote::yes : HaveRemote::no; }
  Result<std::vector<Due>> due(Tier tier) const;
  Result<bool> still_movable(const VersionInfo& v) const;
  Result<void> fault(MoveStep step, const Move& move) const;
  Result<Outcome> move(const Due& due, std::uint64_t* stored_bytes);
  Result<std::uint64_t> compress_to(const VersionInfo& v, const std::filesystem::path& dest) const;
  Result<void> stream(const VersionInfo& v, const ByteSink& sink) const;
  Result<void> remove_bytes(Tier tier, const std::string& location);

  ArtifactStore& store_;
  StaleOptions options_;
  // One move, restore or read at a time: they share the archive directory.
  mutable std::mutex work_mu_;
  // Versions whose move failed, and when to try again ("name@version").
  std::unordered_map<std::string, std::chrono::system_clock::time_point> retry_at_;
  mutable std::mutex stats_mu_;
  StaleStats stats_;
};

}  // namespace symphony::pit::stale
