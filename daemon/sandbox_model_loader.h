// The pool manager's loader for models declared in the daemon's
// configuration ([pit.models.<name>]): each instance is the model's command
// running in its own sandbox (namespaces, seccomp, a memory limit of the
// model's size), so a model that crashes or grows takes only itself down.
// Memory is measured, not assumed: the resident set of every live
// instance's processes, summed (the pool compares it before and after each
// load and unload). The extension host of the Grand Stage brings its own
// loader; this one serves models that are plain programs.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pit/pool/loader.h"
#include "sandbox/launcher.h"

namespace symphony::daemon {

struct ModelCommand {
  std::string name;
  std::vector<std::string> argv;
};

class SandboxModelLoader final : public pit::pool::Loader {
 public:
  // `launcher` (may be null: every load then fails saying why) must outlive
  // the loader.
  SandboxModelLoader(sandbox::Launcher* launcher, std::vector<ModelCommand> commands);
  ~SandboxModelLoader() override;

  Result<pit::pool::Loaded> load(const pit::pool::ModelSpec& model, const std::string& device) override;
  Result<void> unload(pit::pool::InstanceId instance) override;
  Result<void> health(pit::pool::InstanceId instance) override;
  Result<pit::pool::Bytes> measure_memory(const std::string& device) override;

  std::size_t live() const;

 private:
  sandbox::Launcher* launcher_;
  std::vector<ModelCommand> commands_;
  mutable std::mutex mu_;
  std::map<std::uint64_t, std::unique_ptr<sandbox::Child>> children_;
  std::uint64_t next_ = 1;
};

}  // namespace symphony::daemon
