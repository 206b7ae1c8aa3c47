// The extension SDKs against the protocol, with this test as the daemon: each
// in-tree extension is started from its manifest's entry on a socketpair
// (fd 3, SYMPHONY_EXT_FD, the environment of docs/extension-protocol.md),
// and the test checks the handshake, steps, notifications, errors,
// cancellation and shutdown. The same checks run against the C++ SDK (the
// chaos extension) and the Python SDK (tests/sdk/python_steps). No sandbox
// here: the extension host's tests cover that.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <symphony/ext.h>
#include <thread>
#include <vector>

#include "ipc/msgpack_rpc.h"
#include "stage/manifest.h"
#include "tests/support/temp_dir.h"

namespace symphony {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using json = nlohmann::json;
using namespace std::chrono_literals;
namespace rpc = ipc::rpc;
namespace stdfs = std::filesystem;

std::string env_or_die(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) {
    ADD_FAILURE() << name << " is not set (run the test through meson)";
    return {};
  }
  return v;
}

// msgpack as JSON for assertions; bin stays distinguishable as json binary.
json to_json(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return nullptr;
    case msgpack::type::BOOLEAN: return o.via.boolean;
    case msgpack::type::POSITIVE_INTEGER: return o.via.u64;
    case msgpack::type::NEGATIVE_INTEGER: return o.via.i64;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return o.via.f64;
    case msgpack::type::STR: return std::string(o.via.str.ptr, o.via.str.size);
    case msgpack::type::BIN:
      return json::binary(std::vector<std::uint8_t>(o.via.bin.ptr, o.via.bin.ptr + o.via.bin.size));
    case msgpack::type::ARRAY: {
      json a = json::array();
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) a.push_back(to_json(o.via.array.ptr[i]));
      return a;
    }
    case msgpack::type::MAP: {
      json m = json::object();
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        m[std::string(kv.key.via.str.ptr, kv.key.via.str.size)] = to_json(kv.val);
      }
      return m;
    }
    case msgpack::type::EXT: break;
  }
  return "<ext>";
}

void pack(rpc::Packer& pk, const json& j) {
  switch (j.type()) {
    case json::value_t::null:
    case json::value_t::discarded: pk.pack_nil(); return;
    case json::value_t::boolean: pk.pack(j.get<bool>()); return;
    case json::value_t::number_integer: pk.pack(j.get<std::int64_t>()); return;
    case json::value_t::number_unsigned: pk.pack(j.get<std::uint64_t>()); return;
    case json::value_t::number_float: pk.pack_double(j.get<double>()); return;
    case json::value_t::string: pk.pack(j.get<std::string>()); return;
    case json::value_t::binary:
      pk.pack_bin(static_cast<std::uint32_t>(j.get_binary().size()));
      pk.pack_bin_body(reinterpret_cast<const char*>(j.get_binary().data()),
                       static_cast<std::uint32_t>(j.get_binary().size()));
      return;
    case json::value_t::array:
      pk.pack_array(static_cast<std::uint32_t>(j.size()));
      for (const auto& v : j) pack(pk, v);
      return;
    case json::value_t::object:
      pk.pack_map(static_cast<std::uint32_t>(j.size()));
      for (const auto& [k, v] : j.items()) {
        pk.pack(k);
        pack(pk, v);
      }
      return;
  }
}

json bin(std::string_view s) { return json::binary(std::vector<std::uint8_t>(s.begin(), s.end())); }

std::string bytes(const json& j) {
  if (!j.is_binary()) {
    ADD_FAILURE() << "expected msgpack bin, got " << j.dump();
    return {};
  }
  return {j.get_binary().begin(), j.get_binary().end()};
}

struct Message {
  rpc::MessageType type = rpc::MessageType::request;
  std::uint32_t id = 0;
  std::string method;
  json params;  // the one map of the params array
  json error;
  json result;
};

// One extension process with the test as its daemon.
class Instance {
 public:
  struct Options {
    bool pass_fd = true;
    std::string fd_env = "3";
    std::string workspace;
  };

  Instance(const stage::Manifest& manifest, const Options& options) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw std::runtime_error("socketpair");
    int err[2];
    if (::pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    std::vector<std::string> argv = stage::entry_argv(manifest);
    std::vector<std::string> env = {
        "SYMPHONY_PROTOCOL=1",
        "SYMPHONY_EXT_ID=" + manifest.id,
        "SYMPHONY_EXT_VERSION=" + stage::to_string(manifest.version),
        "PYTHONPATH=" + env_or_die("SYMPHONY_TEST_PYTHON_SDK"),
        "HOME=/tmp",
        "TMPDIR=/tmp",
        "PATH=/usr/local/bin:/usr/bin:/bin",
    };
    if (options.pass_fd) env.push_back("SYMPHONY_EXT_FD=" + options.fd_env);
    if (!options.workspace.empty()) env.push_back("SYMPHONY_WORKSPACE=" + options.workspace);
    std::vector<char*> cargv, cenv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    for (auto& e : env) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    const std::string cwd = manifest.directory.string();

    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls from here on.
      int devnull = ::open("/dev/null", O_RDONLY);
      ::dup2(devnull, 0);
      ::dup2(err[1], 1);
      ::dup2(err[1], 2);
      if (options.pass_fd) ::dup2(sv[1], 3);  // dup2 clears FD_CLOEXEC
      struct rlimit no_core {0, 0};
      ::setrlimit(RLIMIT_CORE, &no_core);  // the chaos segv must not leave a core
      if (::chdir(cwd.c_str()) != 0) ::_exit(126);
      ::execve(cargv[0], cargv.data(), cenv.data());
      ::_exit(127);
    }
    ::close(sv[1]);
    ::close(err[1]);
    fd_ = sv[0];
    err_ = err[0];
  }

  ~Instance() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) ::close(fd_);
    ::close(err_);
  }

  void send_raw(const rpc::WriteBuffer& buf) {
    auto b = buf.bytes();
    ASSERT_EQ(::send(fd_, b.data(), b.size(), MSG_NOSIGNAL), static_cast<ssize_t>(b.size()));
  }
  void request(std::uint32_t id, std::string_view method, const json& params) {
    rpc::WriteBuffer buf;
    rpc::Packer pk(buf);
    pk.pack_array(4);
    pk.pack(0);
    pk.pack(id);
    pk.pack(method);
    pk.pack_array(1);
    pack(pk, params);
    send_raw(buf);
  }
  void notify(std::string_view method, const json& params) {
    rpc::WriteBuffer buf;
    rpc::Packer pk(buf);
    pk.pack_array(3);
    pk.pack(2);
    pk.pack(method);
    pk.pack_array(1);
    pack(pk, params);
    send_raw(buf);
  }
  void respond(std::uint32_t id, const json& result) {
    rpc::WriteBuffer buf;
    rpc::write_response(buf, id, [&](rpc::Packer& pk) { pack(pk, result); });
    send_raw(buf);
  }
  void respond_error(std::uint32_t id, rpc::ErrorCode code, std::string_view message) {
    rpc::WriteBuffer buf;
    rpc::write_error_response(buf, id, code, message);
    send_raw(buf);
  }

  // The next message within `timeout`; nullopt on timeout or end of stream.
  // Bytes that are not msgpack set `garbage_`.
  std::optional<Message> next(std::chrono::milliseconds timeout = 5000ms) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      rpc::Decoded d = decoder_.next();
      if (d.kind == rpc::Decoded::Kind::message) {
        Message m;
        m.type = d.message.type;
        m.id = d.message.id;
        m.method = std::string(d.message.method);
        if (m.type == rpc::MessageType::response) {
          m.error = to_json(d.message.error);
          m.result = to_json(d.message.result);
        } else {
          json params = to_json(d.message.params);
          EXPECT_EQ(params.size(), 1u) << m.method << ": params must be an array of one map";
          m.params = params.empty() ? json() : params[0];
        }
        return m;
      }
      if (d.kind != rpc::Decoded::Kind::need_more) {
        garbage_ = true;
        return std::nullopt;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left <= 0ms) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      auto span = decoder_.prepare(65536);
      ssize_t n = ::recv(fd_, span.data(), span.size(), 0);
      if (n <= 0) return std::nullopt;
      decoder_.commit(static_cast<std::size_t>(n));
    }
  }

  // The next message that is not a heartbeat.
  std::optional<Message> next_skipping_heartbeats(std::chrono::milliseconds timeout = 5000ms) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      auto m = next(std::max(left, 0ms));
      if (!m || m->method != "ext.heartbeat") return m;
    }
  }

  // The next response, skipping notifications.
  std::optional<Message> next_response(std::chrono::milliseconds timeout = 5000ms) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      auto m = next(std::max(left, 0ms));
      if (!m || m->type == rpc::MessageType::response) return m;
    }
  }

  // Reads the hello and accepts it; returns the hello's params.
  json handshake(std::uint64_t heartbeat_ms = 1000, const std::string& workspace = "") {
    auto hello = next();
    if (!hello) {
      ADD_FAILURE() << "no ext.hello; stderr: " << stderr_text();
      return {};
    }
    EXPECT_EQ(hello->type, rpc::MessageType::request);
    EXPECT_EQ(hello->method, "ext.hello");
    respond(hello->id, {{"protocol", 1},
                        {"instance", 7},
                        {"heartbeat_ms", heartbeat_ms},
                        {"symphony", "0.1.0"},
                        {"workspace", workspace}});
    return hello->params;
  }

  // Sends a step.run and returns its answer, collecting the notifications
  // sent on the way (heartbeats left out).
  Message run_step(std::uint32_t id, const json& params, std::vector<Message>* notes = nullptr) {
    request(id, "step.run", params);
    for (;;) {
      auto m = next_skipping_heartbeats(10000ms);
      if (!m) {
        ADD_FAILURE() << "no answer to step.run " << params.dump() << "; stderr: " << stderr_text();
        return {};
      }
      if (m->type == rpc::MessageType::response) {
        EXPECT_EQ(m->id, id);
        return *m;
      }
      if (notes) notes->push_back(*m);
    }
  }

  void close_channel() {
    ::close(fd_);
    fd_ = -1;
  }

  // The wait status once the process exits; nullopt (and the process killed)
  // when it does not within `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout = 5000ms) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return status;
      }
      std::this_thread::sleep_for(5ms);
    }
    return std::nullopt;
  }

  // stdout and stderr so far (non-blocking).
  std::string stderr_text() {
    int flags = ::fcntl(err_, F_GETFL);
    ::fcntl(err_, F_SETFL, flags | O_NONBLOCK);
    char buf[4096];
    for (ssize_t n; (n = ::read(err_, buf, sizeof buf)) > 0;) captured_.append(buf, static_cast<std::size_t>(n));
    return captured_;
  }

  bool garbage() const { return garbage_; }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  int err_ = -1;
  rpc::StreamDecoder decoder_{rpc::DecodeLimits{}};
  bool garbage_ = false;
  std::string captured_;
};

stage::Manifest manifest_in(const std::string& dir) {
  auto m = stage::load_manifest(stdfs::path(dir) / "extension.toml");
  if (!m) throw std::runtime_error(m.error().message());
  return std::move(*m);
}

std::vector<std::string> capability_names(const stage::Manifest& m) {
  std::vector<std::string> names;
  for (const auto& c : m.capabilities) names.push_back(c.name);
  std::sort(names.begin(), names.end());
  return names;
}

int exit_code(std::optional<int> status) {
  if (!status) return -1000;
  if (WIFSIGNALED(*status)) return -WTERMSIG(*status);
  return WEXITSTATUS(*status);
}

// --- A Step without a daemon, as docs/sdk.md shows for handler tests -----------

TEST(StepWithoutDaemon, KeepsOutputsAndSummaryForTheTest) {
  ext::Step::Request request;
  request.capability = "hello.greet";
  request.params = {{"name", "Ada"}};
  request.inputs["names"] = {ext::Input{"names@1", "sha256:00", "text/plain", "Bob"}};
  ext::Step step(std::move(request), nullptr, nullptr);
  step.progress(0.5, "dropped");  // no channel: nothing to send to
  step.log(ext::Level::info, "dropped");
  EXPECT_FALSE(step.cancelled());
  EXPECT_EQ(step.params()["name"], "Ada");
  EXPECT_THAT(step.input_names(), ElementsAre("names"));
  ASSERT_EQ(step.inputs("names").size(), 1u);
  EXPECT_EQ(step.inputs("names")[0].data, "Bob");
  EXPECT_TRUE(step.inputs("absent").empty());
  EXPECT_TRUE(step.workspace().empty());

  step.output("raw", std::string("\0\1", 2));
  step.output_json("report", {{"name", "caf\xc3\xa9 \xff"}});
  step.summary({{"greeted", 1}});
  EXPECT_EQ(step.outputs().at("raw").media_type, "application/octet-stream");
  EXPECT_EQ(step.outputs().at("raw").data.size(), 2u);
  EXPECT_EQ(step.outputs().at("report").media_type, "application/json");
  EXPECT_EQ(step.outputs().at("report").data, "{\n  \"name\": \"caf\xc3\xa9 \xef\xbf\xbd\"\n}");
  EXPECT_EQ(step.summary_value(), json({{"greeted", 1}}));
}

TEST(Extension, RefusesADuplicateOrEmptyHandler) {
  ext::Extension extension("org.example.x", "1.0.0");
  extension.capability("a.run", [](ext::Step&) {});
  EXPECT_THROW(extension.capability("a.run", [](ext::Step&) {}), std::invalid_argument);
  EXPECT_THROW(extension.capability("b.run", ext::Handler()), std::invalid_argument);
}

// --- The handshake of every in-tree extension matches its manifest ------------

struct Tree {
  const char* name;
  const char* env;  // the variable holding its directory
  const char* sdk;  // the "sdk" field's prefix
};

void PrintTo(const Tree& tree, std::ostream* os) { *os << tree.name; }

class Handshake : public ::testing::TestWithParam<Tree> {};

TEST_P(Handshake, HelloMatchesTheManifestAndShutdownExitsZero) {
  stage::Manifest manifest = manifest_in(env_or_die(GetParam().env));
  Instance ext(manifest, {});
  json hello = ext.handshake();
  EXPECT_EQ(hello["protocol"], 1);
  EXPECT_EQ(hello["id"], manifest.id);
  EXPECT_EQ(hello["version"], stage::to_string(manifest.version));
  EXPECT_EQ(hello["capabilities"].get<std::vector<std::string>>(), capability_names(manifest));
  EXPECT_THAT(hello["sdk"].get<std::string>(), StartsWith(GetParam().sdk));
  ext.notify("ext.shutdown", json::object());
  EXPECT_EQ(exit_code(ext.wait_exit()), 0) << ext.stderr_text();
}

INSTANTIATE_TEST_SUITE_P(
    InTree, Handshake,
    ::testing::Values(Tree{"cpp_hello", "SYMPHONY_TEST_CPP_HELLO_DIR", "symphony-cpp/"},
                      Tree{"python_hello", "SYMPHONY_TEST_PYTHON_HELLO_DIR", "symphony-python/"},
                      Tree{"fs", "SYMPHONY_TEST_FS_DIR", "symphony-cpp/"},
                      Tree{"chaos", "SYMPHONY_TEST_CHAOS_DIR", "symphony-cpp/"},
                      Tree{"python_steps", "SYMPHONY_TEST_PYTHON_STEPS_DIR", "symphony-python/"},
                      Tree{"cpp_template", "SYMPHONY_TEST_CPP_TEMPLATE_DIR", "symphony-cpp/"},
                      Tree{"python_template", "SYMPHONY_TEST_PYTHON_TEMPLATE_DIR",
                           "symphony-python/"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(BadHello, RegistersLessThanItsManifestAndExitsOneWhenRefused) {
  stage::Manifest manifest = manifest_in(env_or_die("SYMPHONY_TEST_BAD_HELLO_DIR"));
  Instance ext(manifest, {});
  auto hello = ext.next();
  ASSERT_TRUE(hello) << ext.stderr_text();
  EXPECT_THAT(hello->params["capabilities"].get<std::vector<std::string>>(),
              ElementsAre("bad.registered"));
  EXPECT_THAT(capability_names(manifest), ElementsAre("bad.declared", "bad.registered"));
  ext.respond_error(hello->id, rpc::ErrorCode::invalid_params,
                    "capabilities: manifest declares [bad.declared, bad.registered], the extension "
                    "registered [bad.registered]");
  EXPECT_EQ(exit_code(ext.wait_exit()), 1);
  EXPECT_THAT(ext.stderr_text(),
              HasSubstr("org.symphony.test.bad-hello: the daemon refused the handshake: "
                        "invalid_params: capabilities: manifest declares"));
}

// --- The greeting examples: params, inputs, progress, log, outputs -----------

class Hello : public ::testing::TestWithParam<Tree> {
 protected:
  stage::Manifest manifest_ = manifest_in(env_or_die(GetParam().env));
};

TEST_P(Hello, GreetsWithInputsProgressAndLog) {
  Instance ext(manifest_, {});
  ext.handshake();
  std::vector<Message> notes;
  Message answer = ext.run_step(
      1,
      {{"call", 12},
       {"step", "run-1/greet#1"},
       {"capability", "hello.greet"},
       {"params", {{"name", "Ada"}}},
       {"inputs",
        {{"names", {{"artifact", "names@1"}, {"digest", "sha256:00"}, {"media_type", "text/plain"},
                    {"data", bin("Bob\nCy\n")}}}}},
       {"workspace", ""},
       {"deadline_ms", 30000}},
      &notes);
  ASSERT_TRUE(answer.error.is_null()) << answer.error.dump();
  const json& greeting = answer.result["outputs"]["greeting"];
  EXPECT_EQ(greeting["media_type"], "text/plain");
  EXPECT_EQ(bytes(greeting["data"]), "Hello, Ada!\nHello, Bob!\nHello, Cy!\n");
  EXPECT_EQ(answer.result["summary"], json({{"greeted", 3}}));

  ASSERT_EQ(notes.size(), 4u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(notes[i].type, rpc::MessageType::notification);
    EXPECT_EQ(notes[i].method, "step.progress");
    EXPECT_EQ(notes[i].params["call"], 12);
    EXPECT_DOUBLE_EQ(notes[i].params["fraction"].get<double>(), (i + 1) / 3.0);
  }
  EXPECT_EQ(notes[2].params["message"], "greeted Cy");
  EXPECT_EQ(notes[3].method, "step.log");
  EXPECT_EQ(notes[3].params, json({{"call", 12}, {"level", "info"}, {"message", "greeted 3 name(s)"}}));
}

TEST_P(Hello, TakesAFannedOutInputAsOneItemEach) {
  Instance ext(manifest_, {});
  ext.handshake();
  json items = json::array();
  for (const char* who : {"X", "Y"}) {
    items.push_back({{"artifact", std::string("names@") + who}, {"digest", "sha256:01"},
                     {"media_type", "text/plain"}, {"data", bin(who)}});
  }
  Message answer = ext.run_step(2, {{"call", 1}, {"step", "r/s#1"}, {"capability", "hello.greet"},
                                    {"params", json::object()}, {"inputs", {{"names", items}}},
                                    {"workspace", ""}, {"deadline_ms", 0}});
  ASSERT_TRUE(answer.error.is_null()) << answer.error.dump();
  EXPECT_EQ(bytes(answer.result["outputs"]["greeting"]["data"]),
            "Hello, world!\nHello, X!\nHello, Y!\n");
}

TEST_P(Hello, BadParamsFailWithoutRetry) {
  Instance ext(manifest_, {});
  ext.handshake();
  Message answer = ext.run_step(3, {{"call", 2}, {"capability", "hello.greet"},
                                    {"params", {{"name", 42}}}});
  EXPECT_EQ(answer.error, json({{"code", "failed"},
                                {"message", "hello.greet: params.name must be a string"},
                                {"retryable", false}}));
}

INSTANTIATE_TEST_SUITE_P(
    Sdk, Hello,
    ::testing::Values(Tree{"cpp", "SYMPHONY_TEST_CPP_HELLO_DIR", "symphony-cpp/"},
                      Tree{"python", "SYMPHONY_TEST_PYTHON_HELLO_DIR", "symphony-python/"}),
    [](const auto& info) { return std::string(info.param.name); });

// --- Both SDKs: errors, cancellation, heartbeats, shutdown --------------------

class Protocol : public ::testing::TestWithParam<Tree> {
 protected:
  json step(std::uint64_t call, const json& params, const std::string& capability = "chaos.run") {
    return {{"call", call},      {"step", "run-9/chaos#1"}, {"capability", capability},
            {"params", params},  {"inputs", json::object()}, {"workspace", workspace_.path().string()},
            {"deadline_ms", 0}};
  }

  stage::Manifest manifest_ = manifest_in(env_or_die(GetParam().env));
  testing::TempDir workspace_{"sdk-ws"};
};

TEST_P(Protocol, NoopAnswersWithNoOutputs) {
  Instance ext(manifest_, {});
  ext.handshake();
  Message answer = ext.run_step(1, step(1, json::object(), "noop.run"));
  ASSERT_TRUE(answer.error.is_null()) << answer.error.dump();
  EXPECT_EQ(answer.result, json({{"outputs", json::object()}}));
}

TEST_P(Protocol, StepErrorsCarryTheirRetryableFlag) {
  Instance ext(manifest_, {});
  ext.handshake();
  Message fail = ext.run_step(1, step(1, {{"mode", "fail"}}));
  EXPECT_EQ(fail.error,
            json({{"code", "failed"}, {"message", "chaos: asked to fail"}, {"retryable", true}}));
  Message permanent = ext.run_step(2, step(2, {{"mode", "fail_permanent"}}));
  EXPECT_EQ(permanent.error, json({{"code", "failed"},
                                   {"message", "chaos: asked to fail permanently"},
                                   {"retryable", false}}));
  // Any other exception fails the step too, retryable, with its text.
  Message thrown = ext.run_step(3, step(3, {{"mode", "throw"}}));
  EXPECT_EQ(thrown.error["code"], "failed");
  EXPECT_EQ(thrown.error["retryable"], true);
  EXPECT_THAT(thrown.error["message"].get<std::string>(),
              ::testing::AnyOf("chaos: threw a std::runtime_error",
                               "RuntimeError: chaos: raised a RuntimeError"));
  // The instance is still good for the next step.
  Message ok = ext.run_step(4, step(4, {{"mode", "ok"}}));
  ASSERT_TRUE(ok.error.is_null()) << ok.error.dump();
  EXPECT_EQ(ok.result["outputs"]["result"]["media_type"], "application/json");
  EXPECT_EQ(json::parse(bytes(ok.result["outputs"]["result"]["data"])),
            json({{"mode", "ok"}, {"step", "run-9/chaos#1"}}));
}

TEST_P(Protocol, MarkerMakesOnlyTheFirstAttemptMisbehave) {
  Instance ext(manifest_, {});
  ext.handshake();
  Message first = ext.run_step(1, step(1, {{"mode", "fail"}, {"marker", "attempt"}}));
  EXPECT_EQ(first.error["code"], "failed");
  EXPECT_TRUE(stdfs::exists(workspace_.path() / "attempt"));
  Message second = ext.run_step(2, step(2, {{"mode", "fail"}, {"marker", "attempt"}}));
  EXPECT_TRUE(second.error.is_null()) << second.error.dump();
}

TEST_P(Protocol, UnknownCapabilityIsInvalidParams) {
  Instance ext(manifest_, {});
  ext.handshake();
  Message answer = ext.run_step(5, step(1, json::object(), "nope.run"));
  EXPECT_EQ(answer.error["code"], "invalid_params");
  EXPECT_EQ(answer.error["retryable"], false);
  EXPECT_EQ(answer.error["message"],
            "unknown capability 'nope.run' (" + manifest_.id + " provides: chaos.run, noop.run)");
  // A malformed step.run is answered the same way and names the field.
  Message no_call = ext.run_step(6, {{"capability", "noop.run"}});
  EXPECT_EQ(no_call.error["code"], "invalid_params");
  EXPECT_EQ(no_call.error["message"], "step.run.call: missing required field");
  Message bad_params = ext.run_step(7, {{"call", 3}, {"capability", "noop.run"}, {"params", 5}});
  EXPECT_EQ(bad_params.error["message"], "step.run.params: expected map, got integer");
  // So is a method an extension does not serve.
  ext.request(8, "ext.frobnicate", json::object());
  auto unknown = ext.next_response();
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->id, 8u);
  EXPECT_EQ(unknown->error["code"], "unknown_method");
  Message ok = ext.run_step(9, step(4, json::object(), "noop.run"));
  EXPECT_TRUE(ok.error.is_null());
}

TEST_P(Protocol, CancelStopsASleepingStep) {
  Instance ext(manifest_, {});
  ext.handshake();
  ext.request(1, "step.run", step(21, {{"mode", "sleep"}, {"ms", 20000}}));
  std::this_thread::sleep_for(100ms);
  const auto sent = std::chrono::steady_clock::now();
  ext.notify("step.cancel", {{"call", 99}});  // another call: ignored
  ext.notify("step.cancel", {{"call", 21}});
  auto answer = ext.next_response(3000ms);
  ASSERT_TRUE(answer) << ext.stderr_text();
  EXPECT_EQ(answer->id, 1u);
  EXPECT_EQ(answer->error["code"], "cancelled");
  EXPECT_EQ(answer->error["retryable"], false);
  EXPECT_LT(std::chrono::steady_clock::now() - sent, 1000ms);
  // Cancelled does not stick to the next call.
  Message ok = ext.run_step(2, step(22, {{"mode", "sleep"}, {"ms", 20}}));
  EXPECT_TRUE(ok.error.is_null()) << ok.error.dump();
}

TEST_P(Protocol, HeartbeatsFlowWhileAHandlerIsBusy) {
  Instance ext(manifest_, {});
  ext.handshake(/*heartbeat_ms=*/40);
  ext.request(1, "step.run", step(1, {{"mode", "sleep"}, {"ms", 400}}));
  int beats = 0;
  for (;;) {
    auto m = ext.next(2000ms);
    ASSERT_TRUE(m);
    if (m->type == rpc::MessageType::response) break;
    if (m->method != "ext.heartbeat") continue;  // the step's own progress and log
    EXPECT_EQ(m->params, json::object());
    ++beats;
  }
  EXPECT_GE(beats, 4);
}

TEST_P(Protocol, HangStopsHeartbeats) {
  Instance ext(manifest_, {});
  ext.handshake(/*heartbeat_ms=*/30);
  auto beat = ext.next(1000ms);
  ASSERT_TRUE(beat);
  EXPECT_EQ(beat->method, "ext.heartbeat");
  ext.request(1, "step.run", step(1, {{"mode", "hang"}}));
  std::this_thread::sleep_for(100ms);  // a heartbeat already on its way may still arrive
  while (ext.next(0ms)) {
  }
  EXPECT_FALSE(ext.next(400ms)) << "the hung instance still sent something";
}

TEST_P(Protocol, ShutdownDuringAStepExitsZero) {
  Instance ext(manifest_, {});
  ext.handshake();
  ext.request(1, "step.run", step(1, {{"mode", "sleep"}, {"ms", 20000}}));
  std::this_thread::sleep_for(50ms);
  ext.notify("ext.shutdown", json::object());
  EXPECT_EQ(exit_code(ext.wait_exit(3000ms)), 0) << ext.stderr_text();
}

TEST_P(Protocol, EndOfStreamExitsZero) {
  Instance ext(manifest_, {});
  ext.handshake();
  Message ok = ext.run_step(1, step(1, json::object(), "noop.run"));
  EXPECT_TRUE(ok.error.is_null());
  ext.close_channel();
  EXPECT_EQ(exit_code(ext.wait_exit()), 0) << ext.stderr_text();
}

TEST_P(Protocol, RefusedHandshakeExitsOne) {
  Instance ext(manifest_, {});
  auto hello = ext.next();
  ASSERT_TRUE(hello);
  ext.respond_error(hello->id, rpc::ErrorCode::protocol_mismatch,
                    "protocol: symphonyd speaks 2, the extension 1");
  EXPECT_EQ(exit_code(ext.wait_exit()), 1);
  EXPECT_THAT(ext.stderr_text(), HasSubstr(manifest_.id + ": the daemon refused the handshake: "
                                           "protocol_mismatch: protocol: symphonyd speaks 2"));
}

TEST_P(Protocol, MissingOrBadChannelFdExitsOne) {
  Instance none(manifest_, {.pass_fd = false});
  EXPECT_EQ(exit_code(none.wait_exit()), 1);
  EXPECT_THAT(none.stderr_text(), HasSubstr(manifest_.id + ": SYMPHONY_EXT_FD is not set"));

  Instance bad(manifest_, {.pass_fd = true, .fd_env = "three"});
  EXPECT_EQ(exit_code(bad.wait_exit()), 1);
  EXPECT_THAT(bad.stderr_text(), HasSubstr("SYMPHONY_EXT_FD="));
  EXPECT_THAT(bad.stderr_text(), HasSubstr("three"));
  EXPECT_THAT(bad.stderr_text(), HasSubstr("is not a file descriptor number"));
}

INSTANTIATE_TEST_SUITE_P(
    Sdk, Protocol,
    ::testing::Values(Tree{"cpp", "SYMPHONY_TEST_CHAOS_DIR", "symphony-cpp/"},
                      Tree{"python", "SYMPHONY_TEST_PYTHON_STEPS_DIR", "symphony-python/"}),
    [](const auto& info) { return std::string(info.param.name); });

// --- The chaos extension's misbehaviour (C++ only) -----------------------------

class Chaos : public ::testing::Test {
 protected:
  json step(const json& params) {
    return {{"call", 1}, {"step", "r/chaos#1"}, {"capability", "chaos.run"}, {"params", params},
            {"workspace", workspace_.path().string()}};
  }
  stage::Manifest manifest_ = manifest_in(env_or_die("SYMPHONY_TEST_CHAOS_DIR"));
  testing::TempDir workspace_{"chaos-ws"};
};

TEST_F(Chaos, SegvAndSigkillKillTheProcess) {
  for (auto [mode, sig] : {std::pair{"segv", SIGSEGV}, std::pair{"sigkill", SIGKILL}}) {
    Instance ext(manifest_, {});
    ext.handshake();
    ext.request(1, "step.run", step({{"mode", mode}}));
    EXPECT_EQ(exit_code(ext.wait_exit()), -sig) << mode;
  }
}

TEST_F(Chaos, GarbageIsNotMsgpack) {
  Instance ext(manifest_, {});
  ext.handshake();
  ext.request(1, "step.run", step({{"mode", "garbage"}}));
  for (auto m = ext.next(); m; m = ext.next()) {
    ASSERT_EQ(m->method, "ext.heartbeat") << "a message before the garbage";
  }
  EXPECT_TRUE(ext.garbage());
}

TEST_F(Chaos, ForbiddenSyscallFailsWithoutASandbox) {
  Instance ext(manifest_, {});
  ext.handshake();
  Message answer = ext.run_step(1, step({{"mode", "syscall"}}));
  EXPECT_EQ(answer.error["code"], "failed");
  EXPECT_THAT(answer.error["message"].get<std::string>(),
              HasSubstr("chaos.run: ptrace was not stopped by a sandbox"));
}

TEST_F(Chaos, MarkerRetrySurvivesACrash) {
  {
    Instance ext(manifest_, {});
    ext.handshake();
    ext.request(1, "step.run", step({{"mode", "segv"}, {"marker", "m"}}));
    EXPECT_EQ(exit_code(ext.wait_exit()), -SIGSEGV);
  }
  Instance retry(manifest_, {});
  retry.handshake();
  Message answer = retry.run_step(1, step({{"mode", "segv"}, {"marker", "m"}}));
  EXPECT_TRUE(answer.error.is_null()) << answer.error.dump();
}

// --- The fs operator through the protocol --------------------------------------

class FsExtension : public ::testing::Test {
 protected:
  Message run(const std::string& capability, const json& params) {
    return ext_.run_step(++id_, {{"call", id_},
                                 {"step", "r/fs#1"},
                                 {"capability", capability},
                                 {"params", params},
                                 {"workspace", workspace_.path().string()}});
  }
  void SetUp() override { ext_.handshake(1000, workspace_.path().string()); }

  testing::TempDir workspace_{"fs-ext-ws"};
  Instance ext_{manifest_in(env_or_die("SYMPHONY_TEST_FS_DIR")), {}};
  std::uint32_t id_ = 0;
};

TEST_F(FsExtension, WritesReadsListsAndSearches) {
  Message written = run("fs.write", {{"path", "notes/a.txt"}, {"content", "hi there\n"},
                                     {"create_parents", true}});
  ASSERT_TRUE(written.error.is_null()) << written.error.dump();
  EXPECT_EQ(written.result["outputs"]["written"]["media_type"], "application/json");
  EXPECT_EQ(json::parse(bytes(written.result["outputs"]["written"]["data"])),
            json({{"path", "notes/a.txt"}, {"bytes", 9}}));

  Message read = run("fs.read", {{"path", "notes/a.txt"}});
  ASSERT_TRUE(read.error.is_null()) << read.error.dump();
  EXPECT_EQ(read.result["outputs"]["content"]["media_type"], "text/plain");
  EXPECT_EQ(bytes(read.result["outputs"]["content"]["data"]), "hi there\n");

  Message listed = run("fs.list", {{"recursive", true}});
  ASSERT_TRUE(listed.error.is_null()) << listed.error.dump();
  EXPECT_EQ(json::parse(bytes(listed.result["outputs"]["entries"]["data"])),
            json::parse(R"([{"path": "notes", "type": "directory", "size": 0},
                            {"path": "notes/a.txt", "type": "file", "size": 9}])"));
  EXPECT_EQ(listed.result["summary"], json({{"entries", 2}, {"truncated", false}}));

  Message found = run("fs.search", {{"pattern", "th[e]re"}});
  ASSERT_TRUE(found.error.is_null()) << found.error.dump();
  EXPECT_EQ(json::parse(bytes(found.result["outputs"]["matches"]["data"])),
            json::parse(R"([{"path": "notes/a.txt", "line": 1, "text": "hi there"}])"));
}

TEST_F(FsExtension, EscapesAndBadParamsFailWithoutRetry) {
  stdfs::create_directory_symlink("/etc", workspace_.path() / "etc");
  const std::vector<std::pair<json, std::string>> cases = {
      {{{"path", "../x"}}, "fs.read: path '../x' contains '..'; paths must stay inside the workspace"},
      {{{"path", "/etc/passwd"}},
       "fs.read: path '/etc/passwd' is absolute; paths are relative to the workspace"},
      {{{"path", "etc/passwd"}}, "fs.read: path 'etc/passwd' leads outside the workspace"},
      {{{"path", 3}}, "fs.read: params.path must be a string, got number"},
      {json::object(), "fs.read: params.path: missing required parameter"},
  };
  for (const auto& [params, message] : cases) {
    Message r = run("fs.read", params);
    EXPECT_EQ(r.error, json({{"code", "failed"}, {"message", message}, {"retryable", false}}))
        << params.dump();
  }
  Message bad_flag = run("fs.list", {{"recursive", "yes"}});
  EXPECT_EQ(bad_flag.error["message"], "fs.list: params.recursive must be a boolean, got string");
}

TEST(FsExtensionWithoutWorkspace, FailsWithoutRetry) {
  Instance ext(manifest_in(env_or_die("SYMPHONY_TEST_FS_DIR")), {});
  ext.handshake();
  Message r = ext.run_step(1, {{"call", 1}, {"capability", "fs.list"}, {"workspace", ""}});
  EXPECT_EQ(r.error, json({{"code", "failed"},
                           {"message", "fs.list: the run has no workspace (fs works inside one)"},
                           {"retryable", false}}));
}

}  // namespace
}  // namespace symphony
