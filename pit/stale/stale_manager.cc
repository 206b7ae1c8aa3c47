// Tier moves, read-back and the counters behind `pit stats`. The order of the
// steps in move() is the crash-safety argument (see the header); keep it.
#include "pit/stale/stale_manager.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

#include "base/unique_fd.h"
#include "pit/stale/durable_file.h"

namespace symphony::pit::stale {
namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;

namespace {

Stage stage_of(Tier tier) {
  switch (tier) {
    case Tier::active: return Stage::active;
    case Tier::archived: return Stage::archived;
    case Tier::remote: return Stage::remote;
  }
  return Stage::active;
}

Tier tier_of(Stage stage) {
  return stage == Stage::remote ? Tier::remote
         : stage == Stage::archived ? Tier::archived
                                    : Tier::active;
}

ArtifactRef ref_of(const VersionInfo& v) { return ArtifactRef{v.name, v.version}; }

// "<name>@<version>.zst" back to the ref; nullopt for any other file.
std::optional<ArtifactRef> ref_of_key(std::string_view key) {
  if (!key.ends_with(".zst") || key.starts_with('.')) return std::nullopt;
  key.remove_suffix(4);
  auto at = key.rfind('@');
  if (at == std::string_view::npos) return std::nullopt;
  ArtifactRef ref;
  ref.name = std::string(key.substr(0, at));
  std::replace(ref.name.begin(), ref.name.end(), '%', '/');
  std::string_view digits = key.substr(at + 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ref.version);
  if (ec != std::errc() || end != digits.data() + digits.size() || ref.version == 0) {
    return std::nullopt;
  }
  return ref;
}

// Reads `fd` to the end into `sink`, checking the bytes hash to `expected`.
Result<void> stream_plain(int fd, const Digest& expected, const ByteSink& sink) {
  std::vector<std::byte> buf(1 << 16);
  Hasher hasher;
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("read blob");
    }
    if (n == 0) break;
    std::span<const std::byte> chunk(buf.data(), static_cast<std::size_t>(n));
    hasher.update(chunk);
    if (auto r = sink(chunk); !r) return r;
  }
  if (Digest actual = hasher.finish(); actual != expected) {
    return Error::described(EBADMSG, "blob hashes to " + actual.to_string() + ", expected " +
                                         expected.to_string());
  }
  return ok();
}

std::uint64_t size_of_file(const fs::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

// Removes a staging file when the scope ends, whatever happened.
struct StagingFile {
  fs::path path;
  ~StagingFile() {
    if (!path.empty()) ::unlink(path.c_str());
  }
};

}  // namespace

std::string to_string(const Move& m) {
  return m.ref.to_string() + " " + std::string(to_string(m.from)) + " -> " +
         std::string(to_string(m.to)) + ", " + std::to_string(m.bytes) + " bytes";
}

std::string StaleManager::object_key(const ArtifactRef& ref) {
  std::string name = ref.name;
  std::replace(name.begin(), name.end(), '/', '%');
  return name + "@" + std::to_string(ref.version) + ".zst";
}

StaleManager::StaleManager(ArtifactStore& store, StaleOptions options)
    : store_(store), options_(std::move(options)) {}

Result<std::unique_ptr<StaleManager>> StaleManager::open(ArtifactStore& store,
                                                         StaleOptions options) {
  if (options.archive_dir.empty()) return Error::invalid("stale manager: no archive directory");
  if (options.scan_window == 0) return Error::invalid("stale manager: scan_window is 0");
  std::error_code ec;
  fs::create_directories(options.archive_dir, ec);
  if (ec) return Error(ec.value(), "create archive directory " + options.archive_dir.string());
  return std::unique_ptr<StaleManager>(new StaleManager(store, std::move(options)));
}

Clock::time_point StaleManager::now() const {
  return options_.now ? options_.now() : Clock::now();
}

Result<void> StaleManager::fault(MoveStep step, const Move& move) const {
  return options_.fault ? options_.fault(step, move) : ok();
}

Result<std::vector<StaleManager::Due>> StaleManager::due(Tier tier) const {
  using std::chrono::days;
  // The youngest age at which any policy moves a version out of `tier`:
  // candidates older than that are fetched, then each is judged by its own
  // kind's policy.
  std::vector<RetentionPolicy> policies = options_.policies;
  policies.push_back(policy_for(options_.policies, "default"));
  std::optional<days> youngest;
  for (const auto& p : policies) {
    days leave = p.active_days;
    if (tier != Tier::active) leave += p.archive_days;
    if (tier == Tier::remote || (tier == Tier::archived && !options_.remote)) leave += p.remote_days;
    if (!youngest || leave < *youngest) youngest = leave;
  }
  auto at = now();
  auto listed = store_.candidates(tier, at - *youngest, options_.scan_window);
  if (!listed) return std::move(listed).error().wrap(std::string("list ") + std::string(pit::to_string(tier)) + " candidates");
  std::vector<Due> out;
  for (VersionInfo& v : *listed) {
    // Without a remote tier, remote bytes could be neither read nor removed.
    if (tier == Tier::remote && !options_.remote) continue;
    if (auto it = retry_at_.find(ref_of(v).to_string()); it != retry_at_.end() && at < it->second) {
      continue;
    }
    Stage target = stage_for(policy_for(options_.policies, v.kind), at - v.created, have_remote());
    if (target > stage_of(tier)) out.push_back(Due{std::move(v), target});
  }
  return out;
}

Result<bool> StaleManager::still_movable(const VersionInfo& v) const {
  auto current = store_.get(ref_of(v));
  if (!current) {
    if (current.error().code() == ENOENT) return false;
    return std::move(current).error();
  }
  if (current->pinned || current->tier != v.tier) return false;
  // Held blobs are only visible through candidates(), which leaves them out.
  auto listed = store_.candidates(v.tier, current->created + std::chrono::seconds(1),
                                  options_.scan_window);
  if (!listed) return std::move(listed).error();
  return std::any_of(listed->begin(), listed->end(), [&](const VersionInfo& c) {
    return c.name == v.name && c.version == v.version;
  });
}

Result<std::uint64_t> StaleManager::compress_to(const VersionInfo& v, const fs::path& dest) const {
  auto blob = store_.open_blob(v.digest);
  if (!blob) return std::move(blob).error().wrap("open blob of " + ref_of(v).to_string());
  auto written = write_file_durably(dest, [&](int fd) -> Result<void> {
    auto digest = write_archive(blob->get(), fd, {v.digest, ref_of(v).to_string()},
                                options_.zstd_level);
    if (!digest) return std::move(digest).error();
    if (*digest != v.digest) {
      return Error::described(EBADMSG, "blob of " + ref_of(v).to_string() + " hashes to " +
                                           digest->to_string() + ", expected " +
                                           v.digest.to_string());
    }
    return ok();
  });
  if (!written) return std::move(written).error();
  return size_of_file(dest);
}

Result<void> StaleManager::remove_bytes(Tier tier, const std::string& location) {
  if (location.empty()) return ok();
  if (tier == Tier::archived) return remove_durably(location);
  if (tier == Tier::remote && options_.remote) return options_.remote->remove(location);
  return ok();  // active bytes belong to the store (its gc)
}

Result<StaleManager::Outcome> StaleManager::move(const Due& due, std::uint64_t* stored_bytes) {
  const VersionInfo& v = due.version;
  const ArtifactRef ref = ref_of(v);
  const Move m{ref, v.kind, stage_of(v.tier), due.to, v.size};
  const std::string key = object_key(ref);
  *stored_bytes = 0;

  std::string old_location;
  if (v.tier != Tier::active) {
    auto loc = store_.tier_location(ref);
    if (!loc) return std::move(loc).error().wrap("locate " + ref.to_string());
    old_location = *loc;
  }

  if (due.to == Stage::deleted) {
    auto movable = still_movable(v);
    if (!movable) return std::move(movable).error();
    if (!*movable) return Outcome::skipped;
    if (auto r = store_.remove_version(ref); !r) return std::move(r).error();
    if (auto r = fault(MoveStep::recorded, m); !r) return r.error();
    if (auto r = remove_bytes(v.tier, old_location); !r) return r.error();
    return Outcome::moved;
  }

  // (1) The new location, complete and durable.
  std::string new_location;
  // Undoes (1) when the move stops before (3): the old bytes stay the truth.
  auto drop_new = [&] { (void)remove_bytes(tier_of(due.to), new_location); };
  if (due.to == Stage::archived) {
    fs::path path = options_.archive_dir / key;
    auto size = compress_to(v, path);
    if (!size) return std::move(size).error();
    new_location = path.string();
    *stored_bytes = *size;
  } else {  // remote
    fs::path source;
    StagingFile staging;
    if (v.tier == Tier::archived) {
      source = old_location;
    } else {
      staging.path = options_.archive_dir / temp_file_name();
      auto size = compress_to(v, staging.path);
      if (!size) return std::move(size).error();
      source = staging.path;
    }
    *stored_bytes = size_of_file(source);
    if (auto r = options_.remote->put(key, source); !r) return r.error();
    new_location = key;
  }
  if (auto r = fault(MoveStep::written, m); !r) return r.error();

  // (2) Pinned, held or moved by someone else meanwhile: leave it be.
  auto movable = still_movable(v);
  if (!movable || !*movable) {
    drop_new();
    if (!movable) return std::move(movable).error();
    return Outcome::skipped;
  }
  // (3) Record.
  if (auto r = store_.set_tier(ref, tier_of(due.to), new_location); !r) {
    drop_new();
    return std::move(r).error();
  }
  if (auto r = fault(MoveStep::recorded, m); !r) return r.error();
  // (4) The old bytes (a crash before this leaves an orphan that
  // clean_leftovers() finds, never a version without bytes).
  if (auto r = remove_bytes(v.tier, old_location); !r) return r.error();
  return Outcome::moved;
}

Result<SliceReport> StaleManager::run_slice(const SliceBudget& budget) {
  std::lock_guard lock(work_mu_);
  auto start = std::chrono::steady_clock::now();
  SliceReport report;
  std::size_t attempted = 0;
  StaleStats delta;
  for (Tier tier : {Tier::active, Tier::archived, Tier::remote}) {
    auto due_list = due(tier);
    if (!due_list) return std::move(due_list).error();
    for (const Due& d : *due_list) {
      bool out_of_budget = attempted >= std::max<std::size_t>(budget.max_items, 1) ||
                           (attempted > 0 && std::chrono::steady_clock::now() - start >= budget.max_time);
      if (out_of_budget) {
        report.more = true;
        break;
      }
      ++attempted;
      Move m{ref_of(d.version), d.version.kind, stage_of(d.version.tier), d.to, d.version.size};
      std::uint64_t stored = 0;
      auto outcome = move(d, &stored);
      if (!outcome) {
        retry_at_[m.ref.to_string()] = now() + options_.retry_after;
        report.failed.push_back({m, outcome.error().message()});
        ++delta.failures;
        continue;
      }
      if (*outcome == Outcome::skipped) {
        ++report.skipped;
        ++delta.races;
        continue;
      }
      retry_at_.erase(m.ref.to_string());
      if (m.to == Stage::archived) {
        ++delta.archived;
        delta.bytes_archived += stored;
      } else if (m.to == Stage::remote) {
        ++delta.sent_remote;
        delta.bytes_sent_remote += stored;
      } else {
        ++delta.deleted;
      }
      report.moved.push_back(std::move(m));
    }
    if (report.more) break;
  }
  report.took = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - start);

  std::lock_guard stats_lock(stats_mu_);
  ++stats_.slices;
  stats_.archived += delta.archived;
  stats_.sent_remote += delta.sent_remote;
  stats_.deleted += delta.deleted;
  stats_.failures += delta.failures;
  stats_.races += delta.races;
  stats_.bytes_archived += delta.bytes_archived;
  stats_.bytes_sent_remote += delta.bytes_sent_remote;
  stats_.last_slice = LastSlice{now(), report.moved.size(), report.failed.size(), report.more,
                                report.took};
  return report;
}

Result<std::vector<Move>> StaleManager::dry_run(std::size_t limit) const {
  std::lock_guard lock(work_mu_);
  std::vector<Move> out;
  for (Tier tier : {Tier::active, Tier::archived, Tier::remote}) {
    auto due_list = due(tier);
    if (!due_list) return std::move(due_list).error();
    for (const Due& d : *due_list) {
      if (out.size() >= limit) return out;
      out.push_back(Move{ref_of(d.version), d.version.kind, stage_of(d.version.tier), d.to,
                         d.version.size});
    }
  }
  return out;
}

Result<void> StaleManager::stream(const VersionInfo& v, const ByteSink& sink) const {
  const ArtifactRef ref = ref_of(v);
  if (v.tier == Tier::active) {
    auto blob = store_.open_blob(v.digest);
    if (!blob) return std::move(blob).error();
    return stream_plain(blob->get(), v.digest, sink);
  }
  auto loc = store_.tier_location(ref);
  if (!loc) return std::move(loc).error();
  StagingFile staging;
  fs::path file = *loc;
  if (v.tier == Tier::remote) {
    if (!options_.remote) return Error(ENOTSUP, ref.to_string() + " is remote, and there is no remote tier");
    staging.path = options_.archive_dir / temp_file_name();
    if (auto r = options_.remote->get(*loc, staging.path); !r) return r;
    file = staging.path;
  }
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno("open archive " + file.string());
  return read_archive(fd.get(), v.digest, sink);
}

Result<void> StaleManager::read_to(const ArtifactRef& ref, const fs::path& dest) const {
  std::lock_guard lock(work_mu_);
  auto v = store_.get(ref);
  if (!v) return std::move(v).error();
  auto r = write_file_durably(dest, [&](int fd) {
    return stream(*v, [fd](std::span<const std::byte> chunk) {
      return write_all(fd, chunk.data(), chunk.size(), "restored copy");
    });
  });
  if (!r) return std::move(r).error().wrap("read " + v->name + "@" + std::to_string(v->version));
  return ok();
}

Result<VersionInfo> StaleManager::restore(const ArtifactRef& ref) {
  std::lock_guard lock(work_mu_);
  auto v = store_.get(ref);
  if (!v) return std::move(v).error();
  if (v->tier == Tier::active) return v;
  const ArtifactRef exact = ref_of(*v);
  auto where = "restore " + exact.to_string();
  auto loc = store_.tier_location(exact);
  if (!loc) return std::move(loc).error().wrap(where);

  // The bytes must be in the store before the version says "active".
  std::optional<ArtifactRef> helper;
  if (!store_.find_blob(v->digest)) {
    auto writer = store_.begin_put();
    if (!writer) return std::move(writer).error().wrap(where);
    if (auto r = stream(*v, [&](std::span<const std::byte> c) { return (*writer)->write(c); }); !r) {
      return std::move(r).error().wrap(where);
    }
    PutOptions put{.name = v->name, .media_type = v->media_type, .kind = v->kind,
                   .producer = v->producer, .inputs = {}, .quality = std::nullopt, .scorer = {}};
    auto committed = (*writer)->commit(put);
    if (!committed) return std::move(committed).error().wrap(where);
    helper = ref_of(*committed);
  }
  if (auto r = store_.set_tier(exact, Tier::active, std::string()); !r) {
    if (helper) (void)store_.remove_version(*helper);
    return std::move(r).error().wrap(where);
  }
  // The helper version only carried the blob back; the restored one holds it now.
  if (helper) (void)store_.remove_version(*helper);
  if (auto r = remove_bytes(v->tier, *loc); !r) return std::move(r).error().wrap(where);
  {
    std::lock_guard stats_lock(stats_mu_);
    ++stats_.restored;
  }
  return store_.get(exact);
}

Result<LeftoverReport> StaleManager::clean_leftovers(const LeftoverOptions& options,
                                                     DryRun dry_run) {
  std::lock_guard lock(work_mu_);
  LeftoverOptions with_archive = options;
  // A crash mid-move leaves temporary files in the archive directory too.
  if (std::find(with_archive.temp_dirs.begin(), with_archive.temp_dirs.end(),
                options_.archive_dir) == with_archive.temp_dirs.end()) {
    with_archive.temp_dirs.push_back(options_.archive_dir);
  }
  auto report = stale::clean_leftovers(with_archive, dry_run);
  if (!report) return report;

  // Archive files no version records: left by a crash between recording a
  // move (or a delete) and removing the old bytes, or between writing an
  // archive and recording it.
  std::error_code ec;
  for (fs::directory_iterator it(options_.archive_dir, ec), end; !ec && it != end; it.increment(ec)) {
    auto ref = ref_of_key(it->path().filename().string());
    if (!ref) continue;
    auto v = store_.get(*ref);
    if (!v && v.error().code() != ENOENT) continue;  // unsure: keep
    if (v && v->tier == Tier::archived) {
      auto loc = store_.tier_location(*ref);
      if (!loc || *loc == it->path().string()) continue;
    }
    Leftover item{Leftover::Kind::archive_file, it->path(), size_of_file(it->path())};
    if (dry_run == DryRun::no) {
      if (auto r = remove_durably(it->path()); !r) {
        report->errors.push_back(r.error().message());
        continue;
      }
    }
    report->removed.push_back(std::move(item));
  }
  if (dry_run == DryRun::no) {
    std::lock_guard stats_lock(stats_mu_);
    for (const Leftover& l : report->removed) {
      ++stats_.leftovers_removed;
      stats_.leftover_bytes_removed += l.bytes;
    }
    stats_.leftovers_removed += static_cast<std::uint64_t>(report->cgroups_removed);
  }
  return report;
}

StaleStats StaleManager::stats() const {
  std::lock_guard lock(stats_mu_);
  return stats_;
}

Result<TierCensus> StaleManager::census() const {
  TierCensus c;
  std::error_code ec;
  for (fs::directory_iterator it(options_.archive_dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!ref_of_key(it->path().filename().string())) continue;
    ++c.archived_versions;
    c.archived_bytes += size_of_file(it->path());
  }
  if (ec) return Error(ec.value(), "list archive " + options_.archive_dir.string());
  if (options_.remote) {
    auto usage = options_.remote->usage();
    if (!usage) return std::move(usage).error();
    c.remote_versions = usage->objects;
    c.remote_bytes = usage->bytes;
  }
  std::uint64_t total = store_.stats().versions;
  std::uint64_t elsewhere = c.archived_versions + c.remote_versions;
  c.active_versions = total > elsewhere ? total - elsewhere : 0;
  return c;
}

}  // namespace symphony::pit::stale
