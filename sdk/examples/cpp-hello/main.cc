// The C++ SDK example (docs/sdk.md): `hello.greet` greets `name` and every
// line of the optional `names` input, reporting progress and a log line as it
// goes. Built in-tree so that tests/sdk/sdk_test.cc runs it as the daemon would.
#include <symphony/ext.h>

#include <sstream>
#include <string>
#include <vector>

namespace ext = symphony::ext;

namespace {

void greet(ext::Step& step) {
  const nlohmann::json name = step.params().value("name", nlohmann::json("world"));
  if (!name.is_string()) {
    throw ext::StepError("hello.greet: params.name must be a string", /*retryable=*/false);
  }
  std::vector<std::string> names = {name.get<std::string>()};
  // A single artifact or a fanned-out one: one Input per item either way.
  for (const ext::Input& input : step.inputs("names")) {
    std::istringstream lines(input.data);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) names.push_back(line);
    }
  }

  std::string text;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (step.cancelled()) return;  // the SDK answers "cancelled"
    text += "Hello, " + names[i] + "!\n";
    step.progress(static_cast<double>(i + 1) / static_cast<double>(names.size()),
                  "greeted " + names[i]);
  }
  step.log(ext::Level::info, "greeted " + std::to_string(names.size()) + " name(s)");
  step.output("greeting", text, "text/plain");
  step.summary({{"greeted", names.size()}});
}

}  // namespace

int main() {
  ext::Extension extension("org.symphony.example.hello", "0.1.0");
  extension.capability("hello.greet", greet);
  return extension.run();
}
