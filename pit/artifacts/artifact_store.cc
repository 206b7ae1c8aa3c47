// The artifact store: blob files under objects/, metadata in SQLite
// (metadata_db.h), an in-memory index for every query, and a committer
// thread that group-commits puts. docs/pit/artifacts.md explains the
// durability protocol and why it survives a crash at any moment.
#include "pit/artifacts/artifact_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "pit/artifacts/metadata_db.h"

namespace symphony::pit {
namespace {

using Clock = std::chrono::system_clock;

constexpr std::string_view kDefaultMediaType = "application/octet-stream";
constexpr std::string_view kDefaultKind = "default";
constexpr std::size_t kMaxProducerField = 1024;

// Heterogeneous lookup: a string_view key finds a std::string entry without
// building a string.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

struct NameEntry {
  std::uint64_t last_version = 0;  // highest ever assigned; survives removals so numbers never repeat
  std::vector<std::shared_ptr<const VersionInfo>> versions;  // ascending version
  // versions.back(), kept beside the key so find_latest touches one cache
  // line fewer; refreshed after every change to `versions`.
  std::shared_ptr<const VersionInfo> latest;
  void refresh_latest() { latest = versions.empty() ? nullptr : versions.back(); }
};

struct BlobEntry {
  std::uint64_t size = 0;
  Clock::time_point created;
  std::vector<std::shared_ptr<const VersionInfo>> users;  // the versions naming this blob
  // The file and its row exist. False once gc has removed the bytes of a
  // blob that only archived or remote versions still name (their bytes live
  // in the stale manager's tiers); the entry stays for their sake.
  bool present = true;
};

// Reads the names in a directory (without "." and "..").
Result<std::vector<std::string>> list_dir(int dirfd, const std::string& path) {
  int fd = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return Error::from_errno("dup " + path);
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    Error e = Error::from_errno("opendir " + path);
    ::close(fd);
    return e;
  }
  // The dup shares the offset with dirfd: start from the beginning.
  ::rewinddir(dir);
  std::vector<std::string> names;
  errno = 0;
  while (dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  int err = errno;
  ::closedir(dir);
  if (err != 0) return Error(err, "readdir " + path);
  return names;
}

// "1–3" for a contiguous run, else the list ("1, 3, 4"), shortened.
std::string describe_versions(const NameEntry& entry) {
  const auto& v = entry.versions;
  if (v.back()->version - v.front()->version + 1 == v.size()) {
    if (v.size() == 1) return "version " + std::to_string(v.front()->version);
    return "versions " + std::to_string(v.front()->version) + "–" + std::to_string(v.back()->version);
  }
  std::string out = "versions ";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i == 8 && v.size() > 10) {
      out += ", …, " + std::to_string(v.back()->version);
      break;
    }
    if (i > 0) out += ", ";
    out += std::to_string(v[i]->version);
  }
  return out;
}

Result<void> validate_put_options(const PutOptions& o) {
  if (auto r = validate_artifact_name(o.name); !r) return r;
  if (o.quality && !(*o.quality >= 0.0 && *o.quality <= 1.0)) {
    return Error::invalid("quality " + std::to_string(*o.quality) + " of '" + o.name + "' is outside [0, 1]");
  }
  if (!o.media_type.empty()) {
    auto slash = o.media_type.find('/');
    bool printable = std::all_of(o.media_type.begin(), o.media_type.end(),
                                 [](char c) { return c > 0x20 && c < 0x7f; });
    if (slash == std::string::npos || slash == 0 || slash + 1 == o.media_type.size() || !printable ||
        o.media_type.size() > 255) {
      return Error::invalid("media type '" + o.media_type + "': expected type/subtype (e.g. text/plain)");
    }
  }
  if (!o.kind.empty()) {
    for (std::size_t i = 0; i < o.kind.size(); ++i) {
      char c = o.kind[i];
      bool good = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '_' || c == '.';
      if (!good) {
        return Error::invalid("kind '" + o.kind + "': character " + std::to_string(i + 1) +
                              " is not allowed (allowed: A-Z a-z 0-9 . _ -)");
      }
    }
    if (o.kind.size() > 64) return Error::invalid("kind '" + o.kind + "' is longer than 64 characters");
  }
  for (const std::string* field : {&o.producer.workflow, &o.producer.step, &o.producer.extension, &o.scorer}) {
    if (field->size() > kMaxProducerField) {
      return Error::invalid("producer or scorer field of '" + o.name + "' is longer than " +
                            std::to_string(kMaxProducerField) + " bytes");
    }
  }
  for (const ArtifactRef& input : o.inputs) {
    if (auto r = validate_artifact_name(input.name); !r) return std::move(r).error().wrap("input of '" + o.name + "'");
  }
  return ok();
}

}  // namespace

class ArtifactStoreImpl;

// A put handed to the committer. It lives on the putting thread's stack
// until `done` is fulfilled; the committer reads it and fills `tmp_consumed`.
struct PendingPut {
  int fd = -1;
  std::string tmp_name;
  Digest digest;
  std::uint64_t size = 0;
  const PutOptions* options = nullptr;
  bool tmp_consumed = false;  // renamed into objects/ (nothing left in tmp/)
  std::promise<Result<VersionInfo>> done;
};

class StoreBlobWriter final : public BlobWriter {
 public:
  StoreBlobWriter(ArtifactStoreImpl& store, UniqueFd fd, std::string tmp_name)
      : store_(store), fd_(std::move(fd)), tmp_name_(std::move(tmp_name)) {}
  ~StoreBlobWriter() override { discard(); }

  Result<void> write(std::span<const std::byte> data) override;
  std::uint64_t size() const override { return size_; }
  Result<VersionInfo> commit(const PutOptions& options) override;

 private:
  void discard();
  std::string tmp_path() const;

  ArtifactStoreImpl& store_;
  UniqueFd fd_;
  std::string tmp_name_;
  Hasher hasher_;
  std::uint64_t size_ = 0;
  bool finished_ = false;  // committed, failed or discarded: no more writes
};

class ArtifactStoreImpl final : public ArtifactStore {
 public:
  ArtifactStoreImpl(StoreOptions options, std::shared_ptr<StoreIo> io, UniqueFd root, UniqueFd objects, UniqueFd tmp,
                    UniqueFd lock, MetadataDb db)
      : options_(std::move(options)),
        io_(std::move(io)),
        root_fd_(std::move(root)),
        objects_fd_(std::move(objects)),
        tmp_fd_(std::move(tmp)),
        lock_fd_(std::move(lock)),
        objects_path_((options_.root / "objects").string()),
        tmp_path_((options_.root / "tmp").string()),
        db_(std::move(db)) {}

  ~ArtifactStoreImpl() override {
    {
      std::lock_guard lock(queue_mu_);
      stopping_ = true;
    }
    queue_cv_.notify_one();
    if (committer_.joinable()) committer_.join();
  }

  // Open steps after the directories, lock and database exist.
  Result<void> load_index();
  Result<void> remove_orphan_blobs();
  void start_committer() { committer_ = std::thread([this] { run_committer(); }); }

  Result<std::unique_ptr<BlobWriter>> begin_put() override;
  Result<VersionInfo> put(std::span<const std::byte> data, const PutOptions& options) override;
  Result<void> pin(const ArtifactRef& ref) override { return set_pinned(ref, true); }
  Result<void> unpin(const ArtifactRef& ref) override { return set_pinned(ref, false); }
  void hold(std::string_view holder, std::span<const Digest> digests) override;
  void release(std::string_view holder) override;
  Result<GcReport> gc(bool dry_run) override;

  Result<VersionInfo> get(const ArtifactRef& ref) const override;
  Result<VersionInfo> best(std::string_view name) const override;
  Result<std::vector<VersionInfo>> versions(std::string_view name) const override;
  Result<std::vector<VersionInfo>> list(std::string_view prefix) const override;
  Result<std::vector<VersionInfo>> lineage(const ArtifactRef& ref) const override;
  Result<std::vector<VersionInfo>> by_digest(const Digest& digest) const override;

  std::shared_ptr<const VersionInfo> find_latest(std::string_view name) const override {
    std::shared_lock lock(index_mu_);
    auto it = names_.find(name);
    return it == names_.end() ? nullptr : it->second.latest;
  }
  std::optional<BlobInfo> find_blob(const Digest& digest) const override {
    std::shared_lock lock(index_mu_);
    auto it = blobs_.find(digest);
    if (it == blobs_.end() || !it->second.present) return std::nullopt;
    return BlobInfo{digest, it->second.size, it->second.users.size()};
  }

  Result<UniqueFd> open_blob(const Digest& digest) const override;
  Result<BlobView> map_blob(const Digest& digest) const override;

  Result<std::vector<VersionInfo>> candidates(Tier tier, Clock::time_point cutoff, std::size_t limit) const override;
  Result<void> set_tier(const ArtifactRef& ref, Tier tier, std::string location) override;
  Result<std::string> tier_location(const ArtifactRef& ref) const override;
  Result<void> remove_version(const ArtifactRef& ref) override;

  StoreStats stats() const override;
  const std::filesystem::path& root() const override { return options_.root; }

  // For StoreBlobWriter.
  StoreIo& io() const { return *io_; }
  int tmp_fd() const { return tmp_fd_.get(); }
  const std::string& tmp_path() const { return tmp_path_; }
  std::uint64_t max_artifact_size() const { return options_.max_artifact_size; }
  // Queues a finished blob for the next group commit and waits until it is
  // durable (or failed).
  Result<VersionInfo> submit(PendingPut& put);

 private:
  void run_committer();
  void commit_batch(std::vector<PendingPut*>& batch);

  // Index lookups with the store's error messages. The caller holds
  // index_mu_ (shared or unique) or write_mu_ (all index writers hold it).
  Result<std::shared_ptr<const VersionInfo>> lookup(const ArtifactRef& ref) const;
  const NameEntry* name_entry(std::string_view name) const {
    auto it = names_.find(name);
    return it == names_.end() || it->second.versions.empty() ? nullptr : &it->second;
  }
  // Swaps `old` for `updated` in both maps; caller holds write_mu_ and index_mu_ unique.
  void replace_version(const std::shared_ptr<const VersionInfo>& old, std::shared_ptr<const VersionInfo> updated);
  Result<void> set_pinned(const ArtifactRef& ref, bool pinned);
  // The holder of `digest`, if any.
  std::optional<std::string> holder_of(const Digest& digest) const;
  std::string object_path(const Digest& d) const { return objects_path_ + "/" + d.hex(); }

  const StoreOptions options_;
  const std::shared_ptr<StoreIo> io_;
  UniqueFd root_fd_, objects_fd_, tmp_fd_, lock_fd_;
  const std::string objects_path_, tmp_path_;

  // Serialises every change to metadata (group commits, pins, tiers, gc) and
  // owns the database connection. Index writers hold it, so a holder may
  // read the index without index_mu_.
  mutable std::mutex write_mu_;
  mutable MetadataDb db_;

  mutable std::shared_mutex index_mu_;
  std::unordered_map<std::string, NameEntry, StringHash, std::equal_to<>> names_;
  std::unordered_map<Digest, BlobEntry> blobs_;

  mutable std::mutex holds_mu_;
  std::unordered_map<std::string, std::vector<Digest>, StringHash, std::equal_to<>> holds_;
  std::unordered_map<Digest, std::uint32_t> held_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<PendingPut*> queue_;
  std::chrono::steady_clock::time_point first_queued_;
  bool stopping_ = false;
  std::thread committer_;

  std::atomic<std::uint64_t> tmp_counter_{0};
  std::atomic<std::uint64_t> puts_{0};
  std::atomic<std::uint64_t> dedup_hits_{0};
  std::atomic<std::uint64_t> batches_{0};
};

// ---------------------------------------------------------------------------
// Writing

std::string StoreBlobWriter::tmp_path() const { return store_.tmp_path() + "/" + tmp_name_; }

void StoreBlobWriter::discard() {
  if (!fd_) return;
  fd_.reset();
  store_.io().unlinkat(store_.tmp_fd(), tmp_name_.c_str(), 0);  // a leftover goes at the next open
  finished_ = true;
}

Result<void> StoreBlobWriter::write(std::span<const std::byte> data) {
  if (finished_) return Error::invalid("blob writer is finished (committed or failed); start a new put");
  if (data.size() > store_.max_artifact_size() - size_) {
    discard();
    return Error::described(EFBIG, "artifact is larger than max_artifact_size (" +
                                       std::to_string(store_.max_artifact_size()) + " bytes)");
  }
  hasher_.update(data);
  const std::byte* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    ssize_t n = store_.io().write(fd_.get(), p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Error e = n < 0 ? Error::from_errno("write " + tmp_path())
                      : Error::described(EIO, "write " + tmp_path() + ": the kernel accepted 0 of " +
                                                  std::to_string(left) + " bytes");
      discard();
      return e;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  size_ += data.size();
  return ok();
}

Result<VersionInfo> StoreBlobWriter::commit(const PutOptions& options) {
  if (finished_) return Error::invalid("blob writer is finished (committed or failed); start a new put");
  if (auto valid = validate_put_options(options); !valid) {
    discard();
    return std::move(valid).error();
  }
  PendingPut pending;
  pending.fd = fd_.get();
  pending.tmp_name = tmp_name_;
  pending.digest = hasher_.finish();
  pending.size = size_;
  pending.options = &options;
  auto result = store_.submit(pending);
  finished_ = true;
  if (pending.tmp_consumed) {
    fd_.reset();
  } else {
    discard();
  }
  if (!result) return std::move(result).error().wrap("put '" + options.name + "'");
  return result;
}

Result<std::unique_ptr<BlobWriter>> ArtifactStoreImpl::begin_put() {
  std::string name = "put-" + std::to_string(::getpid()) + "-" + std::to_string(tmp_counter_.fetch_add(1));
  int fd = io_->openat(tmp_fd_.get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (fd < 0) return Error::from_errno("create " + tmp_path_ + "/" + name);
  return std::unique_ptr<BlobWriter>(std::make_unique<StoreBlobWriter>(*this, UniqueFd(fd), std::move(name)));
}

Result<VersionInfo> ArtifactStoreImpl::put(std::span<const std::byte> data, const PutOptions& options) {
  if (data.size() > options_.max_artifact_size) {
    return Error::described(EFBIG, "put '" + options.name + "': " + std::to_string(data.size()) +
                                       " bytes is more than max_artifact_size (" +
                                       std::to_string(options_.max_artifact_size) + " bytes)");
  }
  if (auto valid = validate_put_options(options); !valid) return std::move(valid).error();
  auto writer = begin_put();
  if (!writer) return std::move(writer).error().wrap("put '" + options.name + "'");
  if (auto w = (*writer)->write(data); !w) return std::move(w).error().wrap("put '" + options.name + "'");
  return (*writer)->commit(options);
}

Result<VersionInfo> ArtifactStoreImpl::submit(PendingPut& put) {
  auto future = put.done.get_future();
  {
    std::lock_guard lock(queue_mu_);
    if (queue_.empty()) first_queued_ = std::chrono::steady_clock::now();
    queue_.push_back(&put);
    // The committer waits for the first put, then for a full batch.
    if (queue_.size() == 1 || queue_.size() >= options_.max_batch) queue_cv_.notify_one();
  }
  return future.get();
}

void ArtifactStoreImpl::run_committer() {
  const std::size_t max_batch = std::max<std::size_t>(options_.max_batch, 1);
  std::vector<PendingPut*> batch;
  std::unique_lock lock(queue_mu_);
  for (;;) {
    queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    // Puts that arrived while the last batch was flushing are committed at
    // once (their delay has passed); a lone put waits up to max_batch_delay
    // for company.
    if (queue_.size() < max_batch && options_.max_batch_delay.count() > 0) {
      queue_cv_.wait_until(lock, first_queued_ + options_.max_batch_delay,
                           [&] { return stopping_ || queue_.size() >= max_batch; });
    }
    std::size_t n = std::min(queue_.size(), max_batch);
    batch.assign(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    // Puts left over (more than max_batch waited) keep their arrival time:
    // they have waited already and go in the next batch at once.
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    lock.unlock();
    commit_batch(batch);
    lock.lock();
  }
}

// One group commit: check each put against the index; flush the new blobs
// (an fdatasync each), rename them into objects/ and fsync objects/ once —
// or, for a batch of syncfs_threshold new blobs or more, rename them and
// flush data and names with one syncfs; then write all rows in one SQLite
// transaction, publish to the index, wake every waiter. A failure in a step shared by the batch fails
// every put that depends on it; nothing of a failed put stays visible.
void ArtifactStoreImpl::commit_batch(std::vector<PendingPut*>& batch) {
  std::lock_guard write_lock(write_mu_);
  const auto now = Clock::now();

  // A blob new to the store, written by its first put in the batch.
  struct NewBlob {
    PendingPut* owner;
    std::optional<Error> error;
    bool renamed = false;
  };
  std::vector<NewBlob> new_blobs;
  std::unordered_map<Digest, std::size_t> new_blob_of;
  std::vector<std::optional<Error>> errors(batch.size());
  std::vector<std::optional<std::size_t>> blob_of(batch.size());  // index into new_blobs; none = already stored
  std::vector<std::vector<ArtifactRef>> inputs(batch.size());

  // 1. Inputs must name acknowledged versions; "latest" resolves now.
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const PutOptions& o = *batch[i]->options;
    for (const ArtifactRef& ref : o.inputs) {
      auto found = lookup(ref);
      if (!found) {
        errors[i] = std::move(found).error().wrap("input '" + ref.to_string() + "'");
        break;
      }
      inputs[i].push_back({ref.name, (*found)->version});
    }
    if (errors[i]) continue;
    const Digest& d = batch[i]->digest;
    if (auto b = blobs_.find(d); b != blobs_.end() && b->second.present) continue;
    auto [it, added] = new_blob_of.try_emplace(d, new_blobs.size());
    if (added) new_blobs.push_back({batch[i], std::nullopt});
    blob_of[i] = it->second;
  }

  // 2. Flush the new blobs' data. With syncfs, one flush after the renames
  // (step 3) covers the data and the new names together: a crash before it
  // leaves files in objects/ that no row names, which open() removes, and no
  // row is written before it succeeds.
  const bool one_syncfs = options_.syncfs_threshold != 0 && new_blobs.size() >= options_.syncfs_threshold;
  if (!new_blobs.empty()) {
    if (one_syncfs) {
      // Flushed below, after the renames.
    } else {
      for (NewBlob& b : new_blobs) {
        if (io_->fdatasync(b.owner->fd) != 0) b.error = Error::from_errno("fdatasync " + tmp_path_ + "/" + b.owner->tmp_name);
      }
    }
  }

  // 3. Rename into objects/, then make the renames durable with one fsync.
  bool any_renamed = false;
  for (NewBlob& b : new_blobs) {
    if (b.error) continue;
    const std::string hex = b.owner->digest.hex();
    if (io_->renameat(tmp_fd_.get(), b.owner->tmp_name.c_str(), objects_fd_.get(), hex.c_str()) != 0) {
      b.error = Error::from_errno("rename " + tmp_path_ + "/" + b.owner->tmp_name + " to " + objects_path_ + "/" + hex);
      continue;
    }
    b.renamed = true;
    b.owner->tmp_consumed = true;
    any_renamed = true;
  }
  auto unlink_renamed = [&] {
    for (NewBlob& b : new_blobs) {
      if (!b.renamed) continue;
      // Best effort: a file left behind has no row and goes at the next open or gc.
      io_->unlinkat(objects_fd_.get(), b.owner->digest.hex().c_str(), 0);
      b.renamed = false;
    }
  };
  if (any_renamed && one_syncfs && io_->syncfs(objects_fd_.get()) != 0) {
    Error e = Error::from_errno("syncfs " + objects_path_ + " (flushing " + std::to_string(new_blobs.size()) +
                                " new blobs and their names)");
    for (NewBlob& b : new_blobs) {
      if (b.renamed) b.error = e;
    }
    unlink_renamed();
  } else if (any_renamed && !one_syncfs && io_->fsync(objects_fd_.get()) != 0) {
    Error e = Error::from_errno("fsync " + objects_path_);
    for (NewBlob& b : new_blobs) {
      if (b.renamed) b.error = e;
    }
    unlink_renamed();
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (!errors[i] && blob_of[i] && new_blobs[*blob_of[i]].error) errors[i] = new_blobs[*blob_of[i]].error;
  }

  // 4. Versions are numbered now, in batch order, so a failed put leaves no gap.
  std::unordered_map<std::string_view, std::uint64_t> next_version;
  std::vector<std::shared_ptr<VersionInfo>> made(batch.size());
  MetadataDb::Batch rows;
  for (NewBlob& b : new_blobs) {
    if (!b.error) rows.blobs.push_back({b.owner->digest, b.owner->size, now});
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (errors[i]) continue;
    const PutOptions& o = *batch[i]->options;
    auto [it, added] = next_version.try_emplace(o.name, 0);
    if (added) {
      auto entry = names_.find(o.name);
      it->second = entry == names_.end() ? 0 : entry->second.last_version;
    }
    auto info = std::make_shared<VersionInfo>();
    info->name = o.name;
    info->version = ++it->second;
    info->digest = batch[i]->digest;
    info->size = batch[i]->size;
    info->media_type = o.media_type.empty() ? std::string(kDefaultMediaType) : o.media_type;
    info->kind = o.kind.empty() ? std::string(kDefaultKind) : o.kind;
    info->producer = o.producer;
    info->inputs = std::move(inputs[i]);
    info->quality = o.quality;
    info->scorer = o.scorer;
    info->created = now;
    rows.versions.push_back(info.get());
    made[i] = std::move(info);
  }
  for (const auto& [name, last] : next_version) rows.names.push_back({std::string(name), last});

  // 5. One transaction for the batch; then publish.
  if (!rows.versions.empty()) {
    if (auto committed = db_.commit(rows); !committed) {
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (!errors[i]) errors[i] = committed.error();
      }
      unlink_renamed();
    } else {
      std::unique_lock index_lock(index_mu_);
      for (const MetadataDb::BlobRow& b : rows.blobs) {
        // Keep the users of an entry whose bytes gc had removed.
        BlobEntry& e = blobs_[b.digest];
        e.size = b.size;
        e.created = b.created;
        e.present = true;
      }
      for (auto& info : made) {
        if (!info) continue;
        NameEntry& entry = names_[info->name];
        entry.last_version = info->version;
        entry.versions.push_back(info);
        entry.refresh_latest();
        blobs_[info->digest].users.push_back(info);
      }
    }
  }
  batches_.fetch_add(1, std::memory_order_relaxed);

  // 6. Wake every waiter.
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (errors[i]) {
      batch[i]->done.set_value(std::move(*errors[i]));
      continue;
    }
    puts_.fetch_add(1, std::memory_order_relaxed);
    bool wrote_blob = blob_of[i] && new_blobs[*blob_of[i]].owner == batch[i];
    if (!wrote_blob) dedup_hits_.fetch_add(1, std::memory_order_relaxed);
    batch[i]->done.set_value(VersionInfo(*made[i]));
  }
}

// ---------------------------------------------------------------------------
// Pins, holds, tiers, removal, gc

Result<void> ArtifactStoreImpl::set_pinned(const ArtifactRef& ref, bool pinned) {
  if (auto r = validate_artifact_name(ref.name); !r) return r;
  std::lock_guard write_lock(write_mu_);
  auto found = lookup(ref);
  if (!found) return std::move(found).error();
  std::shared_ptr<const VersionInfo> old = *found;
  if (old->pinned == pinned) return ok();
  ArtifactRef exact{old->name, old->version};
  if (auto r = db_.set_pinned(exact, pinned); !r) return std::move(r).error();
  auto updated = std::make_shared<VersionInfo>(*old);
  updated->pinned = pinned;
  std::unique_lock index_lock(index_mu_);
  replace_version(old, std::move(updated));
  return ok();
}

void ArtifactStoreImpl::replace_version(const std::shared_ptr<const VersionInfo>& old,
                                        std::shared_ptr<const VersionInfo> updated) {
  NameEntry& entry = names_.find(old->name)->second;
  std::replace(entry.versions.begin(), entry.versions.end(), old, updated);
  entry.refresh_latest();
  auto& users = blobs_.find(old->digest)->second.users;
  std::replace(users.begin(), users.end(), old, updated);
}

void ArtifactStoreImpl::hold(std::string_view holder, std::span<const Digest> digests) {
  std::lock_guard lock(holds_mu_);
  auto [it, added] = holds_.try_emplace(std::string(holder));
  for (const Digest& d : digests) {
    it->second.push_back(d);
    ++held_[d];
  }
}

void ArtifactStoreImpl::release(std::string_view holder) {
  std::lock_guard lock(holds_mu_);
  auto it = holds_.find(holder);
  if (it == holds_.end()) return;
  for (const Digest& d : it->second) {
    auto h = held_.find(d);
    if (--h->second == 0) held_.erase(h);
  }
  holds_.erase(it);
}

std::optional<std::string> ArtifactStoreImpl::holder_of(const Digest& digest) const {
  std::lock_guard lock(holds_mu_);
  if (!held_.contains(digest)) return std::nullopt;
  for (const auto& [holder, digests] : holds_) {
    if (std::find(digests.begin(), digests.end(), digest) != digests.end()) return holder;
  }
  return std::nullopt;
}

Result<void> ArtifactStoreImpl::set_tier(const ArtifactRef& ref, Tier tier, std::string location) {
  if (auto r = validate_artifact_name(ref.name); !r) return r;
  std::lock_guard write_lock(write_mu_);
  auto found = lookup(ref);
  if (!found) return std::move(found).error();
  std::shared_ptr<const VersionInfo> old = *found;
  ArtifactRef exact{old->name, old->version};
  if (old->pinned) return Error::described(EPERM, "'" + exact.to_string() + "' is pinned; unpin it before moving it");
  if (auto holder = holder_of(old->digest)) {
    return Error::described(EBUSY, "'" + exact.to_string() + "' is held by '" + *holder + "'; it cannot move now");
  }
  if (tier == Tier::active) location.clear();
  if (auto r = db_.set_tier(exact, tier, location); !r) return std::move(r).error();
  auto updated = std::make_shared<VersionInfo>(*old);
  updated->tier = tier;
  std::unique_lock index_lock(index_mu_);
  replace_version(old, std::move(updated));
  return ok();
}

Result<std::string> ArtifactStoreImpl::tier_location(const ArtifactRef& ref) const {
  if (auto r = validate_artifact_name(ref.name); !r) return std::move(r).error();
  std::lock_guard write_lock(write_mu_);
  auto found = lookup(ref);
  if (!found) return std::move(found).error();
  if ((*found)->tier == Tier::active) return object_path((*found)->digest);
  return db_.location({(*found)->name, (*found)->version});
}

Result<void> ArtifactStoreImpl::remove_version(const ArtifactRef& ref) {
  if (auto r = validate_artifact_name(ref.name); !r) return r;
  if (ref.version == 0) return Error::invalid("remove '" + ref.name + "': name the version to remove (name@N)");
  std::lock_guard write_lock(write_mu_);
  auto found = lookup(ref);
  if (!found) return std::move(found).error();
  std::shared_ptr<const VersionInfo> old = *found;
  if (old->pinned) return Error::described(EPERM, "'" + ref.to_string() + "' is pinned; unpin it before removing it");
  if (auto holder = holder_of(old->digest)) {
    return Error::described(EBUSY, "'" + ref.to_string() + "' is held by '" + *holder + "'; it cannot be removed now");
  }
  if (auto r = db_.remove_version(ref); !r) return std::move(r).error();
  std::unique_lock index_lock(index_mu_);
  NameEntry& entry = names_.find(ref.name)->second;
  entry.versions.erase(std::find(entry.versions.begin(), entry.versions.end(), old));
  entry.refresh_latest();
  auto& users = blobs_.find(old->digest)->second.users;
  users.erase(std::find(users.begin(), users.end(), old));
  return ok();
}

Result<GcReport> ArtifactStoreImpl::gc(bool dry_run) {
  std::lock_guard write_lock(write_mu_);
  const auto now = Clock::now();
  GcReport report;
  std::vector<Digest> doomed;
  for (const auto& [digest, blob] : blobs_) {
    if (!blob.present) continue;
    // Bytes are needed while a version in the active tier names them; a
    // version the stale manager archived or sent away has its own copy.
    bool active = std::any_of(blob.users.begin(), blob.users.end(),
                              [](const auto& v) { return v->tier == Tier::active; });
    if (active) {
      bool pinned = std::any_of(blob.users.begin(), blob.users.end(), [](const auto& v) { return v->pinned; });
      if (pinned) ++report.blobs_kept_pinned;
      continue;
    }
    if (holder_of(digest)) {
      ++report.blobs_kept_held;
    } else if (now - blob.created < options_.gc_grace) {
      ++report.blobs_kept_grace;
    } else {
      doomed.push_back(digest);
    }
  }
  // Files no row names (a failed unlink after a failed batch): never
  // acknowledged, and no batch is in flight while write_mu_ is held.
  std::vector<Digest> stray;
  if (auto names = list_dir(objects_fd_.get(), objects_path_)) {
    for (const std::string& name : *names) {
      auto d = Digest::parse(name);
      if (!d || d->hex() != name) continue;
      auto b = blobs_.find(*d);
      if (b == blobs_.end() || !b->second.present) stray.push_back(*d);
    }
  }
  std::sort(doomed.begin(), doomed.end());
  if (dry_run) {
    for (const Digest& d : doomed) {
      report.bytes_removed += blobs_.find(d)->second.size;
      ++report.blobs_removed;
    }
    report.removed = std::move(doomed);
    return report;
  }
  // Rows first: a crash between leaves a file without a row, which the next
  // open removes; the reverse would leave a row without its bytes.
  if (auto r = db_.remove_blobs(doomed); !r) return std::move(r).error().wrap("gc");
  {
    std::unique_lock index_lock(index_mu_);
    for (const Digest& d : doomed) {
      auto b = blobs_.find(d);
      report.bytes_removed += b->second.size;
      if (b->second.users.empty()) {
        blobs_.erase(b);
      } else {
        b->second.present = false;
      }
    }
  }
  for (const Digest& d : doomed) {
    // A failed unlink leaves a stray file for the next gc or open.
    if (io_->unlinkat(objects_fd_.get(), d.hex().c_str(), 0) == 0 || errno == ENOENT) ++report.blobs_removed;
  }
  for (const Digest& d : stray) io_->unlinkat(objects_fd_.get(), d.hex().c_str(), 0);
  report.removed = std::move(doomed);
  return report;
}

// ---------------------------------------------------------------------------
// Queries

Result<std::shared_ptr<const VersionInfo>> ArtifactStoreImpl::lookup(const ArtifactRef& ref) const {
  const NameEntry* entry = name_entry(ref.name);
  if (entry == nullptr) return Error::described(ENOENT, "no artifact named '" + ref.name + "'");
  if (ref.version == 0) return entry->versions.back();
  auto it = std::lower_bound(entry->versions.begin(), entry->versions.end(), ref.version,
                             [](const auto& v, std::uint64_t want) { return v->version < want; });
  if (it == entry->versions.end() || (*it)->version != ref.version) {
    return Error::described(ENOENT, "'" + ref.name + "' has " + describe_versions(*entry) + ", not " +
                                        std::to_string(ref.version));
  }
  return *it;
}

Result<VersionInfo> ArtifactStoreImpl::get(const ArtifactRef& ref) const {
  if (auto r = validate_artifact_name(ref.name); !r) return std::move(r).error();
  std::shared_lock lock(index_mu_);
  auto found = lookup(ref);
  if (!found) return std::move(found).error();
  return VersionInfo(**found);
}

Result<VersionInfo> ArtifactStoreImpl::best(std::string_view name) const {
  if (auto r = validate_artifact_name(name); !r) return std::move(r).error();
  std::shared_lock lock(index_mu_);
  const NameEntry* entry = name_entry(name);
  if (entry == nullptr) return Error::described(ENOENT, "no artifact named '" + std::string(name) + "'");
  // Scored beats unscored; then higher quality; then newer.
  auto rank = [](const auto& v) { return std::make_tuple(v->quality.has_value(), v->quality.value_or(0), v->version); };
  auto it = std::max_element(entry->versions.begin(), entry->versions.end(),
                             [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  return VersionInfo(**it);
}

Result<std::vector<VersionInfo>> ArtifactStoreImpl::versions(std::string_view name) const {
  if (auto r = validate_artifact_name(name); !r) return std::move(r).error();
  std::shared_lock lock(index_mu_);
  const NameEntry* entry = name_entry(name);
  if (entry == nullptr) return Error::described(ENOENT, "no artifact named '" + std::string(name) + "'");
  std::vector<VersionInfo> out;
  out.reserve(entry->versions.size());
  for (const auto& v : entry->versions) out.push_back(*v);
  return out;
}

Result<std::vector<VersionInfo>> ArtifactStoreImpl::list(std::string_view prefix) const {
  std::vector<std::shared_ptr<const VersionInfo>> latest;
  {
    std::shared_lock lock(index_mu_);
    for (const auto& [name, entry] : names_) {
      if (!entry.versions.empty() && name.starts_with(prefix)) latest.push_back(entry.versions.back());
    }
  }
  std::sort(latest.begin(), latest.end(), [](const auto& a, const auto& b) { return a->name < b->name; });
  std::vector<VersionInfo> out;
  out.reserve(latest.size());
  for (const auto& v : latest) out.push_back(*v);
  return out;
}

Result<std::vector<VersionInfo>> ArtifactStoreImpl::lineage(const ArtifactRef& ref) const {
  if (auto r = validate_artifact_name(ref.name); !r) return std::move(r).error();
  std::shared_lock lock(index_mu_);
  auto start = lookup(ref);
  if (!start) return std::move(start).error();
  std::vector<VersionInfo> out;
  std::set<std::pair<std::string_view, std::uint64_t>> seen{{(*start)->name, (*start)->version}};
  std::deque<const VersionInfo*> queue{start->get()};
  while (!queue.empty()) {
    const VersionInfo* v = queue.front();
    queue.pop_front();
    for (const ArtifactRef& input : v->inputs) {
      auto found = lookup(input);
      if (!found) continue;  // removed since: lineage shows what is still stored
      if (!seen.insert({(*found)->name, (*found)->version}).second) continue;
      out.push_back(**found);
      queue.push_back(found->get());
    }
  }
  return out;
}

Result<std::vector<VersionInfo>> ArtifactStoreImpl::by_digest(const Digest& digest) const {
  std::shared_lock lock(index_mu_);
  std::vector<VersionInfo> out;
  auto it = blobs_.find(digest);
  if (it == blobs_.end()) return out;
  for (const auto& v : it->second.users) out.push_back(*v);
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return std::tie(a.name, a.version) < std::tie(b.name, b.version); });
  return out;
}

Result<std::vector<VersionInfo>> ArtifactStoreImpl::candidates(Tier tier, Clock::time_point cutoff,
                                                               std::size_t limit) const {
  std::vector<std::shared_ptr<const VersionInfo>> found;
  {
    std::shared_lock lock(index_mu_);
    for (const auto& [name, entry] : names_) {
      for (const auto& v : entry.versions) {
        if (v->tier == tier && v->created < cutoff && !v->pinned) found.push_back(v);
      }
    }
  }
  {
    std::lock_guard lock(holds_mu_);
    std::erase_if(found, [&](const auto& v) { return held_.contains(v->digest); });
  }
  auto older = [](const auto& a, const auto& b) {
    return std::tie(a->created, a->name, a->version) < std::tie(b->created, b->name, b->version);
  };
  std::size_t n = std::min(limit, found.size());
  std::partial_sort(found.begin(), found.begin() + static_cast<std::ptrdiff_t>(n), found.end(), older);
  std::vector<VersionInfo> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(*found[i]);
  return out;
}

StoreStats ArtifactStoreImpl::stats() const {
  StoreStats s;
  {
    std::shared_lock lock(index_mu_);
    for (const auto& [name, entry] : names_) {
      if (entry.versions.empty()) continue;
      ++s.names;
      s.versions += entry.versions.size();
      for (const auto& v : entry.versions) s.pinned_versions += v->pinned ? 1 : 0;
    }
    for (const auto& [digest, blob] : blobs_) {
      if (!blob.present) continue;
      ++s.blobs;
      s.blob_bytes += blob.size;
    }
  }
  {
    std::lock_guard lock(holds_mu_);
    s.held_blobs = held_.size();
  }
  s.puts = puts_.load(std::memory_order_relaxed);
  s.dedup_hits = dedup_hits_.load(std::memory_order_relaxed);
  s.commit_batches = batches_.load(std::memory_order_relaxed);
  return s;
}

// ---------------------------------------------------------------------------
// Reading bytes

Result<UniqueFd> ArtifactStoreImpl::open_blob(const Digest& digest) const {
  {
    std::shared_lock lock(index_mu_);
    auto b = blobs_.find(digest);
    if (b == blobs_.end() || !b->second.present) {
      return Error::described(ENOENT, "no blob " + digest.to_string() + " in the store");
    }
  }
  int fd = io_->openat(objects_fd_.get(), digest.hex().c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return Error::from_errno("open " + object_path(digest));
  return UniqueFd(fd);
}

Result<BlobView> ArtifactStoreImpl::map_blob(const Digest& digest) const {
  auto fd = open_blob(digest);
  if (!fd) return std::move(fd).error();
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return Error::from_errno("stat " + object_path(digest));
  if (st.st_size == 0) return BlobView{digest, Mapping()};
  auto mapping = Mapping::map(fd->get(), static_cast<std::size_t>(st.st_size), PROT_READ, MAP_SHARED);
  if (!mapping) return std::move(mapping).error().wrap(object_path(digest));
  return BlobView{digest, std::move(*mapping)};
}

// ---------------------------------------------------------------------------
// Opening and recovery

Result<void> ArtifactStoreImpl::load_index() {
  auto loaded = db_.load(
      [&](MetadataDb::BlobRow b) { blobs_[b.digest] = BlobEntry{b.size, b.created, {}}; },
      [&](MetadataDb::NameRow n) { names_[n.name].last_version = n.last_version; },
      [&](VersionInfo v) {
        auto info = std::make_shared<const VersionInfo>(std::move(v));
        NameEntry& entry = names_[info->name];
        entry.last_version = std::max(entry.last_version, info->version);
        entry.versions.push_back(info);
        entry.refresh_latest();
        // A version whose blob row is gone (gc removed the bytes after the
        // stale manager moved it) gets an entry without bytes.
        auto [blob, added] = blobs_.try_emplace(info->digest, BlobEntry{info->size, info->created, {}, false});
        blob->second.users.push_back(info);
      });
  if (!loaded) return std::move(loaded).error().wrap(options_.root.string());
  return ok();
}

Result<void> ArtifactStoreImpl::remove_orphan_blobs() {
  auto names = list_dir(objects_fd_.get(), objects_path_);
  if (!names) return std::move(names).error();
  for (const std::string& name : *names) {
    auto d = Digest::parse(name);
    if (d && d->hex() == name) {
      auto b = blobs_.find(*d);
      if (b != blobs_.end() && b->second.present) continue;
    }
    // No row: the crash came between the rename and the metadata commit, so
    // the put was never acknowledged.
    if (io_->unlinkat(objects_fd_.get(), name.c_str(), 0) != 0 && errno != ENOENT) {
      return Error::from_errno("remove unacknowledged blob " + objects_path_ + "/" + name);
    }
  }
  return ok();
}

namespace {

Result<UniqueFd> open_dir(StoreIo& io, int at, const std::filesystem::path& path, bool create) {
  if (create && ::mkdirat(at, path.c_str(), 0755) != 0 && errno != EEXIST) {
    return Error::from_errno("mkdir " + path.string());
  }
  int fd = io.openat(at, path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0) return Error::from_errno("open " + path.string());
  return UniqueFd(fd);
}

// One process at a time: recovery assumes nothing else writes the store.
Result<UniqueFd> lock_store(StoreIo& io, int root_fd, const std::filesystem::path& root) {
  int fd = io.openat(root_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Error::from_errno("open " + (root / "lock").string());
  UniqueFd lock(fd);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Error::described(EBUSY, "artifact store " + root.string() + " is open in another process");
    }
    return Error::from_errno("lock " + (root / "lock").string());
  }
  return lock;
}

// Temporary files are puts that were never acknowledged.
Result<void> clean_tmp(StoreIo& io, int tmp_fd, const std::string& tmp_path) {
  auto names = list_dir(tmp_fd, tmp_path);
  if (!names) return std::move(names).error();
  for (const std::string& name : *names) {
    if (io.unlinkat(tmp_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
      return Error::from_errno("remove " + tmp_path + "/" + name);
    }
  }
  return ok();
}

}  // namespace

Result<std::unique_ptr<ArtifactStore>> ArtifactStore::open(StoreOptions options) {
  if (options.root.empty()) return Error::invalid("artifact store: no root directory given");
  options.max_batch = std::max<std::size_t>(options.max_batch, 1);
  std::shared_ptr<StoreIo> io = options.io ? options.io : std::make_shared<StoreIo>();
  const std::filesystem::path& root = options.root;

  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) return Error(ec.value(), "create " + root.string());
  auto root_fd = open_dir(*io, AT_FDCWD, root, false);
  if (!root_fd) return std::move(root_fd).error();
  auto lock = lock_store(*io, root_fd->get(), root);
  if (!lock) return std::move(lock).error();
  auto objects = open_dir(*io, root_fd->get(), "objects", true);
  if (!objects) return std::move(objects).error().wrap(root.string());
  auto tmp = open_dir(*io, root_fd->get(), "tmp", true);
  if (!tmp) return std::move(tmp).error().wrap(root.string());
  // The directory entries for objects/ and tmp/ must survive a crash too.
  if (io->fsync(root_fd->get()) != 0) return Error::from_errno("fsync " + root.string());
  if (auto cleaned = clean_tmp(*io, tmp->get(), (root / "tmp").string()); !cleaned) return std::move(cleaned).error();
  auto db = MetadataDb::open(root / "meta.db");
  if (!db) return std::move(db).error();

  auto store = std::make_unique<ArtifactStoreImpl>(std::move(options), std::move(io), std::move(*root_fd),
                                                   std::move(*objects), std::move(*tmp), std::move(*lock),
                                                   std::move(*db));
  if (auto loaded = store->load_index(); !loaded) return std::move(loaded).error();
  if (auto removed = store->remove_orphan_blobs(); !removed) return std::move(removed).error();
  store->start_committer();
  return std::unique_ptr<ArtifactStore>(std::move(store));
}

}  // namespace symphony::pit
