// The child half of a spawn: the setup steps between clone and exec, run in
// order from a ChildPlan. Async-signal-safe throughout (see plan.h): system
// calls through the seam, no allocation, no formatting. A failing step sends
// {step, errno, detail} on the status socket and exits; the parent turns that
// into an Error naming the step.
#pragma once

#include "sandbox/plan.h"
#include "sandbox/syscalls.h"

namespace symphony::sandbox {

// Runs one step. Returns 0, or -errno with *detail set to the index of the
// mount op / rlimit / fd that failed (-1 when the step has no parts).
// Steps that only make sense in the process layout of a spawn
// (wait_for_parent, wait_for_request, fork_program) are run by run_child,
// not here; fds and exec run here, in the program's process.
long run_step(Step step, ChildPlan& plan, SysCalls& sys, int* detail);

// The whole child: phase A (namespaces' contents, the generic root), then,
// for a zygote shell, waits for a request; then phase B (this spawn's grants,
// identity, privileges, seccomp), forks the program and supervises it as the
// sandbox's init. Never returns.
[[noreturn]] void run_child(ChildPlan* plan, SysCalls& sys);

}  // namespace symphony::sandbox
