// The capabilities of org.symphony.torchscript — torch.infer and torch.info —
// as functions of a step's params, workspace and input artifacts, returning
// the step's outputs and summary. Kept apart from the extension protocol
// (main.cc hands them to the SDK) so that they can be tested on real models
// without a daemon. docs/bundled-extensions.md documents params and outputs.
//
// Errors follow base/result.h. Those the request causes — a bad parameter, a
// missing or unreadable model, a file that is not TorchScript, inputs of the
// wrong shape or dtype — satisfy is_request_error() and will fail again if
// the step is retried.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "extensions/torchscript/module_cache.h"

namespace symphony::extensions::torchscript {

// Must equal extension.toml (tests/extensions/torchscript_test.cc checks).
inline constexpr std::string_view kExtensionId = "org.symphony.torchscript";
inline constexpr std::string_view kExtensionVersion = "0.1.0";
inline constexpr std::string_view kInferCapability = "torch.infer";
inline constexpr std::string_view kInfoCapability = "torch.info";

// torch.infer returns each result tensor as an output "output0", "output1", …
// The daemon accepts only outputs the manifest declares, and it declares
// this many; a method that returns more tensors fails.
inline constexpr std::size_t kMaxTensorOutputs = 8;
// Result tensors up to this many elements carry their data in the JSON
// output `outputs`; larger ones only in their binary output.
inline constexpr std::int64_t kMaxJsonElements = 1'000'000;

// The name of the input artifacts that hold tensors, as a params alternative.
inline constexpr std::string_view kTensorsInput = "tensors";

// One input artifact, as the step received it (views into the step's data).
struct TensorArtifact {
  std::string_view artifact;    // "weights@2", for error messages
  std::string_view media_type;  // application/x-symphony-tensor or application/json
  std::string_view data;
};

// One output of a step, ready for Step::output().
struct StepOutput {
  std::string name;
  std::string media_type;
  std::string data;
};

struct StepResult {
  std::vector<StepOutput> outputs;
  nlohmann::json summary;
};

// The model file `params.model` names: a path relative to `workspace` (which
// it may not leave), or an absolute path, which the manifest must grant for
// the sandbox to show it. Lexically normalised; not checked for existence.
Result<std::filesystem::path> resolve_model_path(const nlohmann::json& params,
                                                 const std::filesystem::path& workspace);

// torch.infer: runs params.method (default "forward") of the model on the
// inputs — params.inputs (JSON tensors and scalars) or the `tensors` input
// artifacts, in argument order, not both — with params.threads intra-op
// threads on params.device (only "cpu" unless LibTorch sees CUDA). Outputs:
// "outputs" (application/json, one entry per result tensor) and "output<i>"
// (application/x-symphony-tensor) per result tensor; summary {shapes,
// dtypes, elapsed_ms, model_cached}.
Result<StepResult> run_infer(ModuleCache& cache, const nlohmann::json& params,
                             const std::filesystem::path& workspace,
                             std::span<const TensorArtifact> tensors);

// torch.info: output "info" (application/json): the model's methods with
// their schemas, its parameter count and its named parameters' shapes and
// dtypes; summary {methods, parameters}.
Result<StepResult> run_info(ModuleCache& cache, const nlohmann::json& params,
                            const std::filesystem::path& workspace);

// True for errors that a retry of the same step would meet again.
bool is_request_error(const Error& error);

}  // namespace symphony::extensions::torchscript
