// The daemon's side of one extension instance (docs/extension-protocol.md).
#include "stage/instance.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include <fmt/format.h>

#include "ipc/msgpack_json.h"

namespace symphony::stage {
namespace rpc = ipc::rpc;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string_view to_string(FailureKind kind) {
  switch (kind) {
    case FailureKind::crash: return "crash";
    case FailureKind::hang: return "hang";
    case FailureKind::timeout: return "timeout";
    case FailureKind::oom: return "oom";
    case FailureKind::syscall: return "syscall";
    case FailureKind::protocol: return "protocol";
    case FailureKind::failed: return "failed";
    case FailureKind::cancelled: return "cancelled";
    case FailureKind::start: return "start";
  }
  return "?";
}

CancelToken::CancelToken() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

void CancelToken::cancel() {
  cancelled_.store(true, std::memory_order_release);
  std::uint64_t one = 1;
  if (fd_) (void)!::write(fd_.get(), &one, sizeof one);
}

namespace {

std::string str(const msgpack::object& o) {
  if (o.type == msgpack::type::STR) return std::string(o.via.str.ptr, o.via.str.size);
  if (o.type == msgpack::type::BIN) return std::string(o.via.bin.ptr, o.via.bin.size);
  return {};
}

const msgpack::object* get(const msgpack::object& map, std::string_view key) {
  if (map.type != msgpack::type::MAP) return nullptr;
  for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
    const auto& kv = map.via.map.ptr[i];
    if (kv.key.type == msgpack::type::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key)
      return &kv.val;
  }
  return nullptr;
}

// The single map a notification or request carries as its params.
const msgpack::object* first_param(const msgpack::object& params) {
  if (params.type != msgpack::type::ARRAY || params.via.array.size == 0) return nullptr;
  return &params.via.array.ptr[0];
}

std::string human_bytes(std::uint64_t b) {
  if (b >= (1ull << 30) && b % (1ull << 30) == 0) return fmt::format("{} GiB", b >> 30);
  if (b >= (1ull << 20)) return fmt::format("{} MiB", b >> 20);
  return fmt::format("{} bytes", b);
}

std::string join(const std::set<std::string>& names) {
  std::string out = "[";
  for (const auto& n : names) out += (out.size() > 1 ? ", " : "") + n;
  return out + "]";
}

void pack_input(rpc::Packer& pk, const InputData& in) {
  pk.pack_map(4);
  pk.pack("artifact");
  pk.pack(in.artifact);
  pk.pack("digest");
  pk.pack(in.digest);
  pk.pack("media_type");
  pk.pack(in.media_type);
  pk.pack("data");
  pk.pack_bin(static_cast<std::uint32_t>(in.data.size()));
  pk.pack_bin_body(in.data.data(), static_cast<std::uint32_t>(in.data.size()));
}

}  // namespace

Instance::Instance(const Manifest& manifest, InstanceOptions options)
    : manifest_(manifest), options_(std::move(options)), decoder_(options_.limits) {}

Instance::~Instance() { shutdown(); }

int Instance::pid() const { return child_ ? child_->pid() : -1; }

std::optional<sandbox::ExitReport> Instance::exit_report() const { return report_; }

Clock::time_point Instance::last_used() const {
  return Clock::time_point(Clock::duration(last_used_ns_.load(std::memory_order_relaxed)));
}

Result<std::unique_ptr<Instance>> Instance::start(sandbox::Launcher& launcher, const Manifest& manifest,
                                                  const std::filesystem::path& workspace,
                                                  InstanceOptions options) {
  std::unique_ptr<Instance> self(new Instance(manifest, std::move(options)));
  const InstanceOptions& o = self->options_;
  self->workspace_ = workspace.string();
  std::filesystem::path ws = workspace.empty() ? std::filesystem::path("/nonexistent-workspace") : workspace;
  auto spec = sandbox_spec(manifest, ws);
  if (!spec) return std::move(spec).error();
  if (workspace.empty()) {
    // No workspace for this run: drop the grants that would name one.
    std::erase_if(spec->permissions.binds, [&](const sandbox::Bind& b) {
      return b.path.rfind(ws.string(), 0) == 0;
    });
  }
  // The manifest's timeout bounds each step, not the pooled instance's life.
  spec->limits.timeout.reset();
  if (o.seccomp_log) spec->seccomp = sandbox::SeccompMode::log;
  spec->uid = o.uid;
  spec->gid = o.gid;
  std::string name = "ext-" + manifest.id;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  }
  spec->name = name;
  spec->env = {
      "SYMPHONY_EXT_FD=3",
      "SYMPHONY_PROTOCOL=1",
      "SYMPHONY_EXT_ID=" + manifest.id,
      "SYMPHONY_EXT_VERSION=" + to_string(manifest.version),
      "HOME=/tmp",
      "TMPDIR=/tmp",
      "PATH=/usr/local/bin:/usr/bin:/bin",
      "LANG=C.UTF-8",
  };
  if (!workspace.empty()) spec->env.push_back("SYMPHONY_WORKSPACE=" + workspace.string());
  std::error_code ec;
  if (!o.python_sdk_dir.empty() && std::filesystem::is_directory(o.python_sdk_dir, ec)) {
    std::string sdk = std::filesystem::path(o.python_sdk_dir).lexically_normal().string();
    while (sdk.size() > 1 && sdk.back() == '/') sdk.pop_back();
    bool covered = std::any_of(spec->permissions.binds.begin(), spec->permissions.binds.end(),
                               [&](const sandbox::Bind& b) { return sdk.rfind(b.path + "/", 0) == 0 || sdk == b.path; });
    if (!covered && sdk.rfind("/usr/", 0) != 0) spec->permissions.binds.push_back({sdk, sandbox::Access::read_only});
    spec->env.push_back("PYTHONPATH=" + sdk);
  }

  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return Error::from_errno("socketpair for the extension channel");
  }
  UniqueFd host_end(pair[0]), ext_end(pair[1]);
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return Error::from_errno("pipe for the extension's output");
  UniqueFd out_r(pipefd[0]), out_w(pipefd[1]);
  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devnull) return Error::from_errno("open /dev/null");
  spec->fds = {{ext_end.get(), 3}, {devnull.get(), 0}, {out_w.get(), 1}, {out_w.get(), 2}};

  auto child = launcher.spawn(*spec);
  if (!child) return std::move(child).error().wrap(fmt::format("starting {} {}", manifest.id, to_string(manifest.version)));
  self->child_ = std::move(*child);
  ext_end.reset();
  out_w.reset();
  devnull.reset();
  (void)::fcntl(host_end.get(), F_SETFL, O_NONBLOCK);
  (void)::fcntl(out_r.get(), F_SETFL, O_NONBLOCK);
  self->channel_ = std::move(host_end);
  self->output_ = std::move(out_r);
  self->alive_.store(true, std::memory_order_release);
  self->last_seen_ = Clock::now();
  self->last_used_ns_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  if (auto r = self->handshake(); !r) {
    return std::move(r).error().wrap(fmt::format("{} {}", manifest.id, to_string(manifest.version)));
  }
  return self;
}

Instance::Wake Instance::wait(Clock::time_point deadline, int extra_fd, bool want_write) {
  pollfd fds[4];
  nfds_t n = 0;
  fds[n++] = {channel_.get(), static_cast<short>(POLLIN | (want_write ? POLLOUT : 0)), 0};
  fds[n++] = {output_ ? output_.get() : -1, POLLIN, 0};
  fds[n++] = {child_ ? child_->wait_fd() : -1, POLLIN, 0};
  if (extra_fd >= 0) fds[n++] = {extra_fd, POLLIN, 0};
  auto now = Clock::now();
  int timeout = deadline <= now ? 0
                                : static_cast<int>(std::min<std::int64_t>(
                                      std::chrono::ceil<milliseconds>(deadline - now).count(), 60'000));
  int r = ::poll(fds, n, timeout);
  output_ready_ = r > 0 && (fds[1].revents & (POLLIN | POLLHUP)) != 0;
  if (r < 0 && errno == EINTR) return Wake::ready;
  if (r <= 0) return Clock::now() >= deadline ? Wake::timeout : Wake::ready;
  if (extra_fd >= 0 && (fds[3].revents & POLLIN)) return Wake::extra;
  if (fds[2].revents & POLLIN) return Wake::child;
  return Wake::ready;
}

bool Instance::read_channel(std::vector<rpc::Message>& out) {
  for (;;) {
    auto buf = decoder_.prepare(64 * 1024);
    ssize_t n = ::recv(channel_.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      decode_problem_ = fmt::format("channel read failed: {}", ::strerror(errno));
      return false;
    }
    if (n == 0) {
      decode_problem_.clear();  // end of stream, not a protocol error
      return false;
    }
    decoder_.commit(static_cast<std::size_t>(n));
    for (;;) {
      auto d = decoder_.next();
      if (d.kind == rpc::Decoded::Kind::need_more) break;
      if (d.kind != rpc::Decoded::Kind::message) {
        decode_problem_ = d.problem.empty() ? std::string(rpc::to_string(d.code)) : d.problem;
        return false;
      }
      last_seen_ = Clock::now();
      out.push_back(std::move(d.message));
    }
  }
  return true;
}

bool Instance::flush_out() {
  while (out_sent_ < out_.size()) {
    auto bytes = out_.bytes().subspan(out_sent_);
    ssize_t n = ::send(channel_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      return false;
    }
    out_sent_ += static_cast<std::size_t>(n);
  }
  out_.clear();
  out_sent_ = 0;
  return true;
}

void Instance::drain_output(const StepEvents* events) {
  if (!output_) return;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(output_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) output_.reset();  // every writer is gone
      break;
    }
    output_partial_.append(buf, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t nl; (nl = output_partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(output_partial_.data() + start, nl - start);
      if (events && events->log)
        events->log("output", line);
      else if (options_.on_output)
        options_.on_output(line);
    }
    output_partial_.erase(0, start);
    // A line longer than 64 KiB is passed on in pieces.
    if (output_partial_.size() > 65536) {
      if (events && events->log) events->log("output", output_partial_);
      else if (options_.on_output) options_.on_output(output_partial_);
      output_partial_.clear();
    }
  }
}

StepFailure Instance::kill_with(FailureKind kind, std::string message) {
  if (child_) {
    (void)child_->kill();
    report_ = child_->wait();
  }
  alive_.store(false, std::memory_order_release);
  channel_.reset();
  return {kind, std::move(message), true};
}

StepFailure Instance::ended() {
  alive_.store(false, std::memory_order_release);
  if (!child_) return {FailureKind::crash, "instance ended", true};
  // The channel closed or the child signalled its end: give it the grace
  // period to finish dying on its own, then make sure.
  auto deadline = Clock::now() + options_.cancel_grace;
  std::optional<sandbox::ExitReport> report;
  while (!(report = child_->poll_exit())) {
    if (Clock::now() >= deadline) break;
    pollfd p{child_->wait_fd(), POLLIN, 0};
    (void)::poll(&p, 1, 20);
  }
  if (!report) {
    (void)child_->kill();
    report_ = child_->wait();
    drain_output(nullptr);
    channel_.reset();
    return {FailureKind::crash, "instance closed its channel but did not exit; killed", true};
  }
  drain_output(nullptr);
  channel_.reset();
  report_ = report;
  const auto& r = *report;
  switch (r.reason) {
    case sandbox::ExitReason::exited:
      return {FailureKind::crash, fmt::format("instance crashed: exited with status {}", r.exit_code), true};
    case sandbox::ExitReason::signaled: {
      const char* abbrev = ::sigabbrev_np(r.signal);
      return {FailureKind::crash,
              fmt::format("instance crashed: killed by signal {}{}", r.signal,
                          abbrev ? fmt::format(" (SIG{})", abbrev) : std::string()),
              true};
    }
    case sandbox::ExitReason::oom:
      return {FailureKind::oom,
              manifest_.limits.memory
                  ? fmt::format("instance ran out of memory (limit {})", human_bytes(manifest_.limits.memory->value))
                  : std::string("instance ran out of memory"),
              true};
    case sandbox::ExitReason::seccomp:
      return {FailureKind::syscall, fmt::format("instance made a forbidden system call: {}", r.syscall), true};
    case sandbox::ExitReason::timeout:
      return {FailureKind::timeout, "instance ran past its sandbox timeout", true};
    case sandbox::ExitReason::setup_failed:
      return {FailureKind::start, "instance could not start: " + r.message, true};
  }
  return {FailureKind::crash, r.message, true};
}

Result<void> Instance::handshake() {
  auto deadline = Clock::now() + options_.handshake_timeout;
  std::vector<rpc::Message> in;
  for (;;) {
    Wake w = wait(deadline, -1, false);
    drain_output(nullptr);
    if (w == Wake::timeout) {
      kill_with(FailureKind::start, "");
      return Error::described(ETIMEDOUT, fmt::format("no ext.hello within {} ms of the start",
                                                      options_.handshake_timeout.count()));
    }
    bool open = read_channel(in);
    if (!in.empty()) break;
    if (!open) {
      if (!decode_problem_.empty()) {
        kill_with(FailureKind::protocol, "");
        return Error::described(EPROTO, "protocol violation before the handshake: " + decode_problem_);
      }
      auto f = ended();
      return Error::described(ECHILD, "ended before the handshake: " + f.message);
    }
    if (w == Wake::child) {
      if (child_->poll_exit()) {
        // Read what it may have said before dying, then report the end.
        auto f = ended();
        return Error::described(ECHILD, "ended before the handshake: " + f.message);
      }
    }
  }
  const rpc::Message& m = in.front();
  auto refuse = [&](rpc::ErrorCode code, const std::string& why) -> Result<void> {
    if (m.type == rpc::MessageType::request) {
      rpc::write_error_response(out_, m.id, code, why);
      (void)flush_out();
    }
    kill_with(FailureKind::start, "");
    return Error::described(EPROTO, "handshake refused: " + why);
  };
  if (m.type != rpc::MessageType::request || m.method != "ext.hello") {
    return refuse(rpc::ErrorCode::handshake_required,
                  fmt::format("the first message must be the request ext.hello, got {} '{}'",
                              m.type == rpc::MessageType::request ? "request" : "message", m.method));
  }
  const msgpack::object* p = first_param(m.params);
  if (p == nullptr || p->type != msgpack::type::MAP) {
    return refuse(rpc::ErrorCode::invalid_params, "ext.hello takes one map");
  }
  const msgpack::object* proto = get(*p, "protocol");
  if (proto == nullptr || proto->type != msgpack::type::POSITIVE_INTEGER || proto->via.u64 != 1) {
    return refuse(rpc::ErrorCode::protocol_mismatch,
                  fmt::format("protocol: the daemon speaks 1, the extension {}",
                              proto ? ipc::to_json(*proto).dump() : std::string("sent none")));
  }
  std::string id = get(*p, "id") ? str(*get(*p, "id")) : "";
  if (id != manifest_.id) {
    return refuse(rpc::ErrorCode::invalid_params,
                  fmt::format("id: the manifest says '{}', the extension '{}'", manifest_.id, id));
  }
  std::string version = get(*p, "version") ? str(*get(*p, "version")) : "";
  if (version != to_string(manifest_.version)) {
    return refuse(rpc::ErrorCode::invalid_params,
                  fmt::format("version: the manifest says {}, the extension {}", to_string(manifest_.version),
                              version.empty() ? "none" : version));
  }
  std::set<std::string> declared, registered;
  for (const auto& c : manifest_.capabilities) declared.insert(c.name);
  if (const msgpack::object* caps = get(*p, "capabilities"); caps && caps->type == msgpack::type::ARRAY) {
    for (std::uint32_t i = 0; i < caps->via.array.size; ++i) registered.insert(str(caps->via.array.ptr[i]));
  }
  if (declared != registered) {
    return refuse(rpc::ErrorCode::invalid_params,
                  fmt::format("capabilities: the manifest declares {}, the extension registered {}", join(declared),
                              join(registered)));
  }
  rpc::write_response(out_, m.id, [&](rpc::Packer& pk) {
    pk.pack_map(5);
    pk.pack("protocol");
    pk.pack(1);
    pk.pack("instance");
    pk.pack(options_.instance_id);
    pk.pack("heartbeat_ms");
    pk.pack(static_cast<std::uint64_t>(options_.heartbeat.count()));
    pk.pack("symphony");
    pk.pack(options_.symphony_version);
    pk.pack("workspace");
    pk.pack(workspace_);
  });
  if (!flush_out()) {
    auto f = ended();
    return Error::described(ECHILD, "ended during the handshake: " + f.message);
  }
  // More messages may have come with the hello (an early heartbeat).
  for (std::size_t i = 1; i < in.size(); ++i) {
    if (auto f = handle_notification(in[i], 0, nullptr)) {
      return Error::described(EPROTO, f->message);
    }
  }
  return ok();
}

std::optional<StepFailure> Instance::handle_notification(const rpc::Message& m, std::uint64_t call,
                                                         const StepEvents* events) {
  if (m.type != rpc::MessageType::notification) {
    return kill_with(FailureKind::protocol,
                     m.type == rpc::MessageType::request
                         ? fmt::format("protocol violation: unexpected request '{}'", m.method)
                         : fmt::format("protocol violation: a response to request {} that was never sent", m.id));
  }
  if (m.method == "ext.heartbeat") return std::nullopt;
  const msgpack::object* p = first_param(m.params);
  if (m.method == "step.progress" || m.method == "step.log") {
    if (p == nullptr || p->type != msgpack::type::MAP) {
      return kill_with(FailureKind::protocol, fmt::format("protocol violation: {} takes one map", m.method));
    }
    const msgpack::object* c = get(*p, "call");
    // Late messages about an earlier call are dropped; they are not an error.
    if (c && c->type == msgpack::type::POSITIVE_INTEGER && c->via.u64 != call) return std::nullopt;
    if (events == nullptr) {
      if (m.method == "step.log" && options_.on_output) {
        const msgpack::object* msg = get(*p, "message");
        options_.on_output(msg ? str(*msg) : std::string());
      }
      return std::nullopt;
    }
    if (m.method == "step.progress") {
      const msgpack::object* f = get(*p, "fraction");
      double fraction = 0;
      if (f && (f->type == msgpack::type::FLOAT64 || f->type == msgpack::type::FLOAT32)) fraction = f->via.f64;
      if (f && f->type == msgpack::type::POSITIVE_INTEGER) fraction = static_cast<double>(f->via.u64);
      fraction = std::clamp(fraction, 0.0, 1.0);
      const msgpack::object* msg = get(*p, "message");
      if (events->progress) events->progress(fraction, msg ? str(*msg) : std::string());
    } else {
      const msgpack::object* level = get(*p, "level");
      const msgpack::object* msg = get(*p, "message");
      std::string lv = level ? str(*level) : "info";
      if (lv != "debug" && lv != "info" && lv != "warn" && lv != "error") lv = "info";
      if (events->log) events->log(lv, msg ? str(*msg) : std::string());
    }
    return std::nullopt;
  }
  return kill_with(FailureKind::protocol, fmt::format("protocol violation: unknown notification '{}'", m.method));
}

StepOutcome Instance::run(const StepCall& call, const StepEvents& events, const CancelToken* cancel) {
  std::lock_guard lock(mu_);
  last_used_ns_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  if (!alive()) return StepFailure{FailureKind::crash, "instance is not running", true};
  steps_.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t call_id = next_call_++;
  const std::uint32_t request_id = next_id_++;
  rpc::Packer pk(out_);
  pk.pack_array(4);
  pk.pack(static_cast<int>(rpc::MessageType::request));
  pk.pack(request_id);
  pk.pack("step.run");
  pk.pack_array(1);
  pk.pack_map(7);
  pk.pack("call");
  pk.pack(call_id);
  pk.pack("step");
  pk.pack(call.step);
  pk.pack("capability");
  pk.pack(call.capability);
  pk.pack("params");
  ipc::pack_json(pk, call.params);
  pk.pack("inputs");
  pk.pack_map(static_cast<std::uint32_t>(call.inputs.size()));
  for (const auto& in : call.inputs) {
    pk.pack(in.name);
    if (in.fan_out || in.items.size() != 1) {
      pk.pack_array(static_cast<std::uint32_t>(in.items.size()));
      for (const auto& item : in.items) pack_input(pk, item);
    } else {
      pack_input(pk, in.items.front());
    }
  }
  pk.pack("workspace");
  pk.pack(call.workspace);
  pk.pack("deadline_ms");
  pk.pack(static_cast<std::uint64_t>(call.timeout ? call.timeout->count() : 0));

  const auto start = Clock::now();
  std::optional<Clock::time_point> step_deadline;
  if (call.timeout && call.timeout->count() > 0) step_deadline = start + *call.timeout;
  std::optional<Clock::time_point> cancel_deadline;
  last_seen_ = start;  // heartbeats queued while idle say nothing about now
  std::vector<rpc::Message> in;
  for (;;) {
    if (!flush_out()) return ended();
    auto deadline = last_seen_ + options_.heartbeat_timeout;
    if (step_deadline) deadline = std::min(deadline, *step_deadline);
    if (cancel_deadline) deadline = std::min(deadline, *cancel_deadline);
    int extra = (cancel != nullptr && !cancel_deadline) ? cancel->fd() : -1;
    Wake w = wait(deadline, extra, !out_.empty());
    if (output_ready_) drain_output(&events);
    in.clear();
    bool open = read_channel(in);
    for (const auto& m : in) {
      if (m.type == rpc::MessageType::response && m.id == request_id) {
        last_used_ns_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
        if (m.error.type != msgpack::type::NIL) {
          std::string code = get(m.error, "code") ? str(*get(m.error, "code")) : "failed";
          std::string message = get(m.error, "message") ? str(*get(m.error, "message")) : rpc::describe_error(m.error);
          if (code == "cancelled") return StepFailure{FailureKind::cancelled, "cancelled", false};
          bool retryable = code == "failed";
          if (const msgpack::object* r = get(m.error, "retryable"); r && r->type == msgpack::type::BOOLEAN)
            retryable = r->via.boolean;
          if (code != "failed") message = code + ": " + message;
          return StepFailure{FailureKind::failed, message, retryable};
        }
        if (cancel_deadline) return StepFailure{FailureKind::cancelled, "cancelled", false};
        StepResult result;
        const msgpack::object* outputs = get(m.result, "outputs");
        const Capability* cap = manifest_.find_capability(call.capability);
        if (outputs && outputs->type == msgpack::type::MAP) {
          for (std::uint32_t i = 0; i < outputs->via.map.size; ++i) {
            const auto& kv = outputs->via.map.ptr[i];
            StepOutputData o;
            o.name = str(kv.key);
            if (cap && std::none_of(cap->outputs.begin(), cap->outputs.end(),
                                    [&](const Output& d) { return d.name == o.name; })) {
              return StepFailure{FailureKind::failed,
                                 fmt::format("the extension returned output '{}', which capability {} does not declare",
                                             o.name, call.capability),
                                 false};
            }
            const msgpack::object* data = get(kv.val, "data");
            if (data == nullptr || (data->type != msgpack::type::BIN && data->type != msgpack::type::STR)) {
              return kill_with(FailureKind::protocol,
                               fmt::format("protocol violation: output '{}' has no data (bin or str)", o.name));
            }
            o.data = str(*data);
            const msgpack::object* mt = get(kv.val, "media_type");
            o.media_type = mt ? str(*mt) : "";
            if (o.media_type.empty() && cap) {
              for (const auto& d : cap->outputs) {
                if (d.name == o.name) o.media_type = d.media_type;
              }
            }
            if (o.media_type.empty()) o.media_type = "application/octet-stream";
            result.outputs.push_back(std::move(o));
          }
        } else if (outputs && outputs->type != msgpack::type::NIL) {
          return kill_with(FailureKind::protocol, "protocol violation: step.run result 'outputs' is not a map");
        }
        if (const msgpack::object* s = get(m.result, "summary")) result.summary = ipc::to_json(*s);
        return result;
      }
      if (m.type == rpc::MessageType::response) {
        return kill_with(FailureKind::protocol,
                         fmt::format("protocol violation: a response to request {} that was never sent", m.id));
      }
      if (auto f = handle_notification(m, call_id, &events)) return *f;
    }
    if (!open) {
      if (!decode_problem_.empty()) return kill_with(FailureKind::protocol, "protocol violation: " + decode_problem_);
      return ended();
    }
    if (w == Wake::child) {
      if (child_->poll_exit()) return ended();
    }
    auto now = Clock::now();
    if (w == Wake::extra && !cancel_deadline) {
      cancel_deadline = now + options_.cancel_grace;
      rpc::Packer cp(out_);
      cp.pack_array(3);
      cp.pack(static_cast<int>(rpc::MessageType::notification));
      cp.pack("step.cancel");
      cp.pack_array(1);
      cp.pack_map(1);
      cp.pack("call");
      cp.pack(call_id);
      continue;
    }
    if (cancel_deadline && now >= *cancel_deadline) {
      auto f = kill_with(FailureKind::cancelled,
                         fmt::format("cancelled (the instance did not stop within {} ms and was killed)",
                                     options_.cancel_grace.count()));
      f.retryable = false;
      return f;
    }
    if (step_deadline && now >= *step_deadline) {
      return kill_with(FailureKind::timeout, fmt::format("step timed out after {} ms", call.timeout->count()));
    }
    if (now >= last_seen_ + options_.heartbeat_timeout) {
      return kill_with(FailureKind::hang, fmt::format("instance hung: no message for {} ms",
                                                      options_.heartbeat_timeout.count()));
    }
  }
}

Result<void> Instance::health() {
  std::unique_lock lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return ok();  // a step is running: run() watches it
  if (!alive()) return Error::described(ECHILD, "instance is not running");
  drain_output(nullptr);
  std::vector<rpc::Message> in;
  bool open = read_channel(in);
  for (const auto& m : in) {
    if (auto f = handle_notification(m, 0, nullptr)) return Error::described(EPROTO, f->message);
  }
  if (!open) {
    if (!decode_problem_.empty()) {
      auto f = kill_with(FailureKind::protocol, "protocol violation: " + decode_problem_);
      return Error::described(EPROTO, f.message);
    }
    return Error::described(ECHILD, ended().message);
  }
  if (child_->poll_exit()) return Error::described(ECHILD, ended().message);
  if (Clock::now() >= last_seen_ + options_.heartbeat_timeout) {
    auto f = kill_with(FailureKind::hang, fmt::format("instance hung: no message for {} ms while idle",
                                                      options_.heartbeat_timeout.count()));
    return Error::described(ETIMEDOUT, f.message);
  }
  return ok();
}

void Instance::shutdown() {
  std::lock_guard lock(mu_);
  if (!child_) return;
  if (alive()) {
    // ext.shutdown [{}]: one empty map.
    out_.clear();
    out_sent_ = 0;
    rpc::Packer pk(out_);
    pk.pack_array(3);
    pk.pack(static_cast<int>(rpc::MessageType::notification));
    pk.pack("ext.shutdown");
    pk.pack_array(1);
    pk.pack_map(0);
    (void)flush_out();
    auto deadline = Clock::now() + options_.cancel_grace;
    while (!child_->poll_exit()) {
      if (Clock::now() >= deadline) break;
      pollfd p{child_->wait_fd(), POLLIN, 0};
      (void)::poll(&p, 1, 20);
      drain_output(nullptr);
    }
  }
  (void)child_->kill();
  report_ = child_->wait();
  drain_output(nullptr);
  alive_.store(false, std::memory_order_release);
  channel_.reset();
  child_.reset();
}

// ---------------------------------------------------------------------------
// Parameters against the manifest's schema

namespace {

bool has_type(const nlohmann::json& v, ParamType t) {
  switch (t) {
    case ParamType::string: return v.is_string();
    case ParamType::integer: return v.is_number_integer();
    case ParamType::number: return v.is_number();
    case ParamType::boolean: return v.is_boolean();
    case ParamType::array: return v.is_array();
    case ParamType::object: return v.is_object();
    case ParamType::artifact: return v.is_string();
  }
  return false;
}

std::string_view json_type(const nlohmann::json& v) {
  if (v.is_string()) return "string";
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  if (v.is_boolean()) return "boolean";
  if (v.is_array()) return "array";
  if (v.is_object()) return "object";
  return "null";
}

}  // namespace

Result<nlohmann::json> check_params(const Capability& capability, const nlohmann::json& params,
                                    const std::vector<std::string>& inputs) {
  if (!params.is_object() && !params.is_null()) {
    return Error::invalid(fmt::format("params: expected a table, got {}", json_type(params)));
  }
  nlohmann::json out = params.is_null() ? nlohmann::json::object() : params;
  for (const auto& [name, value] : out.items()) {
    auto it = std::find_if(capability.params.begin(), capability.params.end(),
                           [&](const Param& p) { return p.name == name; });
    if (it == capability.params.end()) {
      std::string known;
      for (const auto& p : capability.params) known += (known.empty() ? "" : ", ") + p.name;
      return Error::invalid(fmt::format("params.{}: {} has no such parameter (it takes: {})", name, capability.name,
                                        known.empty() ? "none" : known));
    }
    if (!has_type(value, it->type)) {
      return Error::invalid(fmt::format("params.{}: expected {}, got {}", name, to_string(it->type), json_type(value)));
    }
  }
  for (const auto& name : inputs) {
    auto it = std::find_if(capability.params.begin(), capability.params.end(),
                           [&](const Param& p) { return p.name == name && p.type == ParamType::artifact; });
    if (it == capability.params.end()) {
      std::string known;
      for (const auto& p : capability.params) {
        if (p.type == ParamType::artifact) known += (known.empty() ? "" : ", ") + p.name;
      }
      return Error::invalid(fmt::format("inputs.{}: {} takes no such input (it takes: {})", name, capability.name,
                                        known.empty() ? "none" : known));
    }
  }
  for (const auto& p : capability.params) {
    if (out.contains(p.name)) continue;
    if (p.type == ParamType::artifact && std::find(inputs.begin(), inputs.end(), p.name) != inputs.end()) continue;
    if (p.required) {
      return Error::invalid(fmt::format("params.{}: required by {} and not given", p.name, capability.name));
    }
    if (p.default_value) out[p.name] = *p.default_value;
  }
  return out;
}

}  // namespace symphony::stage
