// Models as sandboxed processes: spawn, probe, kill, and their resident
// memory from /proc.
#include "daemon/sandbox_model_loader.h"

#include <unistd.h>

#include <cctype>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "sandbox/process_tree.h"

namespace symphony::daemon {

SandboxModelLoader::SandboxModelLoader(sandbox::Launcher* launcher, std::vector<ModelCommand> commands)
    : launcher_(launcher), commands_(std::move(commands)) {}

SandboxModelLoader::~SandboxModelLoader() {
  std::lock_guard lock(mu_);
  for (auto& [id, child] : children_) {
    (void)child->kill();
    child->wait();
  }
}

Result<pit::pool::Loaded> SandboxModelLoader::load(const pit::pool::ModelSpec& model, const std::string& device) {
  if (device != "host") {
    return Error::described(ENODEV, fmt::format("model '{}': device '{}' has no loader (only host)", model.name, device));
  }
  const ModelCommand* command = nullptr;
  for (const auto& c : commands_) {
    if (c.name == model.name) command = &c;
  }
  if (command == nullptr) return Error::described(ENOENT, fmt::format("model '{}' has no command", model.name));
  if (launcher_ == nullptr) {
    return Error::described(ENOSYS, fmt::format("model '{}': the sandbox is unavailable (see symphonyctl status)",
                                                model.name));
  }
  sandbox::Spec spec;
  spec.argv = command->argv;
  spec.name = "model-" + model.name;
  for (char& ch : spec.name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != '-') ch = '_';
  }
  // The model's declared size is its memory limit: one that grows beyond
  // it is killed alone (and the health check reports the oom).
  if (model.expected_memory.value > 0) spec.limits.memory = model.expected_memory;
  spec.limits.pids = 256;
  std::lock_guard lock(mu_);
  auto child = launcher_->spawn(spec);
  if (!child) return std::move(child).error().wrap("model '" + model.name + "'");
  std::uint64_t id = next_++;
  int pid = (*child)->pid();
  children_[id] = std::move(*child);
  return pit::pool::Loaded{pit::pool::InstanceId{id}, pit::pool::Bytes{sandbox::tree_rss(pid)}};
}

Result<void> SandboxModelLoader::unload(pit::pool::InstanceId instance) {
  std::unique_ptr<sandbox::Child> child;
  {
    std::lock_guard lock(mu_);
    auto it = children_.find(instance.value);
    if (it == children_.end()) return Error::described(ENOENT, fmt::format("no model instance {}", instance.value));
    child = std::move(it->second);
    children_.erase(it);
  }
  (void)child->kill();
  child->wait();
  return ok();
}

Result<void> SandboxModelLoader::health(pit::pool::InstanceId instance) {
  std::lock_guard lock(mu_);
  auto it = children_.find(instance.value);
  if (it == children_.end()) return Error::described(ENOENT, fmt::format("no model instance {}", instance.value));
  if (auto report = it->second->poll_exit()) {
    return Error::described(ECHILD, "the model's process ended (" + std::string(sandbox::to_string(report->reason)) +
                                        "): " + report->message);
  }
  return ok();
}

Result<pit::pool::Bytes> SandboxModelLoader::measure_memory(const std::string& device) {
  if (device != "host") return Error::described(ENODEV, "no memory measurement for device '" + device + "'");
  std::lock_guard lock(mu_);
  std::uint64_t total = 0;
  for (const auto& [id, child] : children_) total += sandbox::tree_rss(child->pid());
  return pit::pool::Bytes{total};
}

std::size_t SandboxModelLoader::live() const {
  std::lock_guard lock(mu_);
  return children_.size();
}

}  // namespace symphony::daemon
