// A test double for pool::Loader: records every call, simulates memory use
// per device, and can be told to fail loads, fail health checks, free less
// than an instance claimed on unload, or take time to load. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "pit/pool/loader.h"

namespace symphony::pit::pool::testing {

class FakeLoader final : public Loader {
 public:
  struct Call {
    std::string op;     // "load", "unload", "health"
    std::string model;  // for load; the instance's model otherwise
  };

  // Memory the device really takes when `model` loads, and the amount the
  // instance reports (defaults: both the spec's expected_memory).
  void set_size(const std::string& model, std::uint64_t actual, std::uint64_t reported) {
    std::lock_guard lk(mu_);
    sizes_[model] = {actual, reported};
  }
  // Fraction of an instance's actual memory an unload gives back.
  void set_unload_frees(double fraction) {
    std::lock_guard lk(mu_);
    unload_frees_ = fraction;
  }
  void fail_loads_of(const std::string& model, std::string why) {
    std::lock_guard lk(mu_);
    load_errors_[model] = std::move(why);
  }
  void heal_loads_of(const std::string& model) {
    std::lock_guard lk(mu_);
    load_errors_.erase(model);
  }
  // Health checks of every instance of `model` fail with `why` ("" heals).
  void set_sick(const std::string& model, std::string why) {
    std::lock_guard lk(mu_);
    if (why.empty())
      sick_.erase(model);
    else
      sick_[model] = std::move(why);
  }
  void set_load_delay(std::chrono::milliseconds d) {
    std::lock_guard lk(mu_);
    delay_ = d;
  }

  Result<Loaded> load(const ModelSpec& model, const std::string& device) override {
    std::chrono::milliseconds delay;
    {
      std::lock_guard lk(mu_);
      calls_.push_back({"load", model.name});
      delay = delay_;
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    std::lock_guard lk(mu_);
    if (auto it = load_errors_.find(model.name); it != load_errors_.end())
      return Error::described(EIO, it->second);
    auto size = sizes_.count(model.name) ? sizes_[model.name]
                                         : Size{model.expected_memory.value, model.expected_memory.value};
    std::uint64_t id = next_id_++;
    live_[id] = {model.name, device, size.actual};
    used_[device] += size.actual;
    return Loaded{InstanceId{id}, Bytes{size.reported}};
  }

  Result<void> unload(InstanceId instance) override {
    std::lock_guard lk(mu_);
    auto it = live_.find(instance.value);
    if (it == live_.end()) return Error::described(ENOENT, "no such instance");
    calls_.push_back({"unload", it->second.model});
    used_[it->second.device] -= static_cast<std::uint64_t>(static_cast<double>(it->second.actual) * unload_frees_);
    live_.erase(it);
    return ok();
  }

  Result<void> health(InstanceId instance) override {
    std::lock_guard lk(mu_);
    auto it = live_.find(instance.value);
    if (it == live_.end()) return Error::described(ENOENT, "no such instance");
    calls_.push_back({"health", it->second.model});
    if (auto s = sick_.find(it->second.model); s != sick_.end()) return Error::described(EIO, s->second);
    return ok();
  }

  Result<Bytes> measure_memory(const std::string& device) override {
    std::lock_guard lk(mu_);
    return Bytes{used_[device]};
  }

  std::vector<Call> calls() const {
    std::lock_guard lk(mu_);
    return calls_;
  }
  std::size_t count(const std::string& op, const std::string& model) const {
    std::lock_guard lk(mu_);
    std::size_t n = 0;
    for (const auto& c : calls_) n += (c.op == op && c.model == model);
    return n;
  }
  std::size_t live() const {
    std::lock_guard lk(mu_);
    return live_.size();
  }
  bool is_loaded(const std::string& model) const {
    std::lock_guard lk(mu_);
    for (const auto& [id, inst] : live_)
      if (inst.model == model) return true;
    return false;
  }
  std::uint64_t used(const std::string& device) const {
    std::lock_guard lk(mu_);
    auto it = used_.find(device);
    return it == used_.end() ? 0 : it->second;
  }

 private:
  struct Size {
    std::uint64_t actual, reported;
  };
  struct Live {
    std::string model, device;
    std::uint64_t actual;
  };
  mutable std::mutex mu_;
  std::map<std::string, Size> sizes_;
  std::map<std::string, std::string> load_errors_;
  std::map<std::string, std::string> sick_;
  std::map<std::uint64_t, Live> live_;
  std::map<std::string, std::uint64_t> used_;
  std::vector<Call> calls_;
  double unload_frees_ = 1.0;
  std::chrono::milliseconds delay_{0};
  std::uint64_t next_id_ = 1;
};

}  // namespace symphony::pit::pool::testing
