// Workflow files (workflow.toml): the steps a user asks Symphony to run, the
// capability each one needs, how it fans out over a list, what it consumes
// and how it is retried. Parsed strictly, like extension manifests: an
// unknown or malformed field is an error naming the file, line, column and
// field ("wf.toml:14:8: steps[report].inputs.analyses: ..."), because a typo
// in a workflow must fail before anything runs, not halfway through.
// Planning then turns the definition into concrete steps (parameters
// substituted, fan-out expanded, graph checked) for the Conductor and the DAG
// tracker. The format is documented in docs/workflows.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "pit/dag/step_spec.h"
#include "stage/version.h"

namespace symphony::conductor {

// Why an attempt failed, as far as retrying is concerned.
enum class FailureClass {
  crash,     // the extension died (signal or exit) mid-step
  hang,      // it stopped answering heartbeats
  timeout,   // the attempt ran past its timeout
  oom,       // it hit its memory limit
  syscall,   // seccomp stopped a forbidden system call
  protocol,  // it sent something that is not the protocol
  failed,    // it reported an error and marked it retryable
};
inline constexpr FailureClass kAllFailureClasses[] = {
    FailureClass::crash,   FailureClass::hang,     FailureClass::timeout, FailureClass::oom,
    FailureClass::syscall, FailureClass::protocol, FailureClass::failed};

std::string_view to_string(FailureClass c);
// "crash", "hang", ...; nullopt for anything else.
std::optional<FailureClass> parse_failure_class(std::string_view text);

struct RetryPolicy {
  std::uint32_t attempts = 1;  // in all, first one included; 1 = no retry
  std::chrono::milliseconds backoff{200};
  std::chrono::milliseconds max_backoff{10'000};
  double multiplier = 2.0;  // ≥ 1
  double jitter = 0.2;      // in [0, 1]
  // The failures worth another attempt. An extension error not marked
  // retryable is never retried, whatever this says.
  std::vector<FailureClass> on{std::begin(kAllFailureClasses), std::end(kAllFailureClasses)};

  bool retries(FailureClass c) const;
  // How long to wait after attempt `attempt` (1-based; 0 reads as 1) failed,
  // before the next one:
  //   base  = min(max_backoff, backoff × multiplier^(attempt − 1))
  //   delay = base × (1 − jitter × random01)
  // so it lies in [base × (1 − jitter), base] and never exceeds max_backoff.
  // `random01` is a uniform draw from [0, 1] (clamped to it); the caller owns
  // the random source so tests can pin it.
  std::chrono::milliseconds delay(std::uint32_t attempt, double random01) const;
};

// What a step input names: an output of another step of the workflow
// ("steps.STEP.OUTPUT"), or a stored artifact ("artifact:NAME[@VERSION]").
struct InputRef {
  enum class Kind { step_output, artifact };
  Kind kind = Kind::step_output;
  std::string step, output;              // step_output
  std::string artifact;                  // artifact: its name
  std::optional<std::uint64_t> version;  // artifact: absent = the latest
  int line = 0;                          // where it was written
};

struct StepDef {
  std::string id;
  std::string capability;
  std::string extension;  // pinned provider id; empty = any
  std::optional<stage::VersionRange> extension_range;
  nlohmann::json params = nlohmann::json::object();  // as written, ${...} unsubstituted
  std::map<std::string, InputRef> inputs;
  std::vector<std::string> after;  // ordering-only dependencies, step ids
  // An array (its elements may hold ${params.X}) or the string "${params.X}"
  // naming an array parameter. Absent: the step does not fan out.
  std::optional<nlohmann::json> for_each;
  bool allow_empty = false;  // a fan-out over no items is not an error
  std::optional<std::chrono::milliseconds> timeout;  // per attempt
  RetryPolicy retry;
  double cost = 1.0;
  int line = 0;  // of the step's table ("[[steps]]")
};

struct WorkflowDef {
  std::string name, description;
  pit::dag::FailurePolicy failure = pit::dag::FailurePolicy::fail_workflow;
  nlohmann::json params = nlohmann::json::object();  // declared parameters with their defaults
  std::vector<StepDef> steps;                         // in file order
  std::string source;                                 // the file (or name) it was parsed from
};

// Parses workflow text; `source_name` names it in errors. Checks everything
// that does not depend on parameter overrides: syntax, types, ids, names in
// ${...}, references' syntax. The step graph is checked by plan_workflow.
Result<WorkflowDef> parse_workflow(std::string_view text, std::string_view source_name);
// Reads and parses a workflow file; a missing or unreadable file is an error
// with its errno.
Result<WorkflowDef> load_workflow(const std::filesystem::path& path);

struct PlannedInput {
  std::string name;
  InputRef ref;
  // The concrete steps producing it: one, or every item of a fanned-out step
  // in item order (none when that fan-out is empty); empty for artifacts.
  std::vector<std::string> from_steps;
};

struct PlannedStep {
  std::string id;     // "analyze", or "analyze[2]" for item 2 of a fan-out
  std::string group;  // the StepDef id
  std::optional<std::size_t> item_index;
  nlohmann::json item;  // the fan-out item; null when not fanned out
  std::string capability, extension;
  std::optional<stage::VersionRange> extension_range;
  nlohmann::json params;  // substituted
  std::vector<PlannedInput> inputs;  // sorted by name
  std::vector<std::string> depends_on;  // concrete ids: inputs + after, deduplicated, sorted
  std::optional<std::chrono::milliseconds> timeout;
  RetryPolicy retry;
  double cost = 1.0;
  int line = 0;
};

struct Plan {
  std::string name;
  pit::dag::FailurePolicy failure = pit::dag::FailurePolicy::fail_workflow;
  nlohmann::json params;  // the parameters in effect: defaults with overrides applied
  std::vector<PlannedStep> steps;  // topological order (ties: file order, then item order)
};

// Applies `overrides` ("K=V", later ones win: V is read as a TOML value when
// it is one — 3, true, ["a"], "x" — and as plain text otherwise; K must be a
// declared parameter; V must have the default's type, except that an integer
// is accepted for a float and that a string default takes V as text), then
// substitutes ${...}, expands fan-out and checks the graph: unknown steps in
// inputs and after (with a suggestion), a step depending on itself, cycles
// ("cycle: a → b → a"). Whether a step will really have the output an input
// names is for the Conductor, which knows the providers' manifests.
// Errors: "wf.toml:14: step 'report': ..." (the step's or the input's line),
// or "wf.toml: --param K=V: ..." for a bad override.
Result<Plan> plan_workflow(const WorkflowDef& def, const std::vector<std::string>& overrides);

// The DAG tracker's view: one StepSpec per planned step, in plan order, with
// inputs = depends_on, cost and max_attempts = retry.attempts. No failure
// policy override and no memo spec (the Conductor adds one once it has
// picked the provider).
std::vector<pit::dag::StepSpec> dag_specs(const Plan& plan);

}  // namespace symphony::conductor
