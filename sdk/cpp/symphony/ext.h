// The C++ SDK for Symphony extensions. An extension registers a handler per
// capability and calls Extension::run(), which speaks the extension protocol
// (docs/extension-protocol.md) on the channel symphonyd passed it: the
// handshake, one step.run at a time, heartbeats from a thread, cancellation
// and shutdown. Handlers see a Step: its parameters and inputs, and the means
// to report progress, log, and return outputs. docs/sdk.md is the guide.
//
// Installed with the library `symphony-ext` (pkg-config: symphony-ext).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace symphony::ext {

// The protocol version this SDK speaks.
inline constexpr int kProtocolVersion = 1;

// `s` with every byte that is not part of valid UTF-8 (overlong forms,
// surrogates and code points past U+10FFFF included) replaced by U+FFFD:
// for text from files, repositories or users that goes into JSON outputs.
std::string valid_utf8(std::string_view s);

enum class Level { debug, info, warn, error };

// One artifact passed to a step. `data` holds the bytes as they are stored.
struct Input {
  std::string artifact;    // "notes@3"
  std::string digest;      // "sha256:…"
  std::string media_type;  // "text/plain"
  std::string data;
};

// Thrown by a handler to fail its step with a message of its own. A step that
// is not retryable (bad parameters, a path outside the workspace) is not run
// again under the workflow's retry policy.
class StepError : public std::runtime_error {
 public:
  explicit StepError(const std::string& message, bool retryable = true)
      : std::runtime_error(message), retryable_(retryable) {}
  bool retryable() const { return retryable_; }

 private:
  bool retryable_;
};

namespace detail {
class Channel;
}

// One step call, handed to the capability's handler. Valid only while the
// handler runs. progress() and log() send at once; outputs and the summary
// are sent with the answer when the handler returns.
class Step {
 public:
  Step(const Step&) = delete;
  Step& operator=(const Step&) = delete;

  const std::string& capability() const { return capability_; }
  // The "step" field: "run/step#attempt", for logs.
  const std::string& id() const { return id_; }
  // Always an object (the msgpack map converted; bin becomes a string).
  const nlohmann::json& params() const { return params_; }
  // The inputs under `name`: empty when absent, one element for a single
  // input, one per item (in item order) for a fanned-out input.
  const std::vector<Input>& inputs(std::string_view name) const;
  std::vector<std::string> input_names() const;
  // The run's workspace; empty when it has none.
  const std::filesystem::path& workspace() const { return workspace_; }
  // Time left for this attempt when the step started, in milliseconds; 0 = none.
  std::uint64_t deadline_ms() const { return deadline_ms_; }

  // step.progress: `fraction` is clamped to [0, 1].
  void progress(double fraction, std::string_view message = {});
  // step.log for this call.
  void log(Level level, std::string_view message);
  // True once step.cancel arrived for this call (or the daemon shut the
  // instance down). A handler that sees it should stop soon; the SDK then
  // answers "cancelled" whatever the handler returns or throws.
  bool cancelled() const { return cancelled_->load(std::memory_order_acquire); }

  // Adds (or replaces) an output; `data` is sent as bytes.
  void output(std::string name, std::string data,
              std::string media_type = "application/octet-stream");
  // An application/json output, serialized with dump(2); invalid UTF-8 in
  // its strings is replaced by U+FFFD.
  void output_json(std::string name, const nlohmann::json& value);
  // A small value shown with the step's result.
  void summary(nlohmann::json value);

  // What the SDK builds a Step from. Also public so that a handler can be
  // unit-tested without a daemon: a Step with a null channel drops progress
  // and log messages and keeps outputs() and summary_value() for the test.
  struct OutputData {
    std::string media_type;
    std::string data;
  };
  struct Request {
    std::uint64_t call = 0;
    std::string id;
    std::string capability;
    nlohmann::json params = nlohmann::json::object();
    std::map<std::string, std::vector<Input>, std::less<>> inputs;
    std::filesystem::path workspace;
    std::uint64_t deadline_ms = 0;
  };
  Step(Request request, std::shared_ptr<std::atomic<bool>> cancelled, detail::Channel* channel);
  const std::map<std::string, OutputData>& outputs() const { return outputs_; }
  const std::optional<nlohmann::json>& summary_value() const { return summary_; }

 private:
  std::uint64_t call_;
  std::string id_;
  std::string capability_;
  nlohmann::json params_;
  std::map<std::string, std::vector<Input>, std::less<>> inputs_;
  std::filesystem::path workspace_;
  std::uint64_t deadline_ms_;
  std::shared_ptr<std::atomic<bool>> cancelled_;
  detail::Channel* channel_;  // not owned; null when the step runs without a daemon
  std::map<std::string, OutputData> outputs_;
  std::optional<nlohmann::json> summary_;
};

using Handler = std::function<void(Step&)>;

class Extension {
 public:
  // `id` and `version` must equal the manifest's.
  Extension(std::string id, std::string version);
  ~Extension();
  Extension(const Extension&) = delete;
  Extension& operator=(const Extension&) = delete;

  // Registers the handler of `name`. The set of names must equal the
  // manifest's capabilities. Throws std::invalid_argument for a name
  // registered twice or an empty handler.
  Extension& capability(std::string name, Handler handler);

  // Serves on the fd in SYMPHONY_EXT_FD: sends ext.hello, then answers
  // step.run calls one at a time, sends ext.heartbeat every heartbeat_ms from
  // a thread, honours step.cancel and ext.shutdown. Returns the process exit
  // status: 0 on ext.shutdown or end of stream; 1, with a message on stderr,
  // when SYMPHONY_EXT_FD is missing or invalid, the handshake is refused, or
  // the daemon sends something that is not protocol. Call it once.
  int run();

  // Internal, for Symphony's own failure tests (tests/stage/chaos_ext): stops
  // the heartbeat thread's messages so the daemon sees a hung instance. Safe
  // to call from a handler.
  void stop_heartbeats_for_testing();

 private:
  std::string id_;
  std::string version_;
  std::map<std::string, Handler, std::less<>> handlers_;
  std::atomic<bool> heartbeats_enabled_{true};
};

}  // namespace symphony::ext
