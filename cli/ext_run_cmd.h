// symphonyctl ext run DIR CAPABILITY: an extension author's loop — run one
// step of the extension in DIR under exactly its manifest's sandbox, without
// installing it, with inputs fetched from the local daemon's artifact store
// (docs/sdk.md, symphonyctl(1)).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "cli/ctl.h"

namespace symphony::cli {

// Adds `run` under the existing `ext` command of `app`; the returned
// function runs it when parsed and returns its exit code, or -1.
std::function<int()> add_ext_run_command(CLI::App& app, const Globals& g);

}  // namespace symphony::cli
