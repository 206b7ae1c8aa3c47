// org.symphony.test.chaos: an extension that misbehaves on request, for the
// extension host's failure-containment tests (docs/extension-protocol.md,
// "Failure containment") and its throughput benchmark. Never installed.
//   noop.run   answers at once with no outputs.
//   chaos.run  {mode, marker?, ms?}: mode is one of ok, segv, sigkill, hang,
//              oom, syscall, garbage, fail, fail_permanent, throw (a
//              std::runtime_error, not a StepError), sleep. With a
//              marker, the first attempt creates <workspace>/<marker> and
//              misbehaves; an attempt that finds it behaves as `ok`, so a
//              retried step succeeds.
#include <fcntl.h>
#include <sys/ptrace.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <symphony/ext.h>

namespace ext = symphony::ext;

namespace {

constexpr std::size_t kChunk = 16 * 1024 * 1024;

// Whether this attempt should misbehave: always without a marker; with one,
// only when the marker file did not exist yet (it exists afterwards).
bool first_attempt(const ext::Step& step, const std::string& marker) {
  if (marker.empty()) return true;
  if (step.workspace().empty()) {
    throw ext::StepError("chaos.run: a marker needs a workspace", false);
  }
  if (marker.find('/') != std::string::npos || marker == "." || marker == "..") {
    throw ext::StepError("chaos.run: marker '" + marker + "' must be a plain file name", false);
  }
  const std::string path = (step.workspace() / marker).string();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd >= 0) {
    ::close(fd);
    return true;
  }
  if (errno == EEXIST) return false;
  throw ext::StepError("chaos.run: create marker " + path + ": " + std::strerror(errno), false);
}

[[noreturn]] void block_forever() {
  for (;;) ::pause();
}

void segv() {
  volatile int* nowhere = nullptr;
  *nowhere = 1;
}

[[noreturn]] void oom() {
  // Kept reachable and touched page by page, so neither the compiler nor the
  // kernel's lazy allocation can make the memory free.
  static std::vector<char*> held;
  for (;;) {
    char* chunk = static_cast<char*>(std::malloc(kChunk));
    if (chunk == nullptr) continue;
    for (std::size_t i = 0; i < kChunk; i += 4096) static_cast<volatile char*>(chunk)[i] = 1;
    held.push_back(chunk);
  }
}

void forbidden_syscall() {
  // ptrace is outside the sandbox's seccomp allow-list. PEEKDATA on a process
  // this one does not trace has no effect where it is allowed (ESRCH), so
  // without a sandbox the step fails instead of disturbing the test.
  errno = 0;
  ::ptrace(PTRACE_PEEKDATA, ::getppid(), nullptr, nullptr);
  throw ext::StepError(std::string("chaos.run: ptrace was not stopped by a sandbox (") +
                           std::strerror(errno) + ")",
                       false);
}

void garbage() {
  // Straight onto the channel, past the SDK: 0xc1 is never valid msgpack.
  const char* env = std::getenv("SYMPHONY_EXT_FD");
  int fd = env != nullptr ? std::atoi(env) : 3;
  std::string bytes(64, '\0');
  std::mt19937 random(std::random_device{}());
  for (char& c : bytes) c = static_cast<char>(random());
  bytes[0] = static_cast<char>(0xc1);
  if (::write(fd, bytes.data(), bytes.size()) < 0) {
    throw ext::StepError(std::string("chaos.run: write garbage: ") + std::strerror(errno));
  }
}

void sleep_for(ext::Step& step) {
  const auto ms = step.params().value("ms", std::uint64_t{1000});
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    if (step.cancelled()) return;  // the SDK answers "cancelled"
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

// Under AddressSanitizer (the test suite's sanitizer build) the sanitizer
// would catch the deliberate SIGSEGV and exit 1; the tests need the signal
// itself to end the process, as it does in a normal build.
extern "C" __attribute__((visibility("default"), used)) const char* __asan_default_options() {
  return "handle_segv=0";
}

int main() {
  ext::Extension extension("org.symphony.test.chaos", "1.0.0");
  extension.capability("noop.run", [](ext::Step&) {});
  extension.capability("chaos.run", [&extension](ext::Step& step) {
    const std::string mode = step.params().value("mode", std::string("ok"));
    const std::string marker = step.params().value("marker", std::string());
    if (mode != "ok" && first_attempt(step, marker)) {
      if (mode == "segv") {
        segv();
      } else if (mode == "sigkill") {
        std::raise(SIGKILL);
      } else if (mode == "hang") {
        extension.stop_heartbeats_for_testing();
        block_forever();
      } else if (mode == "oom") {
        oom();
      } else if (mode == "syscall") {
        forbidden_syscall();
      } else if (mode == "garbage") {
        garbage();
      } else if (mode == "fail") {
        throw ext::StepError("chaos: asked to fail");
      } else if (mode == "fail_permanent") {
        throw ext::StepError("chaos: asked to fail permanently", false);
      } else if (mode == "throw") {
        throw std::runtime_error("chaos: threw a std::runtime_error");
      } else if (mode == "sleep") {
        sleep_for(step);
      } else {
        throw ext::StepError("chaos.run: unknown mode '" + mode + "'", false);
      }
    }
    step.progress(1.0, "done");
    step.log(ext::Level::info, "chaos: mode " + mode + " behaved");
    step.output_json("result", {{"mode", mode}, {"step", step.id()}});
  });
  return extension.run();
}
