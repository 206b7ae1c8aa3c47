// SQLite access for the artifact store: schema, bulk load at open, and the
// few writes (group commit, pin, tier, removal). synchronous=FULL because in
// WAL mode NORMAL does not sync the WAL at commit: a committed transaction
// could vanish at power loss, and the store promises that an acknowledged
// put is durable.
#include "pit/artifacts/metadata_db.h"

#include <cerrno>
#include <cstring>
#include <utility>

namespace symphony::pit {
namespace {

constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS blobs(
  digest BLOB PRIMARY KEY,
  size INTEGER NOT NULL,
  created_us INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS names(
  name TEXT PRIMARY KEY,
  last_version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS versions(
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  digest BLOB NOT NULL,
  size INTEGER NOT NULL,
  media_type TEXT NOT NULL,
  kind TEXT NOT NULL,
  workflow TEXT NOT NULL,
  step TEXT NOT NULL,
  extension TEXT NOT NULL,
  quality REAL,
  scorer TEXT NOT NULL,
  created_us INTEGER NOT NULL,
  pinned INTEGER NOT NULL DEFAULT 0,
  tier INTEGER NOT NULL DEFAULT 0,
  location TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(name, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inputs(
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  position INTEGER NOT NULL,
  input_name TEXT NOT NULL,
  input_version INTEGER NOT NULL,
  PRIMARY KEY(name, version, position)
) WITHOUT ROWID;
)sql";

// Maps SQLite's primary result codes onto errno so callers can tell a full
// disk from an I/O error the same way as for the blob files.
int errno_of(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return ENOSPC;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return EBUSY;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return EACCES;
    case SQLITE_NOMEM:
      return ENOMEM;
    case SQLITE_CANTOPEN:
      return ENOENT;
    default:
      return EIO;
  }
}

std::int64_t to_us(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}
std::chrono::system_clock::time_point from_us(std::int64_t us) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::microseconds(us)));
}

// A prepared statement, finalised however the scope ends.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool prepared() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() const { return stmt_; }

  void bind(int i, std::string_view text) {
    sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  void bind(int i, std::int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void bind(int i, std::uint64_t v) { sqlite3_bind_int64(stmt_, i, static_cast<std::int64_t>(v)); }
  void bind(int i, const Digest& d) {
    sqlite3_bind_blob(stmt_, i, d.bytes().data(), static_cast<int>(Digest::kSize), SQLITE_TRANSIENT);
  }
  void bind(int i, std::optional<double> v) {
    if (v) {
      sqlite3_bind_double(stmt_, i, *v);
    } else {
      sqlite3_bind_null(stmt_, i);
    }
  }

  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(stmt_); }
  // Runs a statement that returns no rows, then resets it for reuse.
  int run() {
    int rc = sqlite3_step(stmt_);
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
  }

  std::string text(int col) const {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
  }
  std::int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  Digest digest(int col) const {
    std::array<std::uint8_t, Digest::kSize> bytes{};
    if (sqlite3_column_bytes(stmt_, col) == static_cast<int>(Digest::kSize)) {
      std::memcpy(bytes.data(), sqlite3_column_blob(stmt_, col), Digest::kSize);
    }
    return Digest(bytes);
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

}  // namespace

MetadataDb::MetadataDb(MetadataDb&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
MetadataDb& MetadataDb::operator=(MetadataDb&& other) noexcept {
  if (this != &other) {
    sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
  }
  return *this;
}
MetadataDb::~MetadataDb() { sqlite3_close_v2(db_); }

Error MetadataDb::error(std::string_view what) const {
  int rc = sqlite3_extended_errcode(db_);
  return Error::described(errno_of(rc), "metadata database: " + std::string(what) + ": " + sqlite3_errmsg(db_));
}

Result<void> MetadataDb::exec(const char* sql) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return error(sql);
  return ok();
}

Result<MetadataDb> MetadataDb::open(const std::filesystem::path& path) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  MetadataDb db(raw);  // owns `raw` even when the open failed
  if (rc != SQLITE_OK) {
    return Error::described(errno_of(rc), "open metadata database " + path.string() + ": " +
                                              (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, 5000);
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL"}) {
    if (auto r = db.exec(pragma); !r) return std::move(r).error().wrap(path.string());
  }
  if (auto r = db.exec(kSchema); !r) return std::move(r).error().wrap(path.string());
  Statement version(raw, "PRAGMA user_version");
  if (!version.prepared() || version.step() != SQLITE_ROW) return db.error("read schema version").wrap(path.string());
  auto found = version.int64(0);
  if (found == 0) {
    if (auto r = db.exec("PRAGMA user_version=1"); !r) return std::move(r).error().wrap(path.string());
  } else if (found != kSchemaVersion) {
    return Error::invalid(path.string() + ": schema version " + std::to_string(found) + ", this build reads " +
                          std::to_string(kSchemaVersion));
  }
  return db;
}

Result<void> MetadataDb::transaction(const std::function<Result<void>()>& body) {
  if (auto r = exec("BEGIN IMMEDIATE"); !r) return r;
  auto r = body();
  if (r) {
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK) return ok();
    r = error("commit");
  }
  // A failed COMMIT may leave the transaction open (e.g. SQLITE_BUSY); a
  // failed statement leaves it open too. Either way, nothing stays.
  if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  return r;
}

Result<void> MetadataDb::load(const std::function<void(BlobRow)>& on_blob,
                              const std::function<void(NameRow)>& on_name,
                              const std::function<void(VersionInfo)>& on_version) {
  {
    Statement s(db_, "SELECT digest, size, created_us FROM blobs");
    if (!s.prepared()) return error("load blobs");
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      on_blob({s.digest(0), static_cast<std::uint64_t>(s.int64(1)), from_us(s.int64(2))});
    }
    if (rc != SQLITE_DONE) return error("load blobs");
  }
  {
    Statement s(db_, "SELECT name, last_version FROM names");
    if (!s.prepared()) return error("load names");
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) on_name({s.text(0), static_cast<std::uint64_t>(s.int64(1))});
    if (rc != SQLITE_DONE) return error("load names");
  }
  // Versions in key order and inputs in the same order: one merge pass.
  Statement v(db_,
              "SELECT name, version, digest, size, media_type, kind, workflow, step, extension, quality, scorer, "
              "created_us, pinned, tier FROM versions ORDER BY name, version");
  Statement in(db_, "SELECT name, version, input_name, input_version FROM inputs ORDER BY name, version, position");
  if (!v.prepared() || !in.prepared()) return error("load versions");
  int in_rc = in.step();
  int rc;
  while ((rc = v.step()) == SQLITE_ROW) {
    VersionInfo info;
    info.name = v.text(0);
    info.version = static_cast<std::uint64_t>(v.int64(1));
    info.digest = v.digest(2);
    info.size = static_cast<std::uint64_t>(v.int64(3));
    info.media_type = v.text(4);
    info.kind = v.text(5);
    info.producer = {v.text(6), v.text(7), v.text(8)};
    if (sqlite3_column_type(v.get(), 9) != SQLITE_NULL) info.quality = sqlite3_column_double(v.get(), 9);
    info.scorer = v.text(10);
    info.created = from_us(v.int64(11));
    info.pinned = v.int64(12) != 0;
    info.tier = static_cast<Tier>(v.int64(13));
    // Skip input rows of versions that no longer exist (ordered before this one).
    while (in_rc == SQLITE_ROW) {
      std::string in_name = in.text(0);
      auto in_version = static_cast<std::uint64_t>(in.int64(1));
      if (std::tie(in_name, in_version) > std::tie(info.name, info.version)) break;
      if (in_name == info.name && in_version == info.version) {
        info.inputs.push_back({in.text(2), static_cast<std::uint64_t>(in.int64(3))});
      }
      in_rc = in.step();
    }
    on_version(std::move(info));
  }
  if (rc != SQLITE_DONE || (in_rc != SQLITE_DONE && in_rc != SQLITE_ROW)) return error("load versions");
  return ok();
}

Result<void> MetadataDb::commit(const Batch& batch) {
  return transaction([&]() -> Result<void> {
    Statement blob(db_, "INSERT INTO blobs(digest, size, created_us) VALUES(?, ?, ?)");
    Statement name(db_,
                   "INSERT INTO names(name, last_version) VALUES(?, ?) "
                   "ON CONFLICT(name) DO UPDATE SET last_version = excluded.last_version");
    Statement version(db_,
                      "INSERT INTO versions(name, version, digest, size, media_type, kind, workflow, step, extension, "
                      "quality, scorer, created_us) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    Statement input(db_,
                    "INSERT INTO inputs(name, version, position, input_name, input_version) VALUES(?, ?, ?, ?, ?)");
    if (!blob.prepared() || !name.prepared() || !version.prepared() || !input.prepared()) {
      return error("prepare commit");
    }
    for (const BlobRow& b : batch.blobs) {
      blob.bind(1, b.digest);
      blob.bind(2, b.size);
      blob.bind(3, to_us(b.created));
      if (blob.run() != SQLITE_OK) return error("insert blob " + b.digest.to_string());
    }
    for (const NameRow& n : batch.names) {
      name.bind(1, n.name);
      name.bind(2, n.last_version);
      if (name.run() != SQLITE_OK) return error("update name '" + n.name + "'");
    }
    for (const VersionInfo* v : batch.versions) {
      version.bind(1, v->name);
      version.bind(2, v->version);
      version.bind(3, v->digest);
      version.bind(4, v->size);
      version.bind(5, v->media_type);
      version.bind(6, v->kind);
      version.bind(7, v->producer.workflow);
      version.bind(8, v->producer.step);
      version.bind(9, v->producer.extension);
      version.bind(10, v->quality);
      version.bind(11, v->scorer);
      version.bind(12, to_us(v->created));
      if (version.run() != SQLITE_OK) return error("insert version '" + v->name + "@" + std::to_string(v->version) + "'");
      for (std::size_t i = 0; i < v->inputs.size(); ++i) {
        input.bind(1, v->name);
        input.bind(2, v->version);
        input.bind(3, static_cast<std::uint64_t>(i));
        input.bind(4, v->inputs[i].name);
        input.bind(5, v->inputs[i].version);
        if (input.run() != SQLITE_OK) return error("insert inputs of '" + v->name + "'");
      }
    }
    return ok();
  });
}

Result<void> MetadataDb::set_pinned(const ArtifactRef& ref, bool pinned) {
  return transaction([&]() -> Result<void> {
    Statement s(db_, "UPDATE versions SET pinned = ? WHERE name = ? AND version = ?");
    s.bind(1, static_cast<std::int64_t>(pinned));
    s.bind(2, ref.name);
    s.bind(3, ref.version);
    if (!s.prepared() || s.run() != SQLITE_OK) return error("pin '" + ref.to_string() + "'");
    return ok();
  });
}

Result<void> MetadataDb::set_tier(const ArtifactRef& ref, Tier tier, const std::string& location) {
  return transaction([&]() -> Result<void> {
    Statement s(db_, "UPDATE versions SET tier = ?, location = ? WHERE name = ? AND version = ?");
    s.bind(1, static_cast<std::int64_t>(tier));
    s.bind(2, location);
    s.bind(3, ref.name);
    s.bind(4, ref.version);
    if (!s.prepared() || s.run() != SQLITE_OK) return error("set tier of '" + ref.to_string() + "'");
    return ok();
  });
}

Result<std::string> MetadataDb::location(const ArtifactRef& ref) {
  Statement s(db_, "SELECT location FROM versions WHERE name = ? AND version = ?");
  s.bind(1, ref.name);
  s.bind(2, ref.version);
  if (!s.prepared()) return error("read location of '" + ref.to_string() + "'");
  int rc = s.step();
  if (rc == SQLITE_ROW) return s.text(0);
  if (rc == SQLITE_DONE) return std::string();
  return error("read location of '" + ref.to_string() + "'");
}

Result<void> MetadataDb::remove_version(const ArtifactRef& ref) {
  return transaction([&]() -> Result<void> {
    Statement v(db_, "DELETE FROM versions WHERE name = ? AND version = ?");
    Statement in(db_, "DELETE FROM inputs WHERE name = ? AND version = ?");
    if (!v.prepared() || !in.prepared()) return error("remove '" + ref.to_string() + "'");
    for (Statement* s : {&v, &in}) {
      s->bind(1, ref.name);
      s->bind(2, ref.version);
      if (s->run() != SQLITE_OK) return error("remove '" + ref.to_string() + "'");
    }
    return ok();
  });
}

Result<void> MetadataDb::remove_blobs(std::span<const Digest> digests) {
  if (digests.empty()) return ok();
  return transaction([&]() -> Result<void> {
    Statement s(db_, "DELETE FROM blobs WHERE digest = ?");
    if (!s.prepared()) return error("remove blobs");
    for (const Digest& d : digests) {
      s.bind(1, d);
      if (s.run() != SQLITE_OK) return error("remove blob " + d.to_string());
    }
    return ok();
  });
}

}  // namespace symphony::pit
