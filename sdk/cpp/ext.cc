// The extension side of docs/extension-protocol.md. Three threads share the
// channel: the caller's thread runs the handshake and then the handlers, one
// step at a time; a reader thread decodes everything the daemon sends (so a
// step.cancel or ext.shutdown is seen while a handler is busy) and queues the
// step.run calls; a heartbeat thread sends ext.heartbeat. Writes go through
// one mutex so messages never interleave. Self-contained on purpose (msgpack-c
// and nlohmann/json only): third parties link this library without the rest
// of Symphony.
#include "symphony/ext.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <msgpack.hpp>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <variant>

#ifndef SYMPHONY_EXT_SDK_VERSION
#define SYMPHONY_EXT_SDK_VERSION "0.1.0"
#endif

namespace symphony::ext {

using Packer = msgpack::packer<msgpack::sbuffer>;

namespace {

constexpr std::uint32_t kHelloId = 0;
constexpr std::uint64_t kDefaultHeartbeatMs = 1000;
constexpr std::size_t kReadChunk = 64 * 1024;
// Generous: a message carries whole input artifacts. Depth is what keeps the
// recursive conversions below off the end of the stack.
constexpr std::size_t kMaxDepth = 64;

// A message from the daemon that does not have the shape the protocol
// defines; the text says what and where.
class ShapeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string_view type_name(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "boolean";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER: return "integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return "float";
    case msgpack::type::STR: return "string";
    case msgpack::type::BIN: return "binary";
    case msgpack::type::ARRAY: return "array";
    case msgpack::type::MAP: return "map";
    case msgpack::type::EXT: return "extension";
  }
  return "unknown";
}

std::string_view as_text(const msgpack::object& o) {
  if (o.type == msgpack::type::STR) return {o.via.str.ptr, o.via.str.size};
  return {o.via.bin.ptr, o.via.bin.size};
}

bool is_text(const msgpack::object& o) {
  return o.type == msgpack::type::STR || o.type == msgpack::type::BIN;
}

std::string expected(std::string_view path, std::string_view what, const msgpack::object& got) {
  return std::string(path) + ": expected " + std::string(what) + ", got " +
         std::string(type_name(got));
}

// The msgpack value as JSON: bin becomes a string, map keys must be strings.
nlohmann::json to_json(const msgpack::object& o, const std::string& path) {
  switch (o.type) {
    case msgpack::type::NIL: return nullptr;
    case msgpack::type::BOOLEAN: return o.via.boolean;
    case msgpack::type::POSITIVE_INTEGER: return o.via.u64;
    case msgpack::type::NEGATIVE_INTEGER: return o.via.i64;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return o.via.f64;
    case msgpack::type::STR:
    case msgpack::type::BIN: return std::string(as_text(o));
    case msgpack::type::ARRAY: {
      nlohmann::json out = nlohmann::json::array();
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
        out.push_back(to_json(o.via.array.ptr[i], path + "[" + std::to_string(i) + "]"));
      }
      return out;
    }
    case msgpack::type::MAP: {
      nlohmann::json out = nlohmann::json::object();
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        if (!is_text(kv.key)) {
          throw ShapeError(path + ": a map key is " + std::string(type_name(kv.key)) +
                           "; keys must be strings");
        }
        std::string key(as_text(kv.key));
        out[key] = to_json(kv.val, path + "." + key);
      }
      return out;
    }
    case msgpack::type::EXT: break;
  }
  throw ShapeError(path + ": msgpack extension types are not supported");
}

void pack_text(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

void pack_bytes(Packer& pk, std::string_view s) {
  pk.pack_bin(static_cast<std::uint32_t>(s.size()));
  pk.pack_bin_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

void pack_json(Packer& pk, const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded: pk.pack_nil(); return;
    case nlohmann::json::value_t::boolean:
      if (j.get<bool>()) {
        pk.pack_true();
      } else {
        pk.pack_false();
      }
      return;
    case nlohmann::json::value_t::number_integer: pk.pack(j.get<std::int64_t>()); return;
    case nlohmann::json::value_t::number_unsigned: pk.pack(j.get<std::uint64_t>()); return;
    case nlohmann::json::value_t::number_float: pk.pack_double(j.get<double>()); return;
    case nlohmann::json::value_t::string: pack_text(pk, j.get_ref<const std::string&>()); return;
    case nlohmann::json::value_t::binary: {
      const auto& b = j.get_binary();
      pk.pack_bin(static_cast<std::uint32_t>(b.size()));
      pk.pack_bin_body(reinterpret_cast<const char*>(b.data()), static_cast<std::uint32_t>(b.size()));
      return;
    }
    case nlohmann::json::value_t::array:
      pk.pack_array(static_cast<std::uint32_t>(j.size()));
      for (const auto& v : j) pack_json(pk, v);
      return;
    case nlohmann::json::value_t::object:
      pk.pack_map(static_cast<std::uint32_t>(j.size()));
      for (const auto& [k, v] : j.items()) {
        pack_text(pk, k);
        pack_json(pk, v);
      }
      return;
  }
}

std::string_view level_name(Level level) {
  switch (level) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
  }
  return "info";
}

// A decoded message, classified.
struct Message {
  enum class Type { request = 0, response = 1, notification = 2 };
  Type type = Type::request;
  std::uint32_t id = 0;
  std::string_view method;
  const msgpack::object* params = nullptr;  // request and notification: an array
  const msgpack::object* error = nullptr;   // response
  const msgpack::object* result = nullptr;  // response
  msgpack::object_handle handle;
};

std::uint32_t as_msgid(const msgpack::object& o, std::string_view what) {
  if (o.type != msgpack::type::POSITIVE_INTEGER || o.via.u64 > 0xffffffffu) {
    throw ShapeError(std::string(what) + ": expected a message id (an unsigned 32-bit integer)");
  }
  return static_cast<std::uint32_t>(o.via.u64);
}

Message classify(msgpack::object_handle handle) {
  Message m;
  const msgpack::object& o = handle.get();
  if (o.type != msgpack::type::ARRAY || o.via.array.size == 0) {
    throw ShapeError("a message must be a non-empty array, got " + std::string(type_name(o)));
  }
  const auto& a = o.via.array;
  if (a.ptr[0].type != msgpack::type::POSITIVE_INTEGER || a.ptr[0].via.u64 > 2) {
    throw ShapeError("message type must be 0, 1 or 2");
  }
  m.type = static_cast<Message::Type>(a.ptr[0].via.u64);
  const std::uint32_t want = m.type == Message::Type::notification ? 3 : 4;
  if (a.size != want) {
    throw ShapeError("a message of type " + std::to_string(a.ptr[0].via.u64) + " has " +
                     std::to_string(want) + " elements, got " + std::to_string(a.size));
  }
  if (m.type == Message::Type::response) {
    m.id = as_msgid(a.ptr[1], "response");
    m.error = &a.ptr[2];
    m.result = &a.ptr[3];
  } else {
    const msgpack::object& method = a.ptr[m.type == Message::Type::request ? 2 : 1];
    if (m.type == Message::Type::request) m.id = as_msgid(a.ptr[1], "request");
    if (method.type != msgpack::type::STR) throw ShapeError(expected("method", "string", method));
    m.method = as_text(method);
    m.params = &a.ptr[m.type == Message::Type::request ? 3 : 2];
    if (m.params->type != msgpack::type::ARRAY) {
      throw ShapeError(expected(std::string(m.method) + " params", "array", *m.params));
    }
  }
  m.handle = std::move(handle);
  return m;
}

// The single map every params array carries ([{…}]); an empty array counts
// as an empty map.
const msgpack::object* params_map(const Message& m) {
  const auto& a = m.params->via.array;
  if (a.size == 0) return nullptr;
  if (a.size != 1 || a.ptr[0].type != msgpack::type::MAP) {
    throw ShapeError(std::string(m.method) + ": params must be an array of one map");
  }
  return &a.ptr[0];
}

const msgpack::object* field(const msgpack::object* map, std::string_view name) {
  if (map == nullptr) return nullptr;
  for (std::uint32_t i = 0; i < map->via.map.size; ++i) {
    const auto& kv = map->via.map.ptr[i];
    if (is_text(kv.key) && as_text(kv.key) == name) return &kv.val;
  }
  return nullptr;
}

std::string string_field(const msgpack::object* map, std::string_view name, std::string_view path) {
  const msgpack::object* v = field(map, name);
  if (v == nullptr || v->type == msgpack::type::NIL) return {};
  if (v->type != msgpack::type::STR) {
    throw ShapeError(expected(std::string(path) + "." + std::string(name), "string", *v));
  }
  return std::string(as_text(*v));
}

std::optional<std::uint64_t> uint_field(const msgpack::object* map, std::string_view name,
                                        std::string_view path) {
  const msgpack::object* v = field(map, name);
  if (v == nullptr || v->type == msgpack::type::NIL) return std::nullopt;
  if (v->type != msgpack::type::POSITIVE_INTEGER) {
    throw ShapeError(expected(std::string(path) + "." + std::string(name),
                              "non-negative integer", *v));
  }
  return v->via.u64;
}

Input parse_input(const msgpack::object& o, const std::string& path) {
  if (o.type != msgpack::type::MAP) throw ShapeError(expected(path, "map", o));
  Input in;
  in.artifact = string_field(&o, "artifact", path);
  in.digest = string_field(&o, "digest", path);
  in.media_type = string_field(&o, "media_type", path);
  if (const msgpack::object* data = field(&o, "data");
      data != nullptr && data->type != msgpack::type::NIL) {
    if (!is_text(*data)) throw ShapeError(expected(path + ".data", "binary or string", *data));
    in.data = std::string(as_text(*data));
  }
  return in;
}

// step.run's map; throws ShapeError naming the field.
Step::Request parse_step_run(const msgpack::object* map) {
  Step::Request r;
  std::optional<std::uint64_t> call = uint_field(map, "call", "step.run");
  if (!call) throw ShapeError("step.run.call: missing required field");
  r.call = *call;
  r.id = string_field(map, "step", "step.run");
  r.capability = string_field(map, "capability", "step.run");
  if (r.capability.empty()) throw ShapeError("step.run.capability: missing required field");
  if (const msgpack::object* p = field(map, "params"); p != nullptr && p->type != msgpack::type::NIL) {
    if (p->type != msgpack::type::MAP) throw ShapeError(expected("step.run.params", "map", *p));
    r.params = to_json(*p, "step.run.params");
  }
  if (const msgpack::object* in = field(map, "inputs"); in != nullptr && in->type != msgpack::type::NIL) {
    if (in->type != msgpack::type::MAP) throw ShapeError(expected("step.run.inputs", "map", *in));
    for (std::uint32_t i = 0; i < in->via.map.size; ++i) {
      const auto& kv = in->via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR) {
        throw ShapeError(expected("step.run.inputs: a key", "string", kv.key));
      }
      std::string name(as_text(kv.key));
      std::string path = "step.run.inputs." + name;
      std::vector<Input> items;
      if (kv.val.type == msgpack::type::ARRAY) {
        for (std::uint32_t j = 0; j < kv.val.via.array.size; ++j) {
          items.push_back(parse_input(kv.val.via.array.ptr[j], path + "[" + std::to_string(j) + "]"));
        }
      } else {
        items.push_back(parse_input(kv.val, path));
      }
      r.inputs[name] = std::move(items);
    }
  }
  r.workspace = string_field(map, "workspace", "step.run");
  r.deadline_ms = uint_field(map, "deadline_ms", "step.run").value_or(0);
  return r;
}

void complain(std::string_view ext_id, std::string_view what) {
  // stderr only: stdout belongs to the extension's author.
  std::string line = "symphony-ext " + std::string(ext_id) + ": " + std::string(what) + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace

namespace detail {

// The channel to the daemon: whole messages out under a mutex, a streaming
// decoder in. receive() is called from one thread at a time.
class Channel {
 public:
  explicit Channel(int fd)
      : fd_(fd),
        unpacker_(nullptr, nullptr, MSGPACK_UNPACKER_INIT_BUFFER_SIZE,
                  msgpack::unpack_limit(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
                                        0xffffffff, kMaxDepth)) {}

  // Sends one whole message. False when the daemon is gone (EPIPE and the
  // like); the reader sees the end of stream and winds the instance down.
  bool send(const msgpack::sbuffer& buf) {
    std::lock_guard lock(write_mu_);
    const char* p = buf.data();
    std::size_t left = buf.size();
    while (left > 0) {
      // MSG_NOSIGNAL: a closed peer is an error here, not a SIGPIPE that
      // kills the author's process.
      ssize_t n = is_socket_ ? ::send(fd_, p, left, MSG_NOSIGNAL) : ::write(fd_, p, left);
      if (n < 0 && errno == ENOTSOCK && is_socket_) {
        is_socket_ = false;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    return true;
  }

  // The next message; nullopt at the end of the stream. Throws ShapeError
  // for a message of the wrong shape, std::runtime_error for bytes that are
  // not msgpack or a failed read.
  std::optional<Message> receive() {
    for (;;) {
      msgpack::object_handle oh;
      bool got = false;
      try {
        got = unpacker_.next(oh);
      } catch (const std::exception& e) {
        throw std::runtime_error(std::string("the daemon sent bytes that are not msgpack (") +
                                 e.what() + ")");
      }
      if (got) return classify(std::move(oh));
      unpacker_.reserve_buffer(kReadChunk);
      ssize_t n = ::read(fd_, unpacker_.buffer(), unpacker_.buffer_capacity());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        if (errno == ECONNRESET) return std::nullopt;
        throw std::runtime_error(std::string("read from the channel: ") + std::strerror(errno));
      }
      if (n == 0) return std::nullopt;
      unpacker_.buffer_consumed(static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_;
  bool is_socket_ = true;
  std::mutex write_mu_;
  msgpack::unpacker unpacker_;
};

}  // namespace detail

namespace {

msgpack::sbuffer notification(std::string_view method, const std::function<void(Packer&)>& body) {
  msgpack::sbuffer buf;
  Packer pk(&buf);
  pk.pack_array(3);
  pk.pack(2);
  pack_text(pk, method);
  pk.pack_array(1);
  body(pk);
  return buf;
}

msgpack::sbuffer error_response(std::uint32_t id, std::string_view code, std::string_view message,
                                bool retryable) {
  msgpack::sbuffer buf;
  Packer pk(&buf);
  pk.pack_array(4);
  pk.pack(1);
  pk.pack(id);
  pk.pack_map(3);
  pack_text(pk, "code");
  pack_text(pk, code);
  pack_text(pk, "message");
  pack_text(pk, message);
  pack_text(pk, "retryable");
  if (retryable) {
    pk.pack_true();
  } else {
    pk.pack_false();
  }
  pk.pack_nil();
  return buf;
}

msgpack::sbuffer success_response(std::uint32_t id, const Step& step) {
  msgpack::sbuffer buf;
  Packer pk(&buf);
  pk.pack_array(4);
  pk.pack(1);
  pk.pack(id);
  pk.pack_nil();
  pk.pack_map(step.summary_value() ? 2 : 1);
  pack_text(pk, "outputs");
  pk.pack_map(static_cast<std::uint32_t>(step.outputs().size()));
  for (const auto& [name, out] : step.outputs()) {
    pack_text(pk, name);
    pk.pack_map(2);
    pack_text(pk, "media_type");
    pack_text(pk, out.media_type);
    pack_text(pk, "data");
    pack_bytes(pk, out.data);
  }
  if (step.summary_value()) {
    pack_text(pk, "summary");
    pack_json(pk, *step.summary_value());
  }
  return buf;
}

// One served connection: the queue between the reader and the handlers, and
// the heartbeat thread.
class Session {
 public:
  Session(std::string_view ext_id, detail::Channel& channel,
          const std::map<std::string, Handler, std::less<>>& handlers,
          const std::atomic<bool>& heartbeats_enabled)
      : ext_id_(ext_id),
        channel_(channel),
        handlers_(handlers),
        heartbeats_enabled_(heartbeats_enabled) {}

  // Runs until the daemon shuts the instance down or goes away; returns the
  // exit status.
  int serve(std::chrono::milliseconds heartbeat) {
    // The heartbeat thread first: unlike the reader (blocked in read), it can
    // be stopped if the second thread cannot be started (a tight pids limit).
    std::thread beat;
    std::thread reader;
    try {
      beat = std::thread([this, heartbeat] { heartbeat_loop(heartbeat); });
      reader = std::thread([this] { read_loop(); });
    } catch (const std::system_error& e) {
      complain(ext_id_, std::string("cannot start the SDK's threads: ") + e.what());
      stop_heartbeats();
      if (beat.joinable()) beat.join();
      return 1;
    }
    run_steps();
    reader.join();
    stop_heartbeats();
    beat.join();
    return exit_status_;
  }

 private:
  struct Job {
    std::uint32_t msgid = 0;
    Step::Request request;
    std::shared_ptr<std::atomic<bool>> cancelled;
    const Handler* handler = nullptr;
  };

  void read_loop() {
    try {
      for (;;) {
        std::optional<Message> m;
        try {
          m = channel_.receive();
        } catch (const ShapeError& e) {
          complain(ext_id_, std::string("protocol violation by the daemon: ") + e.what());
          continue;  // the stream itself is intact
        }
        if (!m) return close(0);
        if (!dispatch(*m)) return close(0);
      }
    } catch (const std::exception& e) {
      complain(ext_id_, e.what());
      close(1);
    }
  }

  // False when the instance should stop.
  bool dispatch(const Message& m) {
    switch (m.type) {
      case Message::Type::request:
        if (m.method == "step.run") {
          accept_step(m);
        } else {
          channel_.send(error_response(m.id, "unknown_method",
                                       "unknown method '" + std::string(m.method) +
                                           "' (an extension answers step.run)",
                                       false));
        }
        return true;
      case Message::Type::notification:
        if (m.method == "step.cancel") {
          std::optional<std::uint64_t> call;
          try {
            call = uint_field(params_map(m), "call", "step.cancel");
          } catch (const ShapeError& e) {
            complain(ext_id_, std::string("protocol violation by the daemon: ") + e.what());
            return true;
          }
          std::lock_guard lock(mu_);
          if (auto it = call ? active_.find(*call) : active_.end(); it != active_.end()) {
            it->second->store(true, std::memory_order_release);
          }
          return true;
        }
        if (m.method == "ext.shutdown") return false;
        return true;  // notifications this SDK does not know are ignored
      case Message::Type::response:
        complain(ext_id_, "ignoring a response to request " + std::to_string(m.id) +
                              " (this extension has no request outstanding)");
        return true;
    }
    return true;
  }

  void accept_step(const Message& m) {
    Job job;
    job.msgid = m.id;
    try {
      job.request = parse_step_run(params_map(m));
    } catch (const ShapeError& e) {
      channel_.send(error_response(m.id, "invalid_params", e.what(), false));
      return;
    }
    auto handler = handlers_.find(job.request.capability);
    if (handler == handlers_.end()) {
      std::string known;
      for (const auto& [name, h] : handlers_) known += (known.empty() ? "" : ", ") + name;
      channel_.send(error_response(
          m.id, "invalid_params",
          "unknown capability '" + job.request.capability + "' (" + ext_id_ + " provides: " +
              (known.empty() ? "none" : known) + ")",
          false));
      return;
    }
    job.handler = &handler->second;
    job.cancelled = std::make_shared<std::atomic<bool>>(false);
    {
      std::lock_guard lock(mu_);
      if (!active_.emplace(job.request.call, job.cancelled).second) {
        channel_.send(error_response(
            m.id, "invalid_params",
            "step.run.call: call " + std::to_string(job.request.call) + " is already running",
            false));
        return;
      }
      queue_.push_back(std::move(job));
    }
    cv_.notify_all();
  }

  void close(int status) {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      exit_status_ = status;
      // Whatever is running stops: the daemon will not read its answer.
      for (auto& [call, flag] : active_) flag->store(true, std::memory_order_release);
    }
    cv_.notify_all();
  }

  void run_steps() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return closed_ || !queue_.empty(); });
        if (closed_) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      const std::uint64_t call = job.request.call;
      channel_.send(execute(std::move(job)));
      std::lock_guard lock(mu_);
      active_.erase(call);
    }
  }

  msgpack::sbuffer execute(Job job) {
    const std::uint32_t msgid = job.msgid;
    if (job.cancelled->load(std::memory_order_acquire)) {
      return error_response(msgid, "cancelled", "the step was cancelled before it started", false);
    }
    Step step(std::move(job.request), job.cancelled, &channel_);
    std::optional<std::pair<std::string, bool>> failure;
    try {
      (*job.handler)(step);
    } catch (const StepError& e) {
      failure.emplace(e.what(), e.retryable());
    } catch (const std::exception& e) {
      failure.emplace(e.what(), true);
    } catch (...) {
      failure.emplace("the handler threw something that is not a std::exception", true);
    }
    if (step.cancelled()) {
      return error_response(msgid, "cancelled", "the step was cancelled", false);
    }
    if (failure) return error_response(msgid, "failed", failure->first, failure->second);
    return success_response(msgid, step);
  }

  void stop_heartbeats() {
    {
      std::lock_guard lock(beat_mu_);
      beat_stop_ = true;
    }
    beat_cv_.notify_all();
  }

  void heartbeat_loop(std::chrono::milliseconds interval) {
    const msgpack::sbuffer beat = notification("ext.heartbeat", [](Packer& pk) { pk.pack_map(0); });
    std::unique_lock lock(beat_mu_);
    while (!beat_cv_.wait_for(lock, interval, [this] { return beat_stop_; })) {
      if (heartbeats_enabled_.load(std::memory_order_acquire)) channel_.send(beat);
    }
  }

  std::string ext_id_;
  detail::Channel& channel_;
  const std::map<std::string, Handler, std::less<>>& handlers_;
  const std::atomic<bool>& heartbeats_enabled_;

  std::mutex mu_;  // guards the members below
  std::condition_variable cv_;
  std::deque<Job> queue_;
  std::map<std::uint64_t, std::shared_ptr<std::atomic<bool>>> active_;  // queued or running
  bool closed_ = false;
  int exit_status_ = 0;

  std::mutex beat_mu_;
  std::condition_variable beat_cv_;
  bool beat_stop_ = false;
};

// SYMPHONY_EXT_FD as an open descriptor, or a message saying what is wrong.
std::variant<int, std::string> channel_fd() {
  const char* env = std::getenv("SYMPHONY_EXT_FD");
  if (env == nullptr || *env == '\0') {
    return std::string(
        "SYMPHONY_EXT_FD is not set: an extension is started by symphonyd with its channel on "
        "that fd (docs/extension-protocol.md)");
  }
  int fd = -1;
  std::string_view text(env);
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), fd);
  if (ec != std::errc() || end != text.data() + text.size() || fd < 0) {
    return "SYMPHONY_EXT_FD='" + std::string(text) + "' is not a file descriptor number";
  }
  int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0) {
    return "SYMPHONY_EXT_FD=" + std::string(text) + ": " + std::strerror(errno);
  }
  // Programs a handler starts (git, a compiler) must not hold the channel
  // open: the daemon's end-of-stream and the instance's lifetime depend on it.
  ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  return fd;
}

}  // namespace

// --- Step --------------------------------------------------------------------

Step::Step(Request request, std::shared_ptr<std::atomic<bool>> cancelled, detail::Channel* channel)
    : call_(request.call),
      id_(std::move(request.id)),
      capability_(std::move(request.capability)),
      params_(request.params.is_object() ? std::move(request.params) : nlohmann::json::object()),
      inputs_(std::move(request.inputs)),
      workspace_(std::move(request.workspace)),
      deadline_ms_(request.deadline_ms),
      cancelled_(cancelled ? std::move(cancelled) : std::make_shared<std::atomic<bool>>(false)),
      channel_(channel) {}

const std::vector<Input>& Step::inputs(std::string_view name) const {
  static const std::vector<Input> kNone;
  auto it = inputs_.find(name);
  return it == inputs_.end() ? kNone : it->second;
}

std::vector<std::string> Step::input_names() const {
  std::vector<std::string> names;
  names.reserve(inputs_.size());
  for (const auto& [name, items] : inputs_) names.push_back(name);
  return names;
}

void Step::progress(double fraction, std::string_view message) {
  if (channel_ == nullptr) return;
  if (!std::isfinite(fraction)) fraction = 0;
  fraction = std::clamp(fraction, 0.0, 1.0);
  channel_->send(notification("step.progress", [&](Packer& pk) {
    pk.pack_map(3);
    pack_text(pk, "call");
    pk.pack(call_);
    pack_text(pk, "fraction");
    pk.pack_double(fraction);
    pack_text(pk, "message");
    pack_text(pk, message);
  }));
}

void Step::log(Level level, std::string_view message) {
  if (channel_ == nullptr) return;
  channel_->send(notification("step.log", [&](Packer& pk) {
    pk.pack_map(3);
    pack_text(pk, "call");
    pk.pack(call_);
    pack_text(pk, "level");
    pack_text(pk, level_name(level));
    pack_text(pk, "message");
    pack_text(pk, message);
  }));
}

void Step::output(std::string name, std::string data, std::string media_type) {
  outputs_[std::move(name)] = OutputData{std::move(media_type), std::move(data)};
}

void Step::output_json(std::string name, const nlohmann::json& value) {
  // Invalid UTF-8 in a string (a file name from disk, say) becomes U+FFFD
  // rather than an exception that would fail the step.
  output(std::move(name), value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace),
         "application/json");
}

void Step::summary(nlohmann::json value) { summary_ = std::move(value); }

// --- Extension ---------------------------------------------------------------

Extension::Extension(std::string id, std::string version)
    : id_(std::move(id)), version_(std::move(version)) {}

Extension::~Extension() = default;

Extension& Extension::capability(std::string name, Handler handler) {
  if (!handler) {
    throw std::invalid_argument("symphony::ext::Extension::capability: '" + name +
                                "' has an empty handler");
  }
  if (handlers_.contains(name)) {
    throw std::invalid_argument("symphony::ext::Extension::capability: '" + name +
                                "' is registered twice");
  }
  handlers_.emplace(std::move(name), std::move(handler));
  return *this;
}

void Extension::stop_heartbeats_for_testing() {
  heartbeats_enabled_.store(false, std::memory_order_release);
}

int Extension::run() {
  auto fd = channel_fd();
  if (auto* problem = std::get_if<std::string>(&fd)) {
    complain(id_, *problem);
    return 1;
  }
  detail::Channel channel(std::get<int>(fd));

  msgpack::sbuffer hello;
  {
    Packer pk(&hello);
    pk.pack_array(4);
    pk.pack(0);
    pk.pack(kHelloId);
    pack_text(pk, "ext.hello");
    pk.pack_array(1);
    pk.pack_map(5);
    pack_text(pk, "protocol");
    pk.pack(kProtocolVersion);
    pack_text(pk, "id");
    pack_text(pk, id_);
    pack_text(pk, "version");
    pack_text(pk, version_);
    pack_text(pk, "capabilities");
    pk.pack_array(static_cast<std::uint32_t>(handlers_.size()));
    for (const auto& [name, h] : handlers_) pack_text(pk, name);  // sorted: a std::map
    pack_text(pk, "sdk");
    pack_text(pk, "symphony-cpp/" SYMPHONY_EXT_SDK_VERSION);
  }
  if (!channel.send(hello)) {
    complain(id_, std::string("cannot send ext.hello: ") + std::strerror(errno));
    return 1;
  }

  std::uint64_t heartbeat_ms = kDefaultHeartbeatMs;
  try {
    for (;;) {
      std::optional<Message> m = channel.receive();
      if (!m) {
        complain(id_, "the daemon closed the channel before answering ext.hello");
        return 1;
      }
      if (m->type == Message::Type::notification && m->method == "ext.shutdown") return 0;
      if (m->type != Message::Type::response || m->id != kHelloId) {
        complain(id_, "protocol violation by the daemon: expected the answer to ext.hello, got " +
                          (m->type == Message::Type::response
                               ? "a response to request " + std::to_string(m->id)
                               : "'" + std::string(m->method) + "'"));
        return 1;
      }
      if (m->error->type != msgpack::type::NIL) {
        std::string why;
        const msgpack::object* e = m->error->type == msgpack::type::MAP ? m->error : nullptr;
        std::string code = string_field(e, "code", "error");
        std::string message = string_field(e, "message", "error");
        why = code.empty() && message.empty() ? "an error of type " + std::string(type_name(*m->error))
                                              : code + ": " + message;
        complain(id_, "the daemon refused the handshake: " + why);
        return 1;
      }
      if (m->result->type == msgpack::type::MAP) {
        if (auto v = uint_field(m->result, "heartbeat_ms", "ext.hello result"); v && *v > 0) {
          heartbeat_ms = *v;
        }
      }
      break;
    }
  } catch (const std::exception& e) {
    complain(id_, std::string("handshake: ") + e.what());
    return 1;
  }

  Session session(id_, channel, handlers_, heartbeats_enabled_);
  return session.serve(std::chrono::milliseconds(heartbeat_ms));
}

std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = c < 0x80           ? 1
                      : (c >> 5) == 0x6  ? 2
                      : (c >> 4) == 0xE  ? 3
                      : (c >> 3) == 0x1E ? 4
                                         : 0;
    bool ok = len != 0 && i + len <= s.size();
    for (std::size_t k = 1; ok && k < len; ++k)
      ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (ok && len > 1) {
      // Overlong forms, surrogates and code points past U+10FFFF.
      unsigned cp = c & (0x7F >> len);
      for (std::size_t k = 1; k < len; ++k)
        cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
      static constexpr unsigned kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMin[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

}  // namespace symphony::ext
