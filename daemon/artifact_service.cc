// artifact.* over msgpack-rpc: parameter checking on the loop thread, store
// calls on the worker pool, replies back on the loop thread.
#include "daemon/artifact_service.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <functional>
#include <optional>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "daemon/rpc_util.h"
#include "ipc/rpc_client.h"

namespace symphony::daemon {
namespace {

using ipc::rpc::ErrorCode;
using ipc::rpc::Packer;

// Operations one upload may have waiting behind the one running: a client
// may pipeline this many chunks; more would only buffer in the daemon.
constexpr std::size_t kMaxQueuedOps = 8;

ErrorCode code_for(const Error& e) { return error_code_for(e.code()); }

// The options map of a put: {"name", "media_type", "kind", "producer":
// {"workflow","step","extension"}, "inputs": [refs], "quality", "scorer"}.
Result<pit::PutOptions> parse_put_options(std::string_view method, const msgpack::object* o,
                                          std::optional<std::uint64_t>* base) {
  auto bad = [&](std::string_view key, std::string_view expected) {
    return Error::invalid(fmt::format("{}: option '{}' must be {}", method, key, expected));
  };
  if (o == nullptr || o->type != msgpack::type::MAP) {
    return Error::invalid(fmt::format("{}: the options parameter must be a map with at least \"name\"", method));
  }
  pit::PutOptions out;
  bool have_name = false;
  for (std::uint32_t i = 0; i < o->via.map.size; ++i) {
    const auto& kv = o->via.map.ptr[i];
    if (kv.key.type != msgpack::type::STR) {
      return Error::invalid(fmt::format("{}: option keys must be strings", method));
    }
    std::string_view key = as_str(kv.key);
    const auto& v = kv.val;
    auto str = [&](std::string& dst) -> Result<void> {
      if (v.type != msgpack::type::STR) return bad(key, "a string");
      dst = std::string(as_str(v));
      return ok();
    };
    Result<void> r = ok();
    if (key == "name") {
      r = str(out.name);
      have_name = true;
    } else if (key == "media_type") {
      r = str(out.media_type);
    } else if (key == "kind") {
      r = str(out.kind);
    } else if (key == "scorer") {
      r = str(out.scorer);
    } else if (key == "quality") {
      if (v.type == msgpack::type::NIL) continue;
      if (v.type == msgpack::type::FLOAT64 || v.type == msgpack::type::FLOAT32) {
        out.quality = v.via.f64;
      } else if (v.type == msgpack::type::POSITIVE_INTEGER) {
        out.quality = static_cast<double>(v.via.u64);
      } else {
        return bad(key, "a number in [0, 1]");
      }
    } else if (key == "base") {
      if (v.type != msgpack::type::POSITIVE_INTEGER) return bad(key, "a version number (0: the name is new)");
      *base = v.via.u64;
    } else if (key == "producer") {
      if (v.type != msgpack::type::MAP) return bad(key, "a map of workflow, step, extension");
      for (std::uint32_t j = 0; j < v.via.map.size; ++j) {
        const auto& pkv = v.via.map.ptr[j];
        if (pkv.key.type != msgpack::type::STR || pkv.val.type != msgpack::type::STR) {
          return bad(key, "a map of strings (workflow, step, extension)");
        }
        std::string_view pk = as_str(pkv.key);
        std::string value(as_str(pkv.val));
        if (pk == "workflow") {
          out.producer.workflow = std::move(value);
        } else if (pk == "step") {
          out.producer.step = std::move(value);
        } else if (pk == "extension") {
          out.producer.extension = std::move(value);
        } else {
          return Error::invalid(
              fmt::format("{}: unknown producer field '{}' (workflow, step, extension)", method, pk));
        }
      }
    } else if (key == "inputs") {
      if (v.type != msgpack::type::ARRAY) return bad(key, "an array of NAME@VERSION strings");
      for (std::uint32_t j = 0; j < v.via.array.size; ++j) {
        const auto& e = v.via.array.ptr[j];
        if (e.type != msgpack::type::STR) return bad(key, "an array of NAME@VERSION strings");
        auto ref = pit::ArtifactRef::parse(as_str(e));
        if (!ref) return std::move(ref).error().wrap(fmt::format("{}: inputs[{}]", method, j));
        out.inputs.push_back(std::move(*ref));
      }
    } else {
      return Error::invalid(fmt::format(
          "{}: unknown option '{}' (name, media_type, kind, producer, inputs, quality, scorer, base)", method,
          key));
    }
    if (!r) return std::move(r).error();
  }
  if (!have_name) return Error::invalid(fmt::format("{}: the options need a \"name\"", method));
  if (auto r = pit::validate_artifact_name(out.name); !r) return std::move(r).error();
  return out;
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// What a put that named its base version came to: the version stored
// (none when the other side of a conflict won) and, if there was a
// conflict, the decision (already in the decision log).
struct BasedOutcome {
  std::optional<pit::VersionInfo> version;
  std::optional<pit::DecisionRecord> decision;
};

// Commits the incoming bytes (merged == nullptr) or a merged text.
using CommitFn = std::function<Result<pit::VersionInfo>(const pit::PutOptions&, const std::string* merged)>;

bool is_text(std::string_view media_type) {
  return media_type.starts_with("text/") || media_type == "application/json" || media_type.ends_with("+json") ||
         media_type.ends_with("+xml") || media_type == "application/x-yaml" || media_type == "application/toml";
}

// The bytes of a stored text version, for a three-way merge; none when it
// is not text, too large, or not in the active tier.
std::optional<std::string> text_of(const pit::ArtifactStore& store, const pit::VersionInfo& v) {
  constexpr std::uint64_t kMaxMergeBytes = 8 * 1024 * 1024;
  if (!is_text(v.media_type) || v.size > kMaxMergeBytes || v.tier != pit::Tier::active) return std::nullopt;
  auto view = store.map_blob(v.digest);
  if (!view) return std::nullopt;
  auto b = view->bytes();
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

pit::VersionCandidate candidate(const pit::ArtifactStore& store, const pit::VersionInfo& v) {
  return {v.name + "@" + std::to_string(v.version), v.quality, v.created, text_of(store, v)};
}

// Optimistic concurrency for producers: the put says which version it
// started from. If that is still the latest, it commits as usual; if another
// version landed meanwhile, the conflict policy decides (and records why).
Result<BasedOutcome> put_with_base(pit::ArtifactStore& store, pit::ConflictResolver& resolver, std::mutex& mu,
                                   const pit::PutOptions& options, std::uint64_t base,
                                   std::optional<std::string> incoming_text, const CommitFn& commit) {
  std::lock_guard lock(mu);
  auto latest = store.get({options.name, 0});
  if (!latest) {
    if (latest.error().code() != ENOENT) return std::move(latest).error();
    if (base != 0) {
      return Error::described(ENOENT, fmt::format("base version {}@{} does not exist (the name has no versions)",
                                                  options.name, base));
    }
    auto v = commit(options, nullptr);
    if (!v) return std::move(v).error();
    return BasedOutcome{std::move(*v), std::nullopt};
  }
  if (base > latest->version) {
    return Error::invalid(fmt::format("base version {} of '{}' is newer than its latest version {}", base,
                                      options.name, latest->version));
  }
  if (base == latest->version) {
    auto v = commit(options, nullptr);
    if (!v) return std::move(v).error();
    return BasedOutcome{std::move(*v), std::nullopt};
  }
  pit::ConflictInput input;
  input.artifact = options.name;
  if (base >= 1) {
    auto b = store.get({options.name, base});
    if (b) input.base = candidate(store, *b);
  }
  input.a = candidate(store, *latest);
  input.b = {options.name + "@new", options.quality, std::chrono::system_clock::now(),
             is_text(options.media_type) ? std::move(incoming_text) : std::nullopt};
  auto decision = resolver.resolve(input);
  if (!decision) return std::move(decision).error().wrap("write conflict on '" + options.name + "'");
  BasedOutcome out;
  out.decision = decision->record;
  switch (decision->record.outcome) {
    case pit::DecisionOutcome::take_a:
      return out;  // the version already stored stays the latest; the incoming one is not added
    case pit::DecisionOutcome::take_b:
    case pit::DecisionOutcome::keep_both: {
      auto v = commit(options, nullptr);
      if (!v) return std::move(v).error();
      out.version = std::move(*v);
      return out;
    }
    case pit::DecisionOutcome::merged: {
      pit::PutOptions merged = options;
      merged.inputs.push_back({latest->name, latest->version});
      if (base >= 1) merged.inputs.push_back({options.name, base});
      auto v = commit(merged, &decision->merged);
      if (!v) return std::move(v).error();
      out.version = std::move(*v);
      return out;
    }
  }
  return out;
}

void pack_based(Packer& pk, const BasedOutcome& o) {
  pk.pack_map(3);
  pk.pack(std::string_view("stored"));
  pk.pack(o.version.has_value());
  pk.pack(std::string_view("version"));
  if (o.version) {
    pack_version(pk, *o.version);
  } else {
    pk.pack_nil();
  }
  pk.pack(std::string_view("conflict"));
  if (!o.decision) {
    pk.pack_nil();
    return;
  }
  const auto& d = *o.decision;
  pk.pack_map(8);
  pk.pack(std::string_view("policy"));
  pk.pack(pit::to_string(d.policy));
  pk.pack(std::string_view("applied"));
  pk.pack(pit::to_string(d.applied));
  pk.pack(std::string_view("outcome"));
  pk.pack(pit::to_string(d.outcome));
  pk.pack(std::string_view("winner"));
  pk.pack(d.winner);
  pk.pack(std::string_view("alternative"));
  pk.pack(d.alternative);
  pk.pack(std::string_view("other"));
  pk.pack(d.a.ref);
  pk.pack(std::string_view("fell_back"));
  pk.pack(d.fell_back);
  pk.pack(std::string_view("reason"));
  pk.pack(d.reason);
}

void pack_versions(Packer& pk, const std::vector<pit::VersionInfo>& list) {
  pk.pack_array(static_cast<std::uint32_t>(list.size()));
  for (const auto& v : list) pack_version(pk, v);
}

}  // namespace

void pack_version(Packer& pk, const pit::VersionInfo& v) {
  pk.pack_map(15);
  pk.pack(std::string_view("name"));
  pk.pack(v.name);
  pk.pack(std::string_view("version"));
  pk.pack(v.version);
  pk.pack(std::string_view("ref"));
  pk.pack(v.name + "@" + std::to_string(v.version));
  pk.pack(std::string_view("digest"));
  pk.pack(v.digest.to_string());
  pk.pack(std::string_view("size"));
  pk.pack(v.size);
  pk.pack(std::string_view("media_type"));
  pk.pack(v.media_type);
  pk.pack(std::string_view("kind"));
  pk.pack(v.kind);
  pk.pack(std::string_view("producer"));
  pk.pack_map(3);
  pk.pack(std::string_view("workflow"));
  pk.pack(v.producer.workflow);
  pk.pack(std::string_view("step"));
  pk.pack(v.producer.step);
  pk.pack(std::string_view("extension"));
  pk.pack(v.producer.extension);
  pk.pack(std::string_view("inputs"));
  pk.pack_array(static_cast<std::uint32_t>(v.inputs.size()));
  for (const auto& in : v.inputs) pk.pack(in.to_string());
  pk.pack(std::string_view("quality"));
  if (v.quality) {
    pk.pack(*v.quality);
  } else {
    pk.pack_nil();
  }
  pk.pack(std::string_view("scorer"));
  pk.pack(v.scorer);
  pk.pack(std::string_view("created"));
  pk.pack(rfc3339(v.created));
  pk.pack(std::string_view("created_us"));
  pk.pack(static_cast<std::int64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(v.created.time_since_epoch()).count()));
  pk.pack(std::string_view("pinned"));
  pk.pack(v.pinned);
  pk.pack(std::string_view("tier"));
  pk.pack(pit::to_string(v.tier));
}

// One upload in progress. Operations on it (chunks, commit, abort) run one
// at a time in arrival order, so a client may pipeline its chunks.
struct ArtifactService::Upload {
  std::uint64_t connection = 0;
  std::unique_ptr<pit::BlobWriter> writer;
  struct Op {
    int kind;  // 0 chunk, 1 commit, 2 abort
    std::vector<std::byte> data;
    pit::PutOptions options;
    std::optional<std::uint64_t> base;
    Reply responder;
  };
  std::deque<Op> ops;
  bool busy = false;
  bool finished = false;  // committed, aborted or discarded: later ops are refused
  std::string failed;     // why an earlier chunk failed; later chunks are refused with it
  std::chrono::steady_clock::time_point last_used = std::chrono::steady_clock::now();
};

ArtifactService::ArtifactService(ipc::Server& server, ipc::WorkerPool& workers,
                                 std::shared_ptr<pit::ArtifactStore> store, pit::ConflictResolver* resolver,
                                 ArtifactServiceOptions options)
    : server_(server), workers_(workers), store_(std::move(store)), options_(options), resolver_(resolver) {
  sweep_timer_ = server_.loop().add_timer(std::chrono::seconds(30), [this] { sweep_idle(); });
}

ArtifactService::~ArtifactService() { server_.loop().cancel_timer(sweep_timer_); }

void ArtifactService::drop_writer(const std::shared_ptr<Upload>& upload) {
  if (!upload->writer) return;
  // Dropping the writer unlinks its temporary file: disk work, on a worker.
  workers_.submit([w = std::shared_ptr<pit::BlobWriter>(std::move(upload->writer))]() mutable -> ipc::Task {
    w.reset();
    return {};
  });
}

void ArtifactService::discard(std::uint64_t id) {
  auto it = uploads_.find(id);
  if (it == uploads_.end()) return;
  auto upload = it->second;
  uploads_.erase(it);
  upload->finished = true;
  // Ops still queued answer internal_error as their Responders go.
  upload->ops.clear();
  // A job running for it keeps the writer; its completion drops it.
  if (!upload->busy) drop_writer(upload);
}

void ArtifactService::sweep_idle() {
  auto now = std::chrono::steady_clock::now();
  std::vector<std::uint64_t> idle;
  for (const auto& [id, u] : uploads_) {
    if (!u->busy && u->ops.empty() && now - u->last_used > options_.upload_idle_timeout) idle.push_back(id);
  }
  for (auto id : idle) {
    spdlog::info("artifact upload {} idle for {} s; discarded", id, options_.upload_idle_timeout.count());
    ++expired_;
    discard(id);
  }
  sweep_timer_ = server_.loop().add_timer(std::chrono::seconds(30), [this] { sweep_idle(); });
}

ArtifactServiceStats ArtifactService::stats() const { return {uploads_.size(), expired_}; }

void ArtifactService::register_methods() {
  // An upload dies with its connection: nobody else may continue it.
  // The server outlives the service (it closes its connections last).
  server_.on_disconnect([this, alive = std::weak_ptr<int>(alive_)](std::uint64_t connection) {
    if (alive.expired()) return;
    std::vector<std::uint64_t> gone;
    for (const auto& [id, u] : uploads_) {
      if (u->connection == connection) gone.push_back(id);
    }
    for (auto id : gone) discard(id);
  });
  server_.add_method("artifact.put", [this](const ipc::CallContext& c, ipc::Responder& r) { put(c, r); });
  server_.add_method("artifact.upload_begin",
                     [this](const ipc::CallContext& c, ipc::Responder& r) { upload_begin(c, r); });
  server_.add_method("artifact.upload_chunk",
                     [this](const ipc::CallContext& c, ipc::Responder& r) { upload_op(c, r, 0); });
  server_.add_method("artifact.upload_commit",
                     [this](const ipc::CallContext& c, ipc::Responder& r) { upload_op(c, r, 1); });
  server_.add_method("artifact.upload_abort",
                     [this](const ipc::CallContext& c, ipc::Responder& r) { upload_op(c, r, 2); });
  server_.add_method("artifact.read", [this](const ipc::CallContext& c, ipc::Responder& r) { read(c, r); });
  server_.add_method("artifact.get", [this](const ipc::CallContext& c, ipc::Responder& r) { query(c, r, 0); });
  server_.add_method("artifact.best", [this](const ipc::CallContext& c, ipc::Responder& r) { query(c, r, 1); });
  server_.add_method("artifact.versions",
                     [this](const ipc::CallContext& c, ipc::Responder& r) { query(c, r, 2); });
  server_.add_method("artifact.ls", [this](const ipc::CallContext& c, ipc::Responder& r) { query(c, r, 3); });
  server_.add_method("artifact.lineage", [this](const ipc::CallContext& c, ipc::Responder& r) { query(c, r, 4); });
  server_.add_method("artifact.by_digest",
                     [this](const ipc::CallContext& c, ipc::Responder& r) { query(c, r, 5); });
  server_.add_method("artifact.pin", [this](const ipc::CallContext& c, ipc::Responder& r) { pin(c, r, true); });
  server_.add_method("artifact.unpin", [this](const ipc::CallContext& c, ipc::Responder& r) { pin(c, r, false); });
  server_.add_method("artifact.gc", [this](const ipc::CallContext& c, ipc::Responder& r) { gc(c, r); });
}

void ArtifactService::put(const ipc::CallContext& call, ipc::Responder& r) {
  Params p(call);
  auto data = p.bytes(0, "data");
  if (!data) return r.fail(ErrorCode::invalid_params, data.error().message());
  std::optional<std::uint64_t> base;
  auto options = parse_put_options(call.method, p.at(1), &base);
  if (!options) return r.fail(ErrorCode::invalid_params, options.error().message());
  if (base && resolver_ == nullptr) {
    return r.fail(ErrorCode::failed, "artifact.put: write-conflict resolution is not available");
  }
  std::vector<std::byte> copy(data->begin(), data->end());
  if (base) {
    workers_.submit([store = store_, resolver = resolver_, mu = conflict_mu_, copy = std::move(copy),
                     options = std::move(*options), base = *base, responder = hold(r)]() mutable -> ipc::Task {
      std::string text(reinterpret_cast<const char*>(copy.data()), copy.size());
      auto outcome = put_with_base(*store, *resolver, *mu, options, base, std::move(text),
                                   [&](const pit::PutOptions& o, const std::string* merged) {
                                     if (merged == nullptr) return store->put(copy, o);
                                     return store->put(std::as_bytes(std::span(merged->data(), merged->size())), o);
                                   });
      return [outcome = std::move(outcome), responder = std::move(responder)]() mutable {
        if (!outcome) return responder->fail(code_for(outcome.error()), outcome.error().message());
        responder->reply_with([&](Packer& pk) { pack_based(pk, *outcome); });
      };
    });
    return;
  }
  workers_.submit([store = store_, copy = std::move(copy), options = std::move(*options),
                   responder = hold(r)]() mutable -> ipc::Task {
    auto v = store->put(copy, options);
    return [v = std::move(v), responder = std::move(responder)]() mutable {
      if (!v) return responder->fail(code_for(v.error()), v.error().message());
      responder->reply_with([&](Packer& pk) { pack_version(pk, *v); });
    };
  });
}

void ArtifactService::upload_begin(const ipc::CallContext& call, ipc::Responder& r) {
  std::size_t mine = 0;
  for (const auto& [id, u] : uploads_) mine += u->connection == call.connection_id;
  if (mine >= options_.max_uploads_per_connection || uploads_.size() >= options_.max_uploads) {
    return r.fail(ErrorCode::failed,
                  fmt::format("too many uploads in progress ({} on this connection, {} in all; limits {} and {})",
                              mine, uploads_.size(), options_.max_uploads_per_connection, options_.max_uploads));
  }
  std::uint64_t id = next_upload_++;
  auto upload = std::make_shared<Upload>();
  upload->connection = call.connection_id;
  upload->busy = true;  // until the writer exists
  uploads_[id] = upload;
  std::weak_ptr<int> alive = alive_;
  workers_.submit([this, alive, id, upload, store = store_, responder = hold(r)]() mutable -> ipc::Task {
    // Shared: a Task must be copyable, a unique_ptr is not.
    auto writer = std::make_shared<Result<std::unique_ptr<pit::BlobWriter>>>(store->begin_put());
    return [this, alive, id, upload, writer, responder = std::move(responder)]() mutable {
      if (alive.expired()) return;
      upload->busy = false;
      if (!*writer) {
        uploads_.erase(id);
        return responder->fail(code_for(writer->error()), writer->error().message());
      }
      upload->writer = std::move(**writer);
      if (upload->finished) {  // the connection went away meanwhile
        drop_writer(upload);
        return;
      }
      responder->reply_with([&](Packer& pk) {
        pk.pack_map(2);
        pk.pack(std::string_view("upload"));
        pk.pack(id);
        pk.pack(std::string_view("max_chunk"));
        pk.pack(static_cast<std::uint64_t>(options_.max_chunk));
      });
      run_next(id);
    };
  });
}

void ArtifactService::upload_op(const ipc::CallContext& call, ipc::Responder& r, int kind) {
  Params p(call);
  auto id = p.uint(0, "upload id from artifact.upload_begin");
  if (!id) return r.fail(ErrorCode::invalid_params, id.error().message());
  auto it = uploads_.find(*id);
  if (it == uploads_.end() || it->second->connection != call.connection_id || it->second->finished) {
    return r.fail(ErrorCode::not_found,
                  fmt::format("{}: no upload {} in progress on this connection (committed, aborted, expired, "
                              "or begun on another connection)",
                              call.method, *id));
  }
  Upload& upload = *it->second;
  if (!upload.failed.empty() && kind != 2) {
    return r.fail(ErrorCode::failed, fmt::format("{}: upload {} failed earlier ({}); abort it and start again",
                                                 call.method, *id, upload.failed));
  }
  if (upload.ops.size() >= kMaxQueuedOps) {
    return r.fail(ErrorCode::failed,
                  fmt::format("{}: upload {} already has {} operations waiting; wait for their answers before "
                              "sending more",
                              call.method, *id, upload.ops.size()));
  }
  Upload::Op op{kind, {}, {}, std::nullopt, nullptr};
  if (kind == 0) {
    auto data = p.bytes(1, "data");
    if (!data) return r.fail(ErrorCode::invalid_params, data.error().message());
    if (data->size() > options_.max_chunk) {
      return r.fail(ErrorCode::invalid_params, fmt::format("{}: chunk of {} bytes is over the limit of {}",
                                                           call.method, data->size(), options_.max_chunk));
    }
    op.data.assign(data->begin(), data->end());
  } else if (kind == 1) {
    auto options = parse_put_options(call.method, p.at(1), &op.base);
    if (op.base && resolver_ == nullptr) {
      discard(*id);
      return r.fail(ErrorCode::failed, "artifact.upload_commit: write-conflict resolution is not available");
    }
    if (!options) {
      // These options can never commit it; do not keep its temporary file
      // waiting for an expiry.
      discard(*id);
      return r.fail(ErrorCode::invalid_params, options.error().message() + " (the upload is discarded)");
    }
    op.options = std::move(*options);
  }
  if (kind != 0) upload.finished = true;  // later ops on this id are refused
  op.responder = hold(r);
  upload.ops.push_back(std::move(op));
  upload.last_used = std::chrono::steady_clock::now();
  run_next(*id);
}

void ArtifactService::run_next(std::uint64_t id) {
  auto it = uploads_.find(id);
  if (it == uploads_.end()) return;
  auto upload = it->second;
  if (upload->busy || upload->ops.empty()) return;
  upload->busy = true;
  Upload::Op op = std::move(upload->ops.front());
  upload->ops.pop_front();
  std::weak_ptr<int> alive = alive_;
  workers_.submit([this, alive, id, upload, op = std::move(op)]() mutable -> ipc::Task {
    // The writer is only touched by the one job running for this upload.
    std::function<void()> reply;
    bool done = false;
    std::string chunk_error;
    if (op.kind == 0) {
      auto w = upload->writer->write(op.data);
      if (!w) chunk_error = w.error().message();
      std::uint64_t size = upload->writer->size();
      reply = [w = std::move(w), size, responder = std::move(op.responder)]() mutable {
        if (!w) return responder->fail(code_for(w.error()), w.error().message());
        responder->reply_with([&](Packer& pk) {
          pk.pack_map(1);
          pk.pack(std::string_view("size"));
          pk.pack(size);
        });
      };
    } else if (op.kind == 1 && op.base) {
      // The streamed bytes are not at hand for a merge: merge3 falls back.
      auto outcome = put_with_base(*store_, *resolver_, *conflict_mu_, op.options, *op.base, std::nullopt,
                                   [&](const pit::PutOptions& o, const std::string* merged) {
                                     if (merged == nullptr) return upload->writer->commit(o);
                                     return store_->put(std::as_bytes(std::span(merged->data(), merged->size())), o);
                                   });
      upload->writer.reset();
      done = true;
      reply = [outcome = std::move(outcome), responder = std::move(op.responder)]() mutable {
        if (!outcome) return responder->fail(code_for(outcome.error()), outcome.error().message());
        responder->reply_with([&](Packer& pk) { pack_based(pk, *outcome); });
      };
    } else if (op.kind == 1) {
      auto v = upload->writer->commit(op.options);
      upload->writer.reset();
      done = true;
      reply = [v = std::move(v), responder = std::move(op.responder)]() mutable {
        if (!v) return responder->fail(code_for(v.error()), v.error().message());
        responder->reply_with([&](Packer& pk) { pack_version(pk, *v); });
      };
    } else {
      upload->writer.reset();
      done = true;
      reply = [responder = std::move(op.responder)]() mutable {
        responder->reply_with([](Packer& pk) { pk.pack_nil(); });
      };
    }
    return [this, alive, id, upload, done, chunk_error, reply = std::move(reply)]() mutable {
      reply();
      if (alive.expired()) return;
      upload->busy = false;
      upload->last_used = std::chrono::steady_clock::now();
      if (!chunk_error.empty()) upload->failed = chunk_error;
      if (!uploads_.count(id)) {  // discarded while the job ran
        drop_writer(upload);
        return;
      }
      if (done) {
        uploads_.erase(id);
        return;
      }
      run_next(id);
    };
  });
}

void ArtifactService::read(const ipc::CallContext& call, ipc::Responder& r) {
  Params p(call);
  auto ref = parse_ref(p, 0);
  if (!ref) return r.fail(ErrorCode::invalid_params, ref.error().message());
  auto offset = p.uint(1, "offset");
  if (!offset) return r.fail(ErrorCode::invalid_params, offset.error().message());
  auto length = p.uint(2, "length");
  if (!length) return r.fail(ErrorCode::invalid_params, length.error().message());
  // Longer reads are cut to the chunk limit; the client goes on from offset
  // + the bytes it got.
  std::uint64_t clamped = std::min<std::uint64_t>(*length, options_.max_chunk);
  workers_.submit([store = store_, ref = std::move(*ref), offset = *offset, length = clamped,
                   responder = hold(r)]() mutable -> ipc::Task {
    auto fail = [&](const Error& e) -> ipc::Task {
      return [code = code_for(e), msg = e.message(), responder = std::move(responder)]() mutable {
        responder->fail(code, msg);
      };
    };
    auto v = store->get(ref);
    if (!v) return fail(v.error());
    if (v->tier != pit::Tier::active) {
      return fail(Error::described(EAGAIN, fmt::format("{}@{} is in the {} tier; restore it first "
                                                      "(symphonyctl artifact restore {}@{})",
                                                      v->name, v->version, pit::to_string(v->tier), v->name,
                                                      v->version)));
    }
    auto fd = store->open_blob(v->digest);
    if (!fd) return fail(fd.error());
    std::uint64_t n = offset >= v->size ? 0 : std::min<std::uint64_t>(length, v->size - offset);
    std::vector<char> buf(n);
    std::size_t got = 0;
    while (got < n) {
      ssize_t k = ::pread(fd->get(), buf.data() + got, n - got, static_cast<off_t>(offset + got));
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) {
        return fail(k < 0 ? Error::from_errno("read " + v->digest.to_string())
                          : Error(EIO, "read " + v->digest.to_string() + ": blob shorter than recorded"));
      }
      got += static_cast<std::size_t>(k);
    }
    return [buf = std::move(buf), size = v->size, responder = std::move(responder)]() mutable {
      responder->reply_with([&](Packer& pk) {
        pk.pack_map(2);
        pk.pack(std::string_view("data"));
        pk.pack_bin(static_cast<std::uint32_t>(buf.size()));
        pk.pack_bin_body(buf.data(), static_cast<std::uint32_t>(buf.size()));
        pk.pack(std::string_view("size"));
        pk.pack(size);
      });
    };
  });
}

void ArtifactService::query(const ipc::CallContext& call, ipc::Responder& r, int what) {
  Params p(call);
  std::string arg;
  std::optional<pit::ArtifactRef> ref;
  if (what == 0 || what == 4) {
    auto parsed = parse_ref(p, 0);
    if (!parsed) return r.fail(ErrorCode::invalid_params, parsed.error().message());
    ref = std::move(*parsed);
  } else if (what == 1 || what == 2) {
    auto name = p.string(0, "artifact name");
    if (!name) return r.fail(ErrorCode::invalid_params, name.error().message());
    arg = *name;
  } else if (what == 3) {
    if (p.size() > 0) {
      auto prefix = p.string(0, "name prefix");
      if (!prefix) return r.fail(ErrorCode::invalid_params, prefix.error().message());
      arg = *prefix;
    }
  } else {
    auto d = p.string(0, "digest, sha256:HEX");
    if (!d) return r.fail(ErrorCode::invalid_params, d.error().message());
    auto digest = pit::Digest::parse(*d);
    if (!digest) return r.fail(ErrorCode::invalid_params, digest.error().message());
    arg = digest->to_string();
  }
  workers_.submit([store = store_, what, arg = std::move(arg), ref = std::move(ref),
                   responder = hold(r)]() mutable -> ipc::Task {
    Result<std::vector<pit::VersionInfo>> list = std::vector<pit::VersionInfo>{};
    std::optional<Result<pit::VersionInfo>> one;
    switch (what) {
      case 0: one = store->get(*ref); break;
      case 1: one = store->best(arg); break;
      case 2: list = store->versions(arg); break;
      case 3: list = store->list(arg); break;
      case 4: list = store->lineage(*ref); break;
      default: list = store->by_digest(*pit::Digest::parse(arg)); break;
    }
    return [one = std::move(one), list = std::move(list), responder = std::move(responder)]() mutable {
      if (one) {
        if (!*one) return responder->fail(code_for(one->error()), one->error().message());
        return responder->reply_with([&](Packer& pk) { pack_version(pk, **one); });
      }
      if (!list) return responder->fail(code_for(list.error()), list.error().message());
      responder->reply_with([&](Packer& pk) { pack_versions(pk, *list); });
    };
  });
}

void ArtifactService::pin(const ipc::CallContext& call, ipc::Responder& r, bool pin) {
  Params p(call);
  auto ref = parse_ref(p, 0);
  if (!ref) return r.fail(ErrorCode::invalid_params, ref.error().message());
  workers_.submit([store = store_, pin, ref = std::move(*ref), responder = hold(r)]() mutable -> ipc::Task {
    // Resolve "latest" once, so the reply shows the version that was pinned
    // even if a put lands in between.
    Result<pit::VersionInfo> v = store->get(ref);
    if (v) {
      pit::ArtifactRef exact{v->name, v->version};
      auto done = pin ? store->pin(exact) : store->unpin(exact);
      v = done ? store->get(exact) : Result<pit::VersionInfo>(std::move(done).error());
    }
    return [v = std::move(v), responder = std::move(responder)]() mutable {
      if (!v) return responder->fail(code_for(v.error()), v.error().message());
      responder->reply_with([&](Packer& pk) { pack_version(pk, *v); });
    };
  });
}

void ArtifactService::gc(const ipc::CallContext& call, ipc::Responder& r) {
  Params p(call);
  if (p.size() > 0 && !p.opt_bool(0)) {
    return r.fail(ErrorCode::invalid_params, p.bad(0, "dry_run", "a boolean").message());
  }
  bool dry_run = p.opt_bool(0).value_or(false);
  workers_.submit([store = store_, dry_run, responder = hold(r)]() mutable -> ipc::Task {
    auto report = store->gc(dry_run);
    return [dry_run, report = std::move(report), responder = std::move(responder)]() mutable {
      if (!report) return responder->fail(code_for(report.error()), report.error().message());
      responder->reply_with([&](Packer& pk) {
        pk.pack_map(7);
        pk.pack(std::string_view("dry_run"));
        pk.pack(dry_run);
        pk.pack(std::string_view("blobs_removed"));
        pk.pack(report->blobs_removed);
        pk.pack(std::string_view("bytes_removed"));
        pk.pack(report->bytes_removed);
        pk.pack(std::string_view("kept_pinned"));
        pk.pack(report->blobs_kept_pinned);
        pk.pack(std::string_view("kept_held"));
        pk.pack(report->blobs_kept_held);
        pk.pack(std::string_view("kept_grace"));
        pk.pack(report->blobs_kept_grace);
        pk.pack(std::string_view("removed"));
        pk.pack_array(static_cast<std::uint32_t>(report->removed.size()));
        for (const auto& d : report->removed) pk.pack(d.to_string());
      });
    };
  });
}

}  // namespace symphony::daemon
