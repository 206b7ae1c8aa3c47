// symphonyctl artifact … and symphonyctl pit …: the artifact store and the
// Pit's statistics from the command line (docs/cli.md, symphonyctl(1)).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "cli/ctl.h"

namespace symphony::cli {

// Adds the `artifact` and `pit` command trees to `app`. The returned function
// runs whichever of them was parsed and returns its exit code, or -1 when
// none of them was.
std::function<int()> add_artifact_commands(CLI::App& app, const Globals& g);

}  // namespace symphony::cli
