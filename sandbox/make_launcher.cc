// The one place the Linux backend is picked (STYLE.md: pick the backend in
// one place): the direct launcher, with a zygote when options ask for one.
#include "sandbox/spawn_internal.h"

namespace symphony::sandbox {

Result<std::unique_ptr<Launcher>> make_launcher(const LauncherOptions& options) {
  return make_linux_launcher(options);
}

}  // namespace symphony::sandbox
