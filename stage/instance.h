// One running extension instance, seen from the daemon: its sandbox, its
// channel and the protocol of docs/extension-protocol.md. start() spawns the
// manifest's command in a sandbox with exactly the manifest's permissions and
// limits and runs the handshake; run() calls one step and watches the
// instance while it runs (heartbeats, the sandbox's exit report, the step's
// deadline, cancellation); anything the instance does wrong kills it — the
// whole sandbox — and becomes a StepFailure naming the reason.
//
// Threading: run() blocks its caller (the extension host calls it from a
// worker thread) and holds the instance for the step; health() and
// shutdown() may be called from other threads and skip work an active run()
// is already doing.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "ipc/msgpack_rpc.h"
#include "sandbox/launcher.h"
#include "stage/manifest.h"

namespace symphony::stage {

// Why a step attempt failed: the classes a workflow's retry policy names.
enum class FailureKind {
  crash,     // the instance exited or was killed by a signal
  hang,      // no message within the heartbeat timeout
  timeout,   // the attempt ran past its deadline
  oom,       // the instance exceeded its memory limit
  syscall,   // the seccomp filter killed it
  protocol,  // it sent something that is not the protocol
  failed,    // the extension reported an error
  cancelled, // the step was cancelled
  start,     // the instance could not be started or refused the handshake
};
std::string_view to_string(FailureKind kind);

struct StepFailure {
  FailureKind kind = FailureKind::failed;
  std::string message;
  bool retryable = true;
};

struct InputData {
  std::string artifact;  // "name@version"
  std::string digest;
  std::string media_type;
  std::string data;
};

struct StepInput {
  std::string name;
  bool fan_out = false;  // sent as an array (one per item) rather than one map
  std::vector<InputData> items;
};

struct StepCall {
  std::string step;  // "run/step#attempt", for the extension's logs
  std::string capability;
  nlohmann::json params = nlohmann::json::object();
  std::vector<StepInput> inputs;
  std::string workspace;
  std::optional<std::chrono::milliseconds> timeout;  // per attempt
};

struct StepOutputData {
  std::string name;
  std::string media_type;
  std::string data;
};

struct StepResult {
  std::vector<StepOutputData> outputs;
  nlohmann::json summary;  // null when the extension sent none
};

using StepOutcome = std::variant<StepResult, StepFailure>;

// Progress and log lines while a step runs (called on run()'s thread).
struct StepEvents {
  std::function<void(double fraction, std::string_view message)> progress;
  std::function<void(std::string_view level, std::string_view message)> log;
};

// A flag another thread raises to cancel a running step; run() notices it
// at once (an eventfd in its poll set).
class CancelToken {
 public:
  CancelToken();
  void cancel();
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  int fd() const { return fd_.get(); }

 private:
  std::atomic<bool> cancelled_{false};
  UniqueFd fd_;
};

struct InstanceOptions {
  std::uint64_t instance_id = 0;
  std::string symphony_version;
  std::chrono::milliseconds heartbeat{1000};
  std::chrono::milliseconds heartbeat_timeout{5000};
  std::chrono::milliseconds handshake_timeout{10000};
  std::chrono::milliseconds cancel_grace{2000};
  std::string python_sdk_dir;  // bound read-only and put on PYTHONPATH when it exists
  std::optional<std::uint32_t> uid;  // the host uid/gid the instance runs as
  std::optional<std::uint32_t> gid;
  ipc::rpc::DecodeLimits limits;
  // Log system calls outside the allow-list instead of killing (extension
  // development: `symphonyctl ext run --seccomp-log`); see exit_report().
  bool seccomp_log = false;
  // Lines the instance writes on stdout/stderr outside any step (inside a
  // step they go to StepEvents::log at level "output").
  std::function<void(std::string_view line)> on_output;
};

class Instance {
 public:
  // Spawns the extension for `workspace` (absolute; may be empty when the
  // manifest grants nothing in the workspace) and completes the handshake.
  // The error says what failed: the sandbox's setup step, a handshake
  // timeout, the instance's exit report, or the mismatch it was refused for.
  static Result<std::unique_ptr<Instance>> start(sandbox::Launcher& launcher, const Manifest& manifest,
                                                 const std::filesystem::path& workspace,
                                                 InstanceOptions options);
  ~Instance();  // shuts the instance down (ext.shutdown, then kill)
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  // Calls one step and waits for its outcome. A failure other than
  // `failed`/`cancelled` has killed the instance (alive() is then false).
  StepOutcome run(const StepCall& call, const StepEvents& events, const CancelToken* cancel = nullptr);

  // Reads what arrived while idle (heartbeats, output lines) and checks the
  // process; false (with the reason) once the instance is gone or hung.
  Result<void> health();
  bool alive() const { return alive_.load(std::memory_order_acquire); }
  // ext.shutdown, wait up to cancel_grace, then kill; idempotent.
  void shutdown();

  int pid() const;
  // How the sandbox ended, once it has (after shutdown() or a failure):
  // with seccomp_log, the system calls that would have been denied.
  std::optional<sandbox::ExitReport> exit_report() const;
  const Manifest& manifest() const { return manifest_; }
  std::uint64_t id() const { return options_.instance_id; }
  std::chrono::steady_clock::time_point last_used() const;
  std::uint64_t steps_run() const { return steps_.load(std::memory_order_relaxed); }

 private:
  Instance(const Manifest& manifest, InstanceOptions options);
  Result<void> handshake();
  // One poll round over the channel, the output pipe, the child and
  // `extra_fd`; fills `in` with messages that arrived.
  enum class Wake { ready, timeout, extra, child };
  Wake wait(std::chrono::steady_clock::time_point deadline, int extra_fd, bool want_write);
  // Reads what is available; false on end of stream or a fatal decode error
  // (failure_ then says which).
  bool read_channel(std::vector<ipc::rpc::Message>& out);
  bool flush_out();
  void drain_output(const StepEvents* events);
  // Kills the sandbox and returns `failure` (the instance is dead).
  StepFailure kill_with(FailureKind kind, std::string message);
  // The instance ended on its own: its exit report, as a failure.
  StepFailure ended();
  std::optional<StepFailure> handle_notification(const ipc::rpc::Message& m, std::uint64_t call,
                                                 const StepEvents* events);

  Manifest manifest_;
  InstanceOptions options_;
  std::string workspace_;
  std::unique_ptr<sandbox::Child> child_;
  UniqueFd channel_;
  UniqueFd output_;
  std::string output_partial_;
  bool output_ready_ = false;  // the last wait() saw the output pipe readable
  ipc::rpc::StreamDecoder decoder_;
  ipc::rpc::WriteBuffer out_;
  std::size_t out_sent_ = 0;
  std::string decode_problem_;
  std::uint32_t next_id_ = 1;
  std::uint64_t next_call_ = 1;
  std::chrono::steady_clock::time_point last_seen_;
  std::atomic<std::int64_t> last_used_ns_{0};
  std::atomic<std::uint64_t> steps_{0};
  std::atomic<bool> alive_{false};
  std::optional<sandbox::ExitReport> report_;
  std::mutex mu_;  // held by run(), health() and shutdown()
};

// Checks `params` against the capability's parameter schema and fills in
// defaults: unknown names, missing required ones and wrong types are
// errors naming the parameter ("params.limit: expected integer, got string").
// Parameters of type artifact are the step's inputs: they are satisfied by
// an input of that name (`inputs`), and an input the capability does not
// declare is an error too.
Result<nlohmann::json> check_params(const Capability& capability, const nlohmann::json& params,
                                    const std::vector<std::string>& inputs = {});

}  // namespace symphony::stage
