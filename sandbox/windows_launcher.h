// The Windows backend of the sandbox launcher: job objects and a restricted
// token (windows_launcher.cc says what it enforces and what it cannot).
// Built only by the mingw-w64 cross build (windows/meson.build); make_launcher()
// picks it on Windows.
#pragma once

#include <memory>

#include "sandbox/launcher.h"

namespace symphony::sandbox {

// A launcher whose sandboxes are job objects; the caller owns it. Creating it
// touches no system state: every spawn makes its own job.
std::unique_ptr<Launcher> make_windows_launcher();

}  // namespace symphony::sandbox
