// TODO: what this extension does, in two or three lines.
// The C++ extension template (docs/sdk.md): one capability that reads a
// parameter and returns a JSON output. Keep the id, version and capability
// names equal to extension.toml's, or the daemon refuses the handshake.
#include <symphony/ext.h>

#include <string>

namespace ext = symphony::ext;

namespace {

void run(ext::Step& step) {
  const nlohmann::json message = step.params().value("message", nlohmann::json("hello"));
  if (!message.is_string()) {
    // Not retryable: the same parameters fail the same way.
    throw ext::StepError("todo.run: params.message must be a string", /*retryable=*/false);
  }
  step.progress(0.5, "working");  // TODO: the real work; check step.cancelled() in long loops
  step.log(ext::Level::info, "message: " + message.get<std::string>());
  step.output_json("result", {{"echo", message}});
  step.summary({{"ok", true}});
}

}  // namespace

int main() {
  ext::Extension extension("org.example.todo", "0.1.0");  // TODO: as in extension.toml
  extension.capability("todo.run", run);
  return extension.run();
}
