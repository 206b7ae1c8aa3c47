// Where symphonyd keeps its socket, configuration and state in each mode.
// System mode follows the FHS (/run, /etc, /var/lib); user mode follows the
// XDG base directories so a user's daemon needs no privileges at all.
#pragma once

#include <filesystem>
#include <string>

#include "base/result.h"

namespace symphony {

enum class Mode { system, user };
std::string_view to_string(Mode mode);

struct Paths {
  std::filesystem::path runtime_dir;  // /run/symphony, $XDG_RUNTIME_DIR/symphony
  std::filesystem::path socket;       // <runtime_dir>/symphonyd.sock
  std::filesystem::path config_file;  // /etc/symphony/symphonyd.toml, ~/.config/symphony/symphonyd.toml
  std::filesystem::path state_dir;    // /var/lib/symphony, ~/.local/state/symphony
};

// The defaults for `mode`. User mode needs $XDG_RUNTIME_DIR (or falls back to
// /run/user/<uid> when that exists) and $HOME. When systemd provides
// $RUNTIME_DIRECTORY, $STATE_DIRECTORY or $CONFIGURATION_DIRECTORY, those win.
Result<Paths> default_paths(Mode mode);

// The socket a client should try: $SYMPHONY_SOCKET, else the mode's default.
Result<std::string> default_socket(Mode mode);

// mkdir -p with `mode` for the last component; an existing directory is fine.
Result<void> ensure_directory(const std::filesystem::path& dir, unsigned mode);

}  // namespace symphony
