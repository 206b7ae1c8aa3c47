// org.symphony.torchscript: the bundled TorchScript instrument. Wires
// torchscript_ops (loading, running and describing models) to the extension
// protocol through the C++ SDK; one module cache lives as long as the
// instance, so steps that reuse a model skip loading it.
#include <symphony/ext.h>

#include <string>
#include <vector>

#include "extensions/torchscript/torchscript_ops.h"

namespace ext = symphony::ext;
namespace ts = symphony::extensions::torchscript;

namespace {

// Hands a step's outputs and summary to the SDK, or fails the step: errors
// the request caused (bad params, a missing or non-TorchScript model, inputs
// of the wrong shape) are not retried.
void finish(ext::Step& step, symphony::Result<ts::StepResult> result) {
  if (!result) {
    throw ext::StepError(step.capability() + ": " + result.error().message(),
                         /*retryable=*/!ts::is_request_error(result.error()));
  }
  for (auto& o : result->outputs)
    step.output(std::move(o.name), std::move(o.data), std::move(o.media_type));
  step.summary(std::move(result->summary));
}

}  // namespace

int main() {
  ts::ModuleCache cache;
  ext::Extension extension{std::string(ts::kExtensionId), std::string(ts::kExtensionVersion)};

  extension.capability(std::string(ts::kInferCapability), [&cache](ext::Step& step) {
    std::vector<ts::TensorArtifact> tensors;
    for (const ext::Input& in : step.inputs(ts::kTensorsInput))
      tensors.push_back({in.artifact, in.media_type, in.data});
    finish(step, ts::run_infer(cache, step.params(), step.workspace(), tensors));
  });

  extension.capability(std::string(ts::kInfoCapability), [&cache](ext::Step& step) {
    finish(step, ts::run_info(cache, step.params(), step.workspace()));
  });

  return extension.run();
}
