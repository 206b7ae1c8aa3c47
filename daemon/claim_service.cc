// Claims over msgpack-rpc: parameter checking, per-connection ownership and
// the deferred answer of a queued request.
#include "daemon/claim_service.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

#include "daemon/rpc_util.h"

namespace symphony::daemon {
namespace {

using ipc::rpc::ErrorCode;
using ipc::rpc::Packer;

ErrorCode code_for(int err) { return error_code_for(err); }

void pack_grant(Packer& pk, const pit::ClaimId& claim, std::uint32_t preempted, bool waited) {
  pk.pack_map(3);
  pk.pack(std::string_view("claim"));
  pk.pack(claim.value);
  pk.pack(std::string_view("preempted"));
  pk.pack(preempted);
  pk.pack(std::string_view("waited"));
  pk.pack(waited);
}

}  // namespace

ClaimService::ClaimService(ipc::Server& server, pit::Arbiter& arbiter) : server_(server), arbiter_(arbiter) {}

ClaimService::~ClaimService() {
  if (timer_armed_) server_.loop().cancel_timer(timer_);
}

void ClaimService::register_methods() {
  server_.on_disconnect([this, alive = std::weak_ptr<int>(alive_)](std::uint64_t connection) {
    if (alive.expired()) return;
    std::size_t released = arbiter_.release_all(pit::ClaimantId{connection});
    std::erase_if(owner_, [&](const auto& kv) { return kv.second == connection; });
    if (released > 0) spdlog::debug("connection {} closed: released {} claims", connection, released);
    rearm();
  });
  server_.add_method("pit.claim", [this](const ipc::CallContext& c, ipc::Responder& r) { claim(c, r); });
  server_.add_method("pit.release", [this](const ipc::CallContext& c, ipc::Responder& r) { release(c, r); });
}

// pit.claim(resources, options): resources is an array of "kind:name"
// strings (exclusive) or {"resource": "kind:name", "mode": "shared" |
// "exclusive"} maps; options {"priority": int, "wait_ms": uint}.
void ClaimService::claim(const ipc::CallContext& call, ipc::Responder& r) {
  const auto& params = call.params.via.array;
  if (params.size < 1 || params.ptr[0].type != msgpack::type::ARRAY || params.ptr[0].via.array.size == 0) {
    return r.fail(ErrorCode::invalid_params,
                  "pit.claim: parameter 1 (resources) must be a non-empty array of \"kind:name\" strings or "
                  "{\"resource\", \"mode\"} maps");
  }
  const auto& list = params.ptr[0].via.array;
  if (list.size > pit::kMaxClaimItems) {
    return r.fail(ErrorCode::invalid_params, fmt::format("pit.claim: at most {} resources per claim, not {}",
                                                         pit::kMaxClaimItems, list.size));
  }
  std::vector<pit::ClaimItem> items;
  for (std::uint32_t i = 0; i < list.size; ++i) {
    const auto& e = list.ptr[i];
    std::string_view name;
    pit::ClaimMode mode = pit::ClaimMode::exclusive;
    if (e.type == msgpack::type::STR) {
      name = as_str(e);
    } else if (e.type == msgpack::type::MAP) {
      for (std::uint32_t k = 0; k < e.via.map.size; ++k) {
        const auto& kv = e.via.map.ptr[k];
        if (kv.key.type != msgpack::type::STR || kv.val.type != msgpack::type::STR) continue;
        if (as_str(kv.key) == "resource") name = as_str(kv.val);
        if (as_str(kv.key) == "mode") {
          if (as_str(kv.val) == "shared") {
            mode = pit::ClaimMode::shared;
          } else if (as_str(kv.val) != "exclusive") {
            return r.fail(ErrorCode::invalid_params,
                          fmt::format("pit.claim: resources[{}]: mode must be shared or exclusive, not '{}'", i,
                                      as_str(kv.val)));
          }
        }
      }
    }
    if (name.empty()) {
      return r.fail(ErrorCode::invalid_params, fmt::format("pit.claim: resources[{}] names no resource", i));
    }
    auto key = arbiter_.intern(name);
    if (!key) return r.fail(ErrorCode::invalid_params, fmt::format("pit.claim: resources[{}]: {}", i, key.error().message()));
    items.push_back({*key, mode});
  }
  std::int32_t priority = 0;
  std::chrono::milliseconds wait{30'000};
  if (params.size > 1 && params.ptr[1].type == msgpack::type::MAP) {
    const auto& m = params.ptr[1].via.map;
    for (std::uint32_t k = 0; k < m.size; ++k) {
      const auto& kv = m.ptr[k];
      if (kv.key.type != msgpack::type::STR) continue;
      std::string_view key = as_str(kv.key);
      bool integer = kv.val.type == msgpack::type::POSITIVE_INTEGER || kv.val.type == msgpack::type::NEGATIVE_INTEGER;
      if (key == "priority" && integer) {
        priority = kv.val.type == msgpack::type::POSITIVE_INTEGER
                       ? static_cast<std::int32_t>(std::min<std::uint64_t>(kv.val.via.u64, 1000))
                       : static_cast<std::int32_t>(std::max<std::int64_t>(kv.val.via.i64, -1000));
      } else if (key == "wait_ms" && kv.val.type == msgpack::type::POSITIVE_INTEGER) {
        wait = std::chrono::milliseconds(std::min<std::uint64_t>(kv.val.via.u64, 86'400'000));
      } else {
        return r.fail(ErrorCode::invalid_params,
                      fmt::format("pit.claim: option '{}' is unknown or of the wrong type (priority: integer, "
                                  "wait_ms: non-negative integer)",
                                  key));
      }
    }
  }
  std::uint64_t connection = call.connection_id;
  auto responder = hold(r);
  pit::ClaimRequest request{pit::ClaimantId{connection}, pit::Priority{priority}, items, wait};
  std::weak_ptr<int> alive = alive_;
  auto outcome = arbiter_.claim(request, [this, alive, connection, responder](Result<pit::ClaimGrant> grant) {
    if (alive.expired()) return;
    if (!grant) return responder->fail(code_for(grant.error().code()), grant.error().message());
    owner_[grant->claim.value] = connection;
    responder->reply_with([&](Packer& pk) { pack_grant(pk, grant->claim, grant->preempted, true); });
  });
  if (!outcome) {
    responder->fail(code_for(outcome.error().code()), outcome.error().message());
  } else if (outcome->status == pit::ClaimStatus::granted) {
    owner_[outcome->claim.value] = connection;
    responder->reply_with([&](Packer& pk) { pack_grant(pk, outcome->claim, outcome->preempted, false); });
  }
  rearm();
}

void ClaimService::release(const ipc::CallContext& call, ipc::Responder& r) {
  const auto& params = call.params.via.array;
  if (params.size < 1 || params.ptr[0].type != msgpack::type::POSITIVE_INTEGER) {
    return r.fail(ErrorCode::invalid_params, "pit.release: parameter 1 (claim id from pit.claim) must be an integer");
  }
  std::uint64_t id = params.ptr[0].via.u64;
  auto it = owner_.find(id);
  if (it == owner_.end() || it->second != call.connection_id) {
    return r.fail(ErrorCode::not_found, fmt::format("pit.release: this connection holds no claim {}", id));
  }
  owner_.erase(it);
  auto done = arbiter_.release(pit::ClaimId{id});
  if (!done) {
    // Revoked by a preemption meanwhile: the claim is gone either way.
    r.fail(code_for(done.error().code()), done.error().message());
  } else {
    r.reply_with([](Packer& pk) { pk.pack_nil(); });
  }
  rearm();
}

void ClaimService::rearm() {
  if (timer_armed_) {
    server_.loop().cancel_timer(timer_);
    timer_armed_ = false;
  }
  auto next = arbiter_.next_wakeup();
  if (next == std::chrono::steady_clock::time_point::max()) return;
  auto delay = std::max(next - std::chrono::steady_clock::now(), std::chrono::steady_clock::duration::zero());
  timer_armed_ = true;
  timer_ = server_.loop().add_timer(delay, [this] {
    timer_armed_ = false;
    arbiter_.poll();
    rearm();
  });
}

}  // namespace symphony::daemon
