// pool.* over msgpack-rpc: leases per connection, allocations on worker
// threads, pre-warming and health checks on timers.
#include "daemon/pool_service.h"

#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "daemon/rpc_util.h"

namespace symphony::daemon {
namespace {

using ipc::rpc::ErrorCode;
using ipc::rpc::Packer;
using namespace std::chrono_literals;

ErrorCode code_for(int err) { return error_code_for(err); }

std::uint64_t half_of_ram() {
  long pages = ::sysconf(_SC_PHYS_PAGES);
  long page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page) / 2 : 1ull << 30;
}

}  // namespace

PoolService::PoolService(ipc::Server& server, PoolServiceConfig config)
    : server_(server), config_(std::move(config)) {}

PoolService::~PoolService() {
  server_.loop().cancel_timer(health_timer_);
  server_.loop().cancel_timer(maintain_timer_);
  workers_.reset();  // allocations in flight finish (their leases are dropped)
  leases_.clear();   // before the pool they point into
  pool_.reset();     // unloads every instance
  loader_.reset();
}

Result<std::unique_ptr<PoolService>> PoolService::create(ipc::Server& server, sandbox::Launcher* launcher,
                                                         PoolServiceConfig config) {
  std::unique_ptr<PoolService> s(new PoolService(server, std::move(config)));
  std::vector<ModelCommand> commands;
  for (const auto& m : s->config_.models) commands.push_back({m.name, m.command});
  s->loader_ = std::make_unique<SandboxModelLoader>(launcher, std::move(commands));
  pit::pool::PoolConfig pc;
  std::uint64_t budget = s->config_.host_memory_bytes ? s->config_.host_memory_bytes : half_of_ram();
  pc.devices = {{"host", pit::pool::Bytes{budget}}};
  auto pool = pit::pool::Pool::create(pc, *s->loader_);
  if (!pool) return std::move(pool).error().wrap("pool manager");
  s->pool_ = std::move(*pool);
  for (const auto& m : s->config_.models) {
    pit::pool::ModelSpec spec{m.name, "host", pit::pool::Bytes{m.memory_bytes}, m.max_instances, m.max_users};
    if (auto id = s->pool_->add_model(spec); !id) return std::move(id).error().wrap("pit.models." + m.name);
  }
  auto workers = ipc::WorkerPool::create(server.loop(), 4);
  if (!workers) return std::move(workers).error().wrap("pool workers");
  s->workers_ = std::move(*workers);
  // Pinned models are loaded now, in the background.
  for (const auto& m : s->config_.models) {
    if (!m.pinned) continue;
    auto id = s->pool_->find(m.name);
    s->workers_->submit([pool = s->pool_.get(), id = *id, name = m.name]() -> ipc::Task {
      if (auto r = pool->pin(id); !r) spdlog::warn("pit.models.{}: pin: {}", name, r.error().message());
      return {};
    });
  }
  s->schedule_health();
  s->schedule_maintain();
  return s;
}

void PoolService::register_methods() {
  server_.on_disconnect([this, alive = std::weak_ptr<int>(alive_)](std::uint64_t connection) {
    if (alive.expired()) return;
    std::erase_if(leases_, [&](const auto& kv) { return kv.second->connection == connection; });
  });
  server_.add_method("pool.acquire", [this](const ipc::CallContext& c, ipc::Responder& r) { acquire(c, r); });
  server_.add_method("pool.release", [this](const ipc::CallContext& c, ipc::Responder& r) { release(c, r); });
  server_.add_method("pool.prewarm", [this](const ipc::CallContext& c, ipc::Responder& r) { prewarm(c, r); });
  server_.add_method("pool.pin", [this](const ipc::CallContext& c, ipc::Responder& r) { pin(c, r, true); });
  server_.add_method("pool.unpin", [this](const ipc::CallContext& c, ipc::Responder& r) { pin(c, r, false); });
}

// pool.acquire(model, {"priority": "interactive"|"batch", "stream": uint,
// "wait_ms": uint}) -> {"lease", "model", "slot", "instance"}
void PoolService::acquire(const ipc::CallContext& call, ipc::Responder& r) {
  const auto& params = call.params.via.array;
  if (params.size < 1 || params.ptr[0].type != msgpack::type::STR) {
    return r.fail(ErrorCode::invalid_params, "pool.acquire: parameter 1 (model name) must be a string");
  }
  auto model = pool_->find(as_str(params.ptr[0]));
  if (!model) {
    return r.fail(ErrorCode::not_found,
                  fmt::format("pool.acquire: no model '{}' (declare it as [pit.models.NAME] in the configuration)",
                              as_str(params.ptr[0])));
  }
  pit::pool::Request request;
  request.wait = 30s;
  if (params.size > 1 && params.ptr[1].type == msgpack::type::MAP) {
    const auto& m = params.ptr[1].via.map;
    for (std::uint32_t k = 0; k < m.size; ++k) {
      const auto& kv = m.ptr[k];
      std::string_view key = kv.key.type == msgpack::type::STR ? as_str(kv.key) : std::string_view();
      if (key == "priority" && kv.val.type == msgpack::type::STR &&
          (as_str(kv.val) == "interactive" || as_str(kv.val) == "batch")) {
        request.priority.value = as_str(kv.val) == "interactive" ? 0 : 1;
      } else if (key == "stream" && kv.val.type == msgpack::type::POSITIVE_INTEGER) {
        request.stream = static_cast<std::uint32_t>(kv.val.via.u64);
      } else if (key == "wait_ms" && kv.val.type == msgpack::type::POSITIVE_INTEGER) {
        request.wait = std::chrono::milliseconds(std::min<std::uint64_t>(kv.val.via.u64, 600'000));
      } else {
        return r.fail(ErrorCode::invalid_params,
                      fmt::format("pool.acquire: option '{}' is unknown or of the wrong type (priority: "
                                  "\"interactive\" or \"batch\", stream and wait_ms: non-negative integers)",
                                  key));
      }
    }
  }
  std::uint64_t connection = call.connection_id;
  auto responder = hold(r);
  std::weak_ptr<int> alive = alive_;
  workers_->submit([this, alive, model = *model, request, connection, responder]() -> ipc::Task {
    auto lease = std::make_shared<Result<pit::pool::Lease>>(pool_->allocate(model, request));
    return [this, alive, connection, responder, lease] {
      if (alive.expired()) return;
      // The model exists (checked above): any error is about loading or
      // waiting for it, even when it carries ENOENT (a missing program).
      if (!*lease) return responder->fail(ErrorCode::failed, lease->error().message());
      if (!responder->connected()) return;  // nobody to hand it to: the lease goes back now
      auto held = std::make_shared<Held>(Held{connection, std::move(**lease)});
      std::uint64_t id = next_lease_++;
      const pit::pool::Lease& l = held->lease;
      responder->reply_with([&](Packer& pk) {
        pk.pack_map(4);
        pk.pack(std::string_view("lease"));
        pk.pack(id);
        pk.pack(std::string_view("model"));
        pk.pack(pool_->spec(l.model())->name);
        pk.pack(std::string_view("slot"));
        pk.pack(l.slot());
        pk.pack(std::string_view("instance"));
        pk.pack(l.instance().value);
      });
      leases_[id] = std::move(held);
    };
  });
}

void PoolService::release(const ipc::CallContext& call, ipc::Responder& r) {
  const auto& params = call.params.via.array;
  if (params.size < 1 || params.ptr[0].type != msgpack::type::POSITIVE_INTEGER) {
    return r.fail(ErrorCode::invalid_params, "pool.release: parameter 1 (lease id from pool.acquire) must be an integer");
  }
  auto it = leases_.find(params.ptr[0].via.u64);
  if (it == leases_.end() || it->second->connection != call.connection_id) {
    return r.fail(ErrorCode::not_found,
                  fmt::format("pool.release: this connection holds no lease {}", params.ptr[0].via.u64));
  }
  leases_.erase(it);  // the lease goes back to the pool (lock-free)
  r.reply_with([](Packer& pk) { pk.pack_nil(); });
}

void PoolService::prewarm(const ipc::CallContext& call, ipc::Responder& r) {
  const auto& params = call.params.via.array;
  if (params.size < 1 || params.ptr[0].type != msgpack::type::ARRAY) {
    return r.fail(ErrorCode::invalid_params, "pool.prewarm: parameter 1 (model names) must be an array of strings");
  }
  std::vector<pit::pool::ModelId> models;
  for (std::uint32_t i = 0; i < params.ptr[0].via.array.size; ++i) {
    const auto& e = params.ptr[0].via.array.ptr[i];
    auto id = e.type == msgpack::type::STR ? pool_->find(as_str(e)) : std::nullopt;
    if (!id) {
      return r.fail(ErrorCode::not_found, fmt::format("pool.prewarm: models[{}] names no declared model", i));
    }
    models.push_back(*id);
  }
  auto responder = hold(r);
  workers_->submit([pool = pool_.get(), models, responder]() -> ipc::Task {
    auto done = pool->prewarm(models);
    return [done, responder] {
      if (!done) return responder->fail(code_for(done.error().code()), done.error().message());
      responder->reply_with([](Packer& pk) { pk.pack_nil(); });
    };
  });
}

void PoolService::pin(const ipc::CallContext& call, ipc::Responder& r, bool pin) {
  const auto& params = call.params.via.array;
  auto id = params.size > 0 && params.ptr[0].type == msgpack::type::STR ? pool_->find(as_str(params.ptr[0]))
                                                                         : std::nullopt;
  if (!id) {
    return r.fail(params.size > 0 && params.ptr[0].type == msgpack::type::STR ? ErrorCode::not_found
                                                                             : ErrorCode::invalid_params,
                  fmt::format("{}: parameter 1 must name a declared model", call.method));
  }
  if (!pin) {
    pool_->unpin(*id);
    return r.reply_with([](Packer& pk) { pk.pack_nil(); });
  }
  auto responder = hold(r);
  workers_->submit([pool = pool_.get(), id = *id, responder]() -> ipc::Task {
    auto done = pool->pin(id);
    return [done, responder] {
      if (!done) return responder->fail(code_for(done.error().code()), done.error().message());
      responder->reply_with([](Packer& pk) { pk.pack_nil(); });
    };
  });
}

void PoolService::schedule_health() {
  if (config_.health_interval.count() == 0) return;
  health_timer_ = server_.loop().add_timer(config_.health_interval, [this] {
    if (!health_running_) {
      health_running_ = true;
      std::weak_ptr<int> alive = alive_;
      workers_->submit([this, alive]() -> ipc::Task {
        pool_->check_health();
        return [this, alive] {
          if (!alive.expired()) health_running_ = false;
        };
      });
    }
    schedule_health();
  });
}

void PoolService::schedule_maintain() {
  // Learning and predictive pre-warming: cheap when nothing was allocated.
  maintain_timer_ = server_.loop().add_timer(1s, [this] {
    if (!maintain_running_) {
      maintain_running_ = true;
      std::weak_ptr<int> alive = alive_;
      workers_->submit([this, alive]() -> ipc::Task {
        pool_->maintain();
        return [this, alive] {
          if (!alive.expired()) maintain_running_ = false;
        };
      });
    }
    schedule_maintain();
  });
}

void PoolService::pack_stats(Packer& pk) const {
  auto st = pool_->stats();
  auto kv = [&](std::string_view k, auto v) {
    pk.pack(k);
    pk.pack(v);
  };
  std::uint32_t n = 12 + static_cast<std::uint32_t>(pit::pool::kInstanceStateCount + st.queued.size() +
                                                    2 * st.devices.size());
  pk.pack_map(n);
  kv("models", static_cast<std::uint64_t>(config_.models.size()));
  kv("leases", static_cast<std::uint64_t>(leases_.size()));
  kv("hits", st.hits);
  kv("misses", st.misses);
  std::uint64_t uses = st.hits + st.misses;
  kv("hit_rate", uses ? static_cast<double>(st.hits) / static_cast<double>(uses) : 0.0);
  kv("waits", st.waits);
  kv("evictions", st.evictions);
  kv("prewarms", st.prewarms);
  kv("prewarm_hits", st.prewarm_hits);
  kv("load_failures", st.load_failures);
  kv("health_failures", st.health_failures);
  kv("reloads", st.reloads);
  for (std::size_t i = 0; i < pit::pool::kInstanceStateCount; ++i) {
    kv("instances_" + std::string(pit::pool::to_string(static_cast<pit::pool::InstanceState>(i))), st.instances[i]);
  }
  for (const auto& [cls, q] : st.queued) kv("queued_" + cls, q);
  for (const auto& d : st.devices) {
    kv(d.name + "_budget_bytes", d.budget.value);
    kv(d.name + "_held_bytes", d.held.value);
  }
}

}  // namespace symphony::daemon
