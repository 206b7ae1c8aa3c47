// torch.infer and torch.info (torchscript_ops.h): parameters read and checked
// first, each with an error that names it, then the model loaded through the
// cache and run under c10::InferenceMode; every call into LibTorch goes
// through catch_torch so that no exception leaves this module.
#include "extensions/torchscript/torchscript_ops.h"

#include <ATen/Parallel.h>
#include <ATen/ops/scalar_tensor.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/cuda.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <sstream>
#include <utility>

#include "extensions/torchscript/tensor_codec.h"
#include "extensions/torchscript/torch_error.h"

namespace symphony::extensions::torchscript {
namespace {

using nlohmann::json;

constexpr int kMaxThreads = 1024;

// A result tensor and, when it came out of a dict, its key path ("boxes",
// "head.logits").
struct NamedTensor {
  std::string name;
  at::Tensor tensor;
};

Result<std::string> string_param(const json& params, const char* name, std::string fallback) {
  auto it = params.find(name);
  if (it == params.end() || it->is_null()) return fallback;
  if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
    return Error::invalid(fmt::format("{}: expected a non-empty string, got {}", name, it->dump()));
  }
  return it->get<std::string>();
}

Result<int> threads_param(const json& params) {
  auto it = params.find("threads");
  if (it == params.end() || it->is_null()) return 1;
  if (!it->is_number_integer() || it->get<std::int64_t>() < 1 ||
      it->get<std::int64_t>() > kMaxThreads) {
    return Error::invalid(
        fmt::format("threads: expected an integer from 1 to {}, got {}", kMaxThreads, it->dump()));
  }
  return static_cast<int>(it->get<std::int64_t>());
}

// "cpu", "cuda" or "cuda:N". CUDA is refused here, with the reason, when
// LibTorch has no CUDA device: Debian's libtorch is built without CUDA, and a
// sandbox without the manifest's `gpu` permission shows no GPU either.
Result<c10::Device> device_param(const json& params) {
  auto name = string_param(params, "device", "cpu");
  if (!name) return std::move(name).error();
  auto device = catch_torch("device", [&]() -> Result<c10::Device> { return c10::Device(*name); });
  if (!device || !(device->is_cpu() || device->is_cuda())) {
    return Error::invalid(fmt::format("device: '{}' is not one of cpu, cuda, cuda:N", *name));
  }
  if (device->is_cuda()) {
    bool available = false;
    std::size_t count = 0;
    if (auto probed = catch_torch("device",
                                  [&]() -> Result<void> {
                                    available = torch::cuda::is_available();
                                    count = available ? torch::cuda::device_count() : 0;
                                    return ok();
                                  });
        !probed) {
      return std::move(probed).error();
    }
    if (!available) {
      return Error::described(
          ENODEV, fmt::format("device: '{}' requested, but CUDA is not available to this "
                              "extension (LibTorch built without CUDA, or no GPU in the "
                              "sandbox); use device 'cpu'",
                              *name));
    }
    if (device->has_index() && static_cast<std::size_t>(device->index()) >= count) {
      return Error::described(
          ENODEV, fmt::format("device: '{}' requested, but only {} CUDA device(s) are visible",
                              *name, count));
    }
  }
  return *device;
}

// One `tensors` input artifact: the binary form, or a JSON tensor.
Result<at::Tensor> read_artifact(const TensorArtifact& a, const std::string& where) {
  if (a.media_type == kTensorMediaType) return decode_tensor(a.data, where);
  if (a.media_type == "application/json") {
    json value = json::parse(a.data, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) return Error::invalid(where + ": not valid JSON");
    return tensor_from_json(value, where);
  }
  return Error::invalid(fmt::format("{}: media type '{}' is not {} or application/json", where,
                                    a.media_type, kTensorMediaType));
}

// The arguments of the method, in order, from params.inputs or the `tensors`
// artifacts.
Result<std::vector<c10::IValue>> read_inputs(const json& params,
                                             std::span<const TensorArtifact> tensors) {
  std::vector<c10::IValue> args;
  auto it = params.find("inputs");
  bool from_params = it != params.end() && !it->is_null();
  if (from_params && !tensors.empty()) {
    return Error::invalid(fmt::format(
        "inputs: give either params.inputs or the '{}' input artifacts, not both", kTensorsInput));
  }
  if (from_params) {
    if (!it->is_array()) {
      return Error::invalid(fmt::format("inputs: expected an array, got {}", it->type_name()));
    }
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& v = (*it)[i];
      if (v.is_boolean()) {
        args.emplace_back(v.get<bool>());
      } else if (v.is_number_integer()) {
        if (v.is_number_unsigned() &&
            v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
          return Error::invalid(fmt::format("inputs[{}]: {} is out of range for int", i, v.dump()));
        }
        args.emplace_back(v.get<std::int64_t>());
      } else if (v.is_number_float()) {
        args.emplace_back(v.get<double>());
      } else {
        auto tensor = tensor_from_json(v, fmt::format("inputs[{}]", i));
        if (!tensor) return std::move(tensor).error();
        args.emplace_back(std::move(*tensor));
      }
    }
    return args;
  }
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    auto tensor = read_artifact(
        tensors[i], fmt::format("input '{}'[{}] ({})", kTensorsInput, i, tensors[i].artifact));
    if (!tensor) return std::move(tensor).error();
    args.emplace_back(std::move(*tensor));
  }
  return args;
}

// The tensors in a method's return value, depth first: a tensor; a tuple or
// list of them; a dict with string keys (insertion order); nested alike.
// Python scalars become 0-dimensional tensors.
Result<void> flatten(const c10::IValue& value, const std::string& name,
                     std::vector<NamedTensor>& out) {
  if (value.isTensor()) {
    out.push_back({name, value.toTensor()});
  } else if (value.isInt()) {
    out.push_back({name, at::scalar_tensor(value.toInt(), at::kLong)});
  } else if (value.isDouble()) {
    out.push_back({name, at::scalar_tensor(value.toDouble(), at::kDouble)});
  } else if (value.isBool()) {
    out.push_back({name, at::scalar_tensor(value.toBool(), at::kBool)});
  } else if (value.isTuple()) {
    for (const auto& e : value.toTupleRef().elements()) {
      if (auto r = flatten(e, name, out); !r) return r;
    }
  } else if (value.isList()) {
    for (const auto& e : value.toListRef()) {
      if (auto r = flatten(e, name, out); !r) return r;
    }
  } else if (value.isGenericDict()) {
    for (const auto& item : value.toGenericDict()) {
      if (!item.key().isString()) {
        return Error::invalid(fmt::format(
            "returned a dict with {} keys; only string keys name outputs", item.key().tagKind()));
      }
      std::string key = item.key().toStringRef();
      if (auto r = flatten(item.value(), name.empty() ? key : name + "." + key, out); !r) return r;
    }
  } else {
    return Error::invalid(
        fmt::format("returned {}, but outputs must be tensors (or tuples, lists and string-keyed "
                    "dicts of them)",
                    value.tagKind()));
  }
  return ok();
}

std::string method_list(const torch::jit::Module& module) {
  std::string names;
  for (const auto& m : module.get_methods()) {
    if (!names.empty()) names += ", ";
    names += m.name();
  }
  return names.empty() ? "none" : names;
}

// Loads the model `params.model` names. A missing absolute path is most
// often one the manifest does not grant, so the error says so.
Result<LoadedModule> load_model(ModuleCache& cache, const json& params,
                                const std::filesystem::path& workspace,
                                std::filesystem::path& path) {
  auto resolved = resolve_model_path(params, workspace);
  if (!resolved) return std::move(resolved).error();
  path = *resolved;
  auto loaded = cache.load(path);
  if (!loaded && loaded.error().code() == ENOENT &&
      std::filesystem::path(params.at("model").get<std::string>()).is_absolute()) {
    return Error::described(ENOENT,
                            loaded.error().message() +
                                " (an absolute model path must be granted in the extension's "
                                "permissions.filesystem)");
  }
  return loaded;
}

double milliseconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

Result<StepResult> infer_impl(ModuleCache& cache, const json& params,
                              const std::filesystem::path& workspace,
                              std::span<const TensorArtifact> tensors) {
  auto method_name = string_param(params, "method", "forward");
  if (!method_name) return std::move(method_name).error();
  auto threads = threads_param(params);
  if (!threads) return std::move(threads).error();
  auto device = device_param(params);
  if (!device) return std::move(device).error();
  auto args = read_inputs(params, tensors);
  if (!args) return std::move(args).error();

  auto load_start = std::chrono::steady_clock::now();
  std::filesystem::path path;
  auto loaded = load_model(cache, params, workspace, path);
  if (!loaded) return std::move(loaded).error();
  double load_ms = milliseconds_since(load_start);
  torch::jit::Module& module = *loaded->module;

  std::string context = fmt::format("model {}: {}", path.string(), *method_name);
  auto method = module.find_method(*method_name);
  if (!method) {
    return Error::invalid(fmt::format("model {}: no method '{}' (it has: {})", path.string(),
                                      *method_name, method_list(module)));
  }

  std::vector<NamedTensor> results;
  double elapsed_ms = 0;
  auto ran = catch_torch(context, [&]() -> Result<void> {
    at::set_num_threads(*threads);
    module.to(*device);
    for (auto& a : *args) {
      if (a.isTensor()) a = a.toTensor().to(*device);
    }
    c10::InferenceMode inference;
    auto start = std::chrono::steady_clock::now();
    c10::IValue value = (*method)(std::move(*args));
    elapsed_ms = milliseconds_since(start);
    return flatten(value, "", results);
  });
  if (!ran) return std::move(ran).error();
  if (results.size() > kMaxTensorOutputs) {
    return Error::invalid(
        fmt::format("{}: returned {} tensors; at most {} can be outputs (output0 … output{})",
                    context, results.size(), kMaxTensorOutputs, kMaxTensorOutputs - 1));
  }

  StepResult out;
  json entries = json::array();
  json shapes = json::array();
  json dtypes = json::array();
  for (std::size_t i = 0; i < results.size(); ++i) {
    const NamedTensor& r = results[i];
    std::string output_name = fmt::format("output{}", i);
    std::string where = fmt::format("{}: output {}", context, i);
    auto entry = r.tensor.numel() <= kMaxJsonElements ? tensor_to_json(r.tensor)
                                                      : tensor_description(r.tensor);
    if (!entry) return std::move(entry.error().wrap(where));
    auto bytes = encode_tensor(r.tensor);
    if (!bytes) return std::move(bytes.error().wrap(where));
    (*entry)["output"] = output_name;
    if (!r.name.empty()) (*entry)["name"] = r.name;
    shapes.push_back((*entry)["shape"]);
    dtypes.push_back((*entry)["dtype"]);
    entries.push_back(std::move(*entry));
    out.outputs.push_back({output_name, std::string(kTensorMediaType), std::move(*bytes)});
  }
  out.outputs.insert(out.outputs.begin(),
                     StepOutput{"outputs", "application/json", entries.dump()});
  out.summary = {{"shapes", std::move(shapes)},
                 {"dtypes", std::move(dtypes)},
                 {"elapsed_ms", elapsed_ms},
                 {"load_ms", load_ms},
                 {"model_cached", loaded->hit == CacheHit::yes}};
  return out;
}

Result<StepResult> info_impl(ModuleCache& cache, const json& params,
                             const std::filesystem::path& workspace) {
  std::filesystem::path path;
  auto loaded = load_model(cache, params, workspace, path);
  if (!loaded) return std::move(loaded).error();
  const torch::jit::Module& module = *loaded->module;

  json methods = json::array();
  for (const auto& m : module.get_methods()) {
    std::ostringstream schema;
    schema << m.function().getSchema();
    methods.push_back({{"name", m.name()}, {"schema", schema.str()}});
  }
  std::int64_t count = 0;
  json named = json::array();
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    count += p.value.numel();
    auto dtype = dtype_of(p.value);
    named.push_back({{"name", p.name},
                     {"shape", p.value.sizes().vec()},
                     {"dtype", dtype ? std::string(to_string(*dtype))
                                     : std::string(c10::toString(p.value.scalar_type()))}});
  }
  json info = {{"methods", methods}, {"parameters", count}, {"named_parameters", std::move(named)}};
  StepResult out;
  out.outputs.push_back({"info", "application/json", info.dump()});
  out.summary = {{"methods", methods.size()},
                 {"parameters", count},
                 {"model_cached", loaded->hit == CacheHit::yes}};
  return out;
}

}  // namespace

Result<std::filesystem::path> resolve_model_path(const json& params,
                                                 const std::filesystem::path& workspace) {
  auto it = params.find("model");
  if (it == params.end() || it->is_null()) {
    return Error::invalid("model: missing required parameter");
  }
  if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
    return Error::invalid(
        fmt::format("model: expected a path (a non-empty string), got {}", it->dump()));
  }
  std::filesystem::path model(it->get<std::string>());
  if (model.is_absolute()) return model.lexically_normal();
  if (workspace.empty()) {
    return Error::invalid(fmt::format(
        "model: '{}' is relative to the workspace, but this step has none", model.string()));
  }
  std::filesystem::path root = workspace.lexically_normal();
  std::filesystem::path full = (root / model).lexically_normal();
  std::filesystem::path inside = full.lexically_relative(root);
  if (inside.empty() || *inside.begin() == ".." || inside == ".") {
    return Error::invalid(
        fmt::format("model: '{}' is not a file inside the workspace", model.string()));
  }
  return full;
}

Result<StepResult> run_infer(ModuleCache& cache, const json& params,
                             const std::filesystem::path& workspace,
                             std::span<const TensorArtifact> tensors) {
  return catch_torch("LibTorch", [&] { return infer_impl(cache, params, workspace, tensors); });
}

Result<StepResult> run_info(ModuleCache& cache, const json& params,
                            const std::filesystem::path& workspace) {
  return catch_torch("LibTorch", [&] { return info_impl(cache, params, workspace); });
}

bool is_request_error(const Error& error) {
  switch (error.code()) {
    case EINVAL:
    case ENOENT:
    case EACCES:
    case EPERM:
    case EISDIR:
    case ENOTDIR:
    case ELOOP:
    case ENAMETOOLONG:
    case ENODEV:
      return true;
    default:
      return false;
  }
}

}  // namespace symphony::extensions::torchscript
