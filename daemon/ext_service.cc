// ext.* over msgpack-rpc: parameters are read and the caller's credentials
// copied on the loop thread; the registry is asked on the service's worker
// thread (it reads and writes the disk), and the answer goes out on the
// loop thread again.
#include "daemon/ext_service.h"

#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "daemon/rpc_util.h"
#include "ipc/msgpack_json.h"

namespace symphony::daemon {
namespace {

using ipc::rpc::ErrorCode;
using ipc::rpc::Packer;

// What a worker job hands back to the loop thread: a failure, or how to
// pack the result.
struct Answer {
  std::optional<ErrorCode> code;
  std::string message;
  std::function<void(Packer&)> pack;
};

Answer failure(ErrorCode code, std::string message) { return {code, std::move(message), {}}; }

Answer failure(const Error& e) {
  ErrorCode code = e.code() == EACCES ? ErrorCode::access_denied : error_code_for(e.code());
  return failure(code, e.message());
}

Answer success(std::function<void(Packer&)> pack) { return {std::nullopt, {}, std::move(pack)}; }

// The caller, copied out of the CallContext (which dies with the handler).
struct Caller {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::vector<std::uint32_t> groups;
  // Root and the daemon's own user may manage extensions for everyone.
  bool privileged() const { return uid == 0 || uid == ::geteuid(); }
};

Caller caller_of(const ipc::CallContext& call) {
  return {call.peer.uid, call.peer.gid, call.peer.groups};
}

struct Options {
  std::optional<stage::Scope> scope;
  bool force = false;
};

// The optional options map at position `i`: {"scope": "system"|"user"} and,
// where `allow_force`, {"force": bool}. Absent or nil: defaults.
Result<Options> parse_options(const ipc::CallContext& call, const Params& p, std::size_t i,
                              bool allow_force) {
  Options out;
  const msgpack::object* o = p.at(i);
  if (o == nullptr || o->type == msgpack::type::NIL) return out;
  std::string_view known = allow_force ? "scope, force" : "scope";
  if (o->type != msgpack::type::MAP) return p.bad(i, "options", fmt::format("a map ({})", known));
  for (std::uint32_t k = 0; k < o->via.map.size; ++k) {
    const auto& kv = o->via.map.ptr[k];
    std::string_view key = kv.key.type == msgpack::type::STR ? as_str(kv.key) : std::string_view();
    if (key == "scope" && kv.val.type == msgpack::type::STR) {
      std::string_view v = as_str(kv.val);
      if (v == "system") {
        out.scope = stage::Scope::system;
      } else if (v == "user") {
        out.scope = stage::Scope::user;
      } else {
        return Error::invalid(fmt::format(
            "{}: option 'scope' must be \"system\" or \"user\", not \"{}\"", call.method, v));
      }
    } else if (key == "force" && allow_force && kv.val.type == msgpack::type::BOOLEAN) {
      out.force = kv.val.via.boolean;
    } else if (key == "scope" && kv.val.type == msgpack::type::NIL) {
      // the default
    } else {
      return Error::invalid(
          fmt::format("{}: option '{}' is unknown or of the wrong type (scope: \"system\" or "
                      "\"user\"{})",
                      call.method, key, allow_force ? ", force: boolean" : ""));
    }
  }
  return out;
}

Error needs_privilege(std::string_view method, std::string_view what, const Caller& c,
                      bool hint_user) {
  return Error::described(
      EACCES, fmt::format("{}: {} needs root or the daemon's user (uid {}); you are uid {}{}",
                          method, what, ::geteuid(), c.uid,
                          hint_user ? ". Use --user to manage your own extensions" : ""));
}

std::string access_name(sandbox::Access a) {
  return a == sandbox::Access::read_write ? "rw" : "ro";
}

template <class T>
void pack_opt(Packer& pk, const std::optional<T>& v) {
  if (v) {
    pk.pack(*v);
  } else {
    pk.pack_nil();
  }
}

void pack_capability(Packer& pk, const stage::Capability& c) {
  pk.pack_map(4);
  pk.pack(std::string_view("name"));
  pk.pack(c.name);
  pk.pack(std::string_view("description"));
  pk.pack(c.description);
  pk.pack(std::string_view("params"));
  pk.pack_array(static_cast<std::uint32_t>(c.params.size()));
  for (const auto& p : c.params) {
    pk.pack_map(4 + (p.default_value ? 1 : 0));
    pk.pack(std::string_view("name"));
    pk.pack(p.name);
    pk.pack(std::string_view("type"));
    pk.pack(stage::to_string(p.type));
    pk.pack(std::string_view("required"));
    pk.pack(p.required);
    pk.pack(std::string_view("description"));
    pk.pack(p.description);
    if (p.default_value) {
      pk.pack(std::string_view("default"));
      ipc::pack_json(pk, *p.default_value);
    }
  }
  pk.pack(std::string_view("outputs"));
  pk.pack_array(static_cast<std::uint32_t>(c.outputs.size()));
  for (const auto& o : c.outputs) {
    pk.pack_map(2);
    pk.pack(std::string_view("name"));
    pk.pack(o.name);
    pk.pack(std::string_view("media_type"));
    pk.pack(o.media_type);
  }
}

// A filesystem grant as the manifest writes it: "workspace",
// "workspace/REL" or an absolute path.
std::string grant_path(const stage::FilesystemGrant& g) {
  if (!g.in_workspace) return g.path;
  return g.path.empty() ? std::string("workspace") : "workspace/" + g.path;
}

}  // namespace

void pack_installed(Packer& pk, const stage::Installed& e, std::uint32_t extra) {
  const stage::Manifest& m = e.manifest;
  pk.pack_map(15 + extra);
  pk.pack(std::string_view("id"));
  pk.pack(m.id);
  pk.pack(std::string_view("version"));
  pk.pack(stage::to_string(m.version));
  pk.pack(std::string_view("kind"));
  pk.pack(stage::to_string(m.kind));
  pk.pack(std::string_view("description"));
  pk.pack(m.description);
  pk.pack(std::string_view("scope"));
  pk.pack(stage::to_string(e.scope));
  pk.pack(std::string_view("bundled"));
  pk.pack(e.bundled);
  pk.pack(std::string_view("enabled"));
  pk.pack(e.enabled);
  pk.pack(std::string_view("dir"));
  pk.pack(e.dir.string());
  pk.pack(std::string_view("capabilities"));
  pk.pack_array(static_cast<std::uint32_t>(m.capabilities.size()));
  for (const auto& c : m.capabilities) pack_capability(pk, c);
  pk.pack(std::string_view("permissions"));
  pk.pack_map(4);
  pk.pack(std::string_view("filesystem"));
  pk.pack_array(static_cast<std::uint32_t>(m.permissions.filesystem.size()));
  for (const auto& g : m.permissions.filesystem) {
    pk.pack_map(2);
    pk.pack(std::string_view("path"));
    pk.pack(grant_path(g));
    pk.pack(std::string_view("access"));
    pk.pack(access_name(g.access));
  }
  pk.pack(std::string_view("network"));
  pk.pack(m.permissions.network);
  pk.pack(std::string_view("gpu"));
  pk.pack(m.permissions.gpu);
  pk.pack(std::string_view("devices"));
  pk.pack(m.permissions.devices);
  pk.pack(std::string_view("limits"));
  pk.pack_map(5);
  pk.pack(std::string_view("cpu"));
  pack_opt(pk, m.limits.cpu);
  pk.pack(std::string_view("memory"));
  pack_opt(pk,
           m.limits.memory ? std::optional<std::uint64_t>(m.limits.memory->value) : std::nullopt);
  pk.pack(std::string_view("pids"));
  pack_opt(pk, m.limits.pids);
  pk.pack(std::string_view("timeout_ms"));
  pack_opt(
      pk, m.limits.timeout ? std::optional<std::int64_t>(m.limits.timeout->count()) : std::nullopt);
  pk.pack(std::string_view("gpu_memory"));
  pack_opt(pk, m.limits.gpu_memory ? std::optional<std::uint64_t>(m.limits.gpu_memory->value)
                                   : std::nullopt);
  pk.pack(std::string_view("activation"));
  pk.pack(stage::to_string(m.activation));
  pk.pack(std::string_view("symphony"));
  pk.pack(m.symphony.text());
  pk.pack(std::string_view("other_versions"));
  pk.pack(e.other_versions);
  pk.pack(std::string_view("shadowed"));
  pk.pack(e.shadowed);
}

Result<std::unique_ptr<ExtService>> ExtService::create(ipc::Server& server,
                                                       stage::Registry& registry) {
  // One thread: registry changes are serialised anyway, and answers come
  // back in the order the requests were made.
  auto workers = ipc::WorkerPool::create(server.loop(), 1);
  if (!workers) return std::move(workers).error().wrap("extension service workers");
  return std::unique_ptr<ExtService>(new ExtService(server, registry, std::move(*workers)));
}

ExtService::ExtService(ipc::Server& server, stage::Registry& registry,
                       std::unique_ptr<ipc::WorkerPool> workers)
    : server_(server), registry_(registry), workers_(std::move(workers)) {}

ExtService::~ExtService() = default;

namespace {

// Runs `job` on `workers` and answers `r` with what it returns.
void run(ipc::WorkerPool& workers, ipc::Responder& r, std::function<Answer()> job) {
  workers.submit([job = std::move(job), responder = hold(r)]() mutable -> ipc::Task {
    Answer a = job();
    return [a = std::move(a), responder = std::move(responder)]() mutable {
      if (a.code) return responder->fail(*a.code, a.message);
      responder->reply_with(a.pack);
    };
  });
}

}  // namespace

void ExtService::register_methods() {
  server_.add_method("ext.install",
                     [this](const ipc::CallContext& c, ipc::Responder& r) { install(c, r); });
  server_.add_method("ext.ls", [this](const ipc::CallContext& c, ipc::Responder& r) { ls(c, r); });
  server_.add_method("ext.info",
                     [this](const ipc::CallContext& c, ipc::Responder& r) { info(c, r); });
  server_.add_method("ext.enable", [this](const ipc::CallContext& c, ipc::Responder& r) {
    set_enabled(c, r, true);
  });
  server_.add_method("ext.disable", [this](const ipc::CallContext& c, ipc::Responder& r) {
    set_enabled(c, r, false);
  });
  server_.add_method("ext.remove",
                     [this](const ipc::CallContext& c, ipc::Responder& r) { remove(c, r); });
}

void ExtService::install(const ipc::CallContext& call, ipc::Responder& r) {
  Params p(call);
  auto path = p.string(0, "path of the extension's directory");
  if (!path) return r.fail(ErrorCode::invalid_params, path.error().message());
  auto options = parse_options(call, p, 1, true);
  if (!options) return r.fail(ErrorCode::invalid_params, options.error().message());
  std::filesystem::path dir{std::string(*path)};
  if (!dir.is_absolute()) {
    return r.fail(
        ErrorCode::invalid_params,
        fmt::format("ext.install: '{}' must be an absolute path (the daemon does not know the "
                    "caller's working directory)",
                    *path));
  }
  Caller caller = caller_of(call);
  stage::Scope scope = options->scope.value_or(stage::Scope::system);
  if (scope == stage::Scope::system && !caller.privileged()) {
    return r.fail(ErrorCode::access_denied,
                  needs_privilege(call.method, "installing for everyone", caller, true).message());
  }
  // Another user's install must not copy what that user could not read.
  std::optional<stage::ReadAs> read_as;
  if (!caller.privileged()) read_as = stage::ReadAs{caller.uid, caller.gid, caller.groups};
  run(*workers_, r, [this, dir, scope, caller, force = options->force, read_as]() -> Answer {
    auto outcome = registry_.install(dir, scope, caller.uid, force, read_as);
    if (!outcome) return failure(outcome.error());
    const auto& e = outcome->installed;
    spdlog::info(
        "extension {} {} installed {} from {} by uid {}{}", e.manifest.id,
        stage::to_string(e.manifest.version),
        scope == stage::Scope::system ? "system-wide" : "for uid " + std::to_string(caller.uid),
        dir.string(), caller.uid,
        outcome->previous ? " (replaces " + *outcome->previous + ")" : "");
    return success([o = std::move(*outcome)](Packer& pk) {
      pack_installed(pk, o.installed, 1);
      pk.pack(std::string_view("previous"));
      pack_opt(pk, o.previous);
    });
  });
}

void ExtService::ls(const ipc::CallContext& call, ipc::Responder& r) {
  Caller caller = caller_of(call);
  run(*workers_, r, [this, caller]() -> Answer {
    auto list = registry_.list(caller.uid);
    return success([list = std::move(list)](Packer& pk) {
      pk.pack_array(static_cast<std::uint32_t>(list.size()));
      for (const auto& e : list) pack_installed(pk, e);
    });
  });
}

void ExtService::info(const ipc::CallContext& call, ipc::Responder& r) {
  Params p(call);
  auto id = p.string(0, "extension id");
  if (!id) return r.fail(ErrorCode::invalid_params, id.error().message());
  Caller caller = caller_of(call);
  run(*workers_, r, [this, caller, id = std::string(*id)]() -> Answer {
    if (auto e = registry_.find(id, caller.uid)) {
      return success([e = std::move(*e)](Packer& pk) { pack_installed(pk, e); });
    }
    std::vector<std::string> ids;
    for (const auto& e : registry_.list(caller.uid)) ids.push_back(e.manifest.id);
    auto similar = stage::similar_ids(id, ids);
    return failure(
        ErrorCode::not_found,
        similar.empty()
            ? fmt::format("no extension '{}' is installed (`symphonyctl ext ls` lists them)", id)
            : fmt::format("no extension '{}' is installed; similar: {}", id,
                          fmt::join(similar, ", ")));
  });
}

void ExtService::set_enabled(const ipc::CallContext& call, ipc::Responder& r, bool enabled) {
  Params p(call);
  auto id = p.string(0, "extension id");
  if (!id) return r.fail(ErrorCode::invalid_params, id.error().message());
  auto options = parse_options(call, p, 1, false);
  if (!options) return r.fail(ErrorCode::invalid_params, options.error().message());
  Caller caller = caller_of(call);
  run(*workers_, r,
      [this, caller, enabled, scope = options->scope, id = std::string(*id),
       method = std::string(call.method)]() -> Answer {
        // Which one it would change: the given scope, else what resolves.
        std::optional<stage::Scope> at = scope;
        if (!at) {
          auto e = registry_.find(id, caller.uid);
          if (!e)
            return failure(ErrorCode::not_found, fmt::format("no extension '{}' is installed", id));
          at = e->scope;
        }
        if (*at == stage::Scope::system && !caller.privileged()) {
          return failure(needs_privilege(method,
                                         enabled ? "enabling an extension for everyone"
                                                 : "disabling an extension for everyone",
                                         caller, false));
        }
        auto e = registry_.set_enabled(id, enabled, at, caller.uid);
        if (!e) return failure(e.error());
        spdlog::info("extension {} {} {} by uid {}", id, enabled ? "enabled" : "disabled",
                     e->scope == stage::Scope::system ? "system-wide"
                                                      : "for uid " + std::to_string(caller.uid),
                     caller.uid);
        return success([e = std::move(*e)](Packer& pk) { pack_installed(pk, e); });
      });
}

void ExtService::remove(const ipc::CallContext& call, ipc::Responder& r) {
  Params p(call);
  auto id = p.string(0, "extension id");
  if (!id) return r.fail(ErrorCode::invalid_params, id.error().message());
  auto options = parse_options(call, p, 1, false);
  if (!options) return r.fail(ErrorCode::invalid_params, options.error().message());
  Caller caller = caller_of(call);
  run(*workers_, r, [this, caller, scope = options->scope, id = std::string(*id)]() -> Answer {
    std::optional<stage::Scope> at = scope;
    if (!at) {
      // The caller's own copy if there is one, else the system-wide one.
      auto e = registry_.find(id, caller.uid);
      at = e && e->scope == stage::Scope::user ? stage::Scope::user : stage::Scope::system;
    }
    if (*at == stage::Scope::system && !caller.privileged()) {
      auto e = registry_.find(id, caller.uid);
      if (!e)
        return failure(ErrorCode::not_found, fmt::format("no extension '{}' is installed", id));
      return failure(needs_privilege("ext.remove", "removing an extension installed for everyone",
                                     caller, false));
    }
    auto removed = registry_.remove(id, *at, caller.uid);
    if (!removed) return failure(removed.error());
    spdlog::info(
        "extension {} {} removed {} by uid {}", id, stage::to_string(removed->manifest.version),
        *at == stage::Scope::system ? "system-wide" : "for uid " + std::to_string(caller.uid),
        caller.uid);
    return success([e = std::move(*removed)](Packer& pk) { pack_installed(pk, e); });
  });
}

}  // namespace symphony::daemon
