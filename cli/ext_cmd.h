// symphonyctl ext …: install, list, inspect, enable, disable and remove
// extensions through the daemon's registry (docs/cli.md, symphonyctl(1)).
// An install first shows what the extension's manifest asks for, read
// locally, and on a terminal asks before going ahead.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "cli/ctl.h"

namespace symphony::cli {

// Adds the `ext` command tree to `app`. The returned function runs the
// parsed ext command and returns its exit code, or -1 when none was parsed.
std::function<int()> add_ext_commands(CLI::App& app, const Globals& g);

}  // namespace symphony::cli
