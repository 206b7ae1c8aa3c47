// Mode-dependent default paths.
#include "base/paths.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "symphony_build_config.h"

namespace symphony {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// systemd passes a colon-separated list when a unit names several
// directories; Symphony's units name one.
std::string first_path(const std::string& list) { return list.substr(0, list.find(':')); }

Result<std::string> user_runtime_dir() {
  std::string runtime = env("XDG_RUNTIME_DIR");
  if (!runtime.empty()) return runtime;
  std::string fallback = "/run/user/" + std::to_string(::getuid());
  if (::access(fallback.c_str(), W_OK) != 0) {
    return Error::invalid("XDG_RUNTIME_DIR is not set and " + fallback +
                          " is not usable; set XDG_RUNTIME_DIR to a private directory");
  }
  return fallback;
}

}  // namespace

std::string_view to_string(Mode mode) { return mode == Mode::system ? "system" : "user"; }

Result<Paths> default_paths(Mode mode) {
  Paths p;
  if (mode == Mode::system) {
    p.runtime_dir = "/run/symphony";
    p.config_file = std::filesystem::path(SYMPHONY_SYSCONFDIR) / "symphony" / "symphonyd.toml";
    p.state_dir = std::filesystem::path(SYMPHONY_LOCALSTATEDIR) / "lib" / "symphony";
  } else {
    auto runtime = user_runtime_dir();
    if (!runtime) return std::move(runtime).error();
    std::string home = env("HOME");
    std::string config = env("XDG_CONFIG_HOME");
    std::string state = env("XDG_STATE_HOME");
    if ((config.empty() || state.empty()) && home.empty()) {
      return Error::invalid("HOME is not set (needed for ~/.config and ~/.local/state)");
    }
    if (config.empty()) config = home + "/.config";
    if (state.empty()) state = home + "/.local/state";
    p.runtime_dir = std::filesystem::path(*runtime) / "symphony";
    p.config_file = std::filesystem::path(config) / "symphony" / "symphonyd.toml";
    p.state_dir = std::filesystem::path(state) / "symphony";
  }
  // Under systemd, RuntimeDirectory=, StateDirectory= and
  // ConfigurationDirectory= say where the unit's directories really are
  // (they may be remapped, and the build's prefix may differ from /etc and
  // /var); they win over the compiled-in defaults.
  if (std::string d = first_path(env("RUNTIME_DIRECTORY")); !d.empty()) p.runtime_dir = d;
  if (std::string d = first_path(env("STATE_DIRECTORY")); !d.empty()) p.state_dir = d;
  if (std::string d = first_path(env("CONFIGURATION_DIRECTORY")); !d.empty()) {
    p.config_file = std::filesystem::path(d) / "symphonyd.toml";
  }
  p.socket = p.runtime_dir / "symphonyd.sock";
  return p;
}

Result<std::string> default_socket(Mode mode) {
  std::string forced = env("SYMPHONY_SOCKET");
  if (!forced.empty()) return forced;
  // Clients ignore $RUNTIME_DIRECTORY: inside some other service it names
  // that service's directory, not the daemon's.
  if (mode == Mode::system) return std::string("/run/symphony/symphonyd.sock");
  auto runtime = user_runtime_dir();
  if (!runtime) return std::move(runtime).error();
  return *runtime + "/symphony/symphonyd.sock";
}

Result<void> ensure_directory(const std::filesystem::path& dir, unsigned mode) {
  std::error_code ec;
  if (dir.has_parent_path() && dir.parent_path() != dir) {
    std::filesystem::create_directories(dir.parent_path(), ec);
    if (ec) return Error(ec.value(), "create " + dir.parent_path().string());
  }
  if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST) {
    return Error::from_errno("create " + dir.string());
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return Error::from_errno("stat " + dir.string());
  if (!S_ISDIR(st.st_mode)) return Error(ENOTDIR, dir.string());
  return ok();
}

}  // namespace symphony
