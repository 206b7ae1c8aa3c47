// How Symphony names TOML value types in error messages ("expected string,
// got integer"), shared by every parser built on toml++ (the configuration,
// extension manifests, workflow files) so they all say the same thing.
#pragma once

#include <toml++/toml.h>

namespace symphony::config {

// "table", "array", "string", "integer", "float", "boolean" or "date/time".
const char* toml_type_name(const toml::node& node);

}  // namespace symphony::config
