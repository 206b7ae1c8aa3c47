// symphonyctl run WORKFLOW and symphonyctl workflow ls|show|cancel|logs:
// submitting workflows to the Conductor and following them (docs/cli.md,
// docs/workflows.md, symphonyctl(1)).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "cli/ctl.h"

namespace symphony::cli {

// Exit code of `run` for a run that was cancelled (a failed run exits 1).
inline constexpr int kCancelled = 5;

// Adds `run` and the `workflow` tree to `app`; the returned function runs
// whichever was parsed and returns its exit code, or -1 when none was.
std::function<int()> add_workflow_commands(CLI::App& app, const Globals& g);

}  // namespace symphony::cli
