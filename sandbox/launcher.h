// The launcher interface: spawn(spec) -> Child. Backends: Linux namespaces +
// seccomp + cgroups (linux_launcher.cc), Windows job objects
// (windows_launcher.cc), and the zygote (zygote.cc), which serves the same
// spawn from pre-forked sandboxes. Callers see only this header; the backend
// is chosen once, in make_launcher().
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "sandbox/exit_report.h"
#include "sandbox/spec.h"

namespace symphony::sandbox {

// A running sandboxed program. Owns the process (a pidfd on Linux, a job
// handle on Windows) and its cgroup; destroying a Child kills the whole
// sandbox and removes what was created for it.
class Child {
 public:
  virtual ~Child() = default;

  // The program's pid as the host sees it (the sandbox's init on Linux).
  virtual int pid() const = 0;
  // An fd that becomes readable when the child may have ended or needs
  // attention (a seccomp notification, the timeout): poll it from an event
  // loop, then call poll_exit(). -1 where the backend has none (Windows).
  virtual int wait_fd() const = 0;
  // Handles whatever is pending without blocking; returns the report once
  // the sandbox has ended (and is reaped), nullopt while it runs.
  virtual std::optional<ExitReport> poll_exit() = 0;
  // Blocks until the sandbox ends (honouring the timeout); idempotent.
  virtual ExitReport wait() = 0;
  // Kills every process of the sandbox (the cgroup or job as a group).
  virtual Result<void> kill() = 0;
};

// The time each setup step took in the most recent spawn, for the
// benchmark's per-step breakdown.
struct StepTiming {
  std::string step;
  std::chrono::nanoseconds took{0};
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  // Starts spec.argv in a new sandbox and returns once the program has been
  // exec'd. A failure in any setup step, in this process or in the child
  // before exec, is an Error whose context begins "setup step 'NAME'"
  // (see failed_step()).
  virtual Result<std::unique_ptr<Child>> spawn(const Spec& spec) = 0;
  // A one-line description for status output ("linux: namespaces, seccomp,
  // cgroup v1 (hybrid)").
  virtual std::string describe() const = 0;
  // Where the time of the most recent successful spawn went, step by step
  // (parent and child steps, in order). Empty where the backend does not
  // measure it.
  virtual std::vector<StepTiming> last_timings() const { return {}; }
  // Blocks until pre-forked shells (if the backend keeps any) are ready.
  virtual void prewarm() {}
};

// The setup step named by a spawn error ("pivot_root"), or "" when the error
// did not come from a setup step.
std::string failed_step(const Error& error);
// An Error for a failed step: context "setup step 'NAME': DETAIL".
Error step_error(std::string_view step, int code, std::string_view detail);
// The same for a failure already described by `cause` (its message is kept
// whole, errno text included, and not repeated).
Error step_error(std::string_view step, const Error& cause);
// The report for a spawn that failed (reason setup_failed, step, errno).
ExitReport setup_failed_report(const Error& error);

}  // namespace symphony::sandbox
