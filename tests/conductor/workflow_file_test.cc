// Workflow files: a full workflow parsed field by field, every malformed
// field named by file, line, column and field path, planning (overrides,
// substitution, fan-out, graph errors), retry delays and the DAG tracker's
// view. The example workflows in examples/workflows/ must parse and plan.
#include "conductor/workflow_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <set>

namespace symphony::conductor {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using nlohmann::json;
using std::chrono::milliseconds;
using Strings = std::vector<std::string>;

constexpr const char* kFull = R"toml(name = "analyze-source"
description = "Analyze the tree"
failure = "continue"

[params]
dirs = ["base", "ipc"]
title = "Report"
limit = 10
ratio = 0.5
verbose = false
cfg = { depth = 2 }

[[steps]]
id = "log"
capability = "git.log"
extension = "org.symphony.git@>=0.1, <0.3"
params = { limit = "${params.limit}", header = "${params.title} (${params.limit} commits)" }
timeout = "30s"
retry = { attempts = 3, backoff = "100ms", max_backoff = "2s", multiplier = 3.0, jitter = 0.5, on = ["crash", "timeout"] }
cost = 2.5

[[steps]]
id = "analyze"
capability = "code.analyze"
extension = "org.symphony.code"
for_each = "${params.dirs}"
params = { path = "${item}", n = "${index}", label = "dir ${index}: ${item}", depth = "${params.cfg.depth}", lit = "$${item}" }
timeout = 250
after = ["log"]

[[steps]]
id = "report"
capability = "code.report"
inputs = { analyses = "steps.analyze.analysis", git_log = "steps.log.log", notes = "artifact:notes@3", extra = "artifact:team/extra" }
params = { title = "${params.title}", verbose = "${params.verbose}", ratio = "${params.ratio}", all = "dirs: ${params.dirs}" }
)toml";

// Whole lines of kFull, for cases that replace a value spanning one.
constexpr const char* kLogRetry =
    R"(retry = { attempts = 3, backoff = "100ms", max_backoff = "2s", multiplier = 3.0, jitter = 0.5, on = ["crash", "timeout"] })";
constexpr const char* kReportInputs =
    R"(inputs = { analyses = "steps.analyze.analysis", git_log = "steps.log.log", notes = "artifact:notes@3", extra = "artifact:team/extra" })";
constexpr const char* kReportParams =
    R"(params = { title = "${params.title}", verbose = "${params.verbose}", ratio = "${params.ratio}", all = "dirs: ${params.dirs}" })";

WorkflowDef parse_ok(std::string_view text) {
  auto w = parse_workflow(text, "wf.toml");
  EXPECT_TRUE(w) << w.error().message();
  return w ? std::move(*w) : WorkflowDef{};
}

std::string parse_error(std::string_view text) {
  auto w = parse_workflow(text, "wf.toml");
  EXPECT_FALSE(w) << "parsed: " << text;
  return w ? std::string() : w.error().message();
}

Plan plan_ok(std::string_view text, const Strings& overrides = {}) {
  WorkflowDef def = parse_ok(text);
  auto p = plan_workflow(def, overrides);
  EXPECT_TRUE(p) << p.error().message();
  return p ? std::move(*p) : Plan{};
}

// The planning error of a workflow that parses but must not plan.
std::string plan_error(std::string_view text, const Strings& overrides = {}) {
  auto w = parse_workflow(text, "wf.toml");
  EXPECT_TRUE(w) << w.error().message();
  if (!w) return {};
  auto p = plan_workflow(*w, overrides);
  EXPECT_FALSE(p) << "planned: " << text;
  return p ? std::string() : p.error().message();
}

// kFull with `from` replaced by `to` (exactly once).
std::string full_with(std::string_view from, std::string_view to) {
  std::string text = kFull;
  auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) {
    EXPECT_EQ(text.find(from, at + 1), std::string::npos) << "ambiguous: " << from;
    text.replace(at, from.size(), to);
  }
  return text;
}

const PlannedStep* find_step(const Plan& plan, std::string_view id) {
  for (const auto& s : plan.steps)
    if (s.id == id) return &s;
  return nullptr;
}

TEST(WorkflowFile, FullWorkflowParsedFieldByField) {
  WorkflowDef w = parse_ok(kFull);
  EXPECT_EQ(w.name, "analyze-source");
  EXPECT_EQ(w.description, "Analyze the tree");
  EXPECT_EQ(w.failure, pit::dag::FailurePolicy::continue_independent);
  EXPECT_EQ(w.source, "wf.toml");
  EXPECT_EQ(w.params, json::parse(R"({"dirs": ["base", "ipc"], "title": "Report", "limit": 10,
                                      "ratio": 0.5, "verbose": false, "cfg": {"depth": 2}})"));
  ASSERT_EQ(w.steps.size(), 3u);

  const StepDef& log = w.steps[0];
  EXPECT_EQ(log.id, "log");
  EXPECT_EQ(log.line, 13);
  EXPECT_EQ(log.capability, "git.log");
  EXPECT_EQ(log.extension, "org.symphony.git");
  ASSERT_TRUE(log.extension_range);
  EXPECT_EQ(log.extension_range->text(), ">=0.1, <0.3");
  EXPECT_TRUE(log.extension_range->contains(*stage::parse_version("0.2.9")));
  EXPECT_FALSE(log.extension_range->contains(*stage::parse_version("0.3.0")));
  EXPECT_EQ(log.params, json::parse(R"j({"limit": "${params.limit}",
                                        "header": "${params.title} (${params.limit} commits)"})j"));
  EXPECT_EQ(log.timeout, milliseconds(30'000));
  EXPECT_EQ(log.retry.attempts, 3u);
  EXPECT_EQ(log.retry.backoff, milliseconds(100));
  EXPECT_EQ(log.retry.max_backoff, milliseconds(2000));
  EXPECT_EQ(log.retry.multiplier, 3.0);
  EXPECT_EQ(log.retry.jitter, 0.5);
  EXPECT_EQ(log.retry.on, (std::vector<FailureClass>{FailureClass::crash, FailureClass::timeout}));
  EXPECT_TRUE(log.retry.retries(FailureClass::timeout));
  EXPECT_FALSE(log.retry.retries(FailureClass::oom));
  EXPECT_EQ(log.cost, 2.5);
  EXPECT_FALSE(log.for_each);
  EXPECT_TRUE(log.inputs.empty());
  EXPECT_TRUE(log.after.empty());

  const StepDef& analyze = w.steps[1];
  EXPECT_EQ(analyze.id, "analyze");
  EXPECT_EQ(analyze.line, 22);
  EXPECT_EQ(analyze.extension, "org.symphony.code");
  EXPECT_FALSE(analyze.extension_range);
  EXPECT_EQ(analyze.for_each, json("${params.dirs}"));
  EXPECT_FALSE(analyze.allow_empty);
  EXPECT_EQ(analyze.timeout, milliseconds(250));
  EXPECT_EQ(analyze.after, Strings{"log"});
  EXPECT_EQ(analyze.cost, 1.0);
  // Defaults: one attempt, all failure classes.
  EXPECT_EQ(analyze.retry.attempts, 1u);
  EXPECT_EQ(analyze.retry.backoff, milliseconds(200));
  EXPECT_EQ(analyze.retry.max_backoff, milliseconds(10'000));
  EXPECT_EQ(analyze.retry.on.size(), 7u);

  const StepDef& report = w.steps[2];
  EXPECT_EQ(report.line, 31);
  EXPECT_FALSE(report.timeout);
  ASSERT_EQ(report.inputs.size(), 4u);
  const InputRef& analyses = report.inputs.at("analyses");
  EXPECT_EQ(analyses.kind, InputRef::Kind::step_output);
  EXPECT_EQ(analyses.step, "analyze");
  EXPECT_EQ(analyses.output, "analysis");
  EXPECT_EQ(analyses.line, 34);
  EXPECT_EQ(report.inputs.at("git_log").step, "log");
  EXPECT_EQ(report.inputs.at("git_log").output, "log");
  const InputRef& notes = report.inputs.at("notes");
  EXPECT_EQ(notes.kind, InputRef::Kind::artifact);
  EXPECT_EQ(notes.artifact, "notes");
  EXPECT_EQ(notes.version, 3u);
  EXPECT_EQ(report.inputs.at("extra").artifact, "team/extra");
  EXPECT_FALSE(report.inputs.at("extra").version);
}

TEST(WorkflowFile, MinimalWorkflowAndInlineSteps) {
  WorkflowDef w = parse_ok("name = \"min\"\nsteps = [{id = \"a\", capability = \"x.y\"}]\n");
  EXPECT_EQ(w.failure, pit::dag::FailurePolicy::fail_workflow);
  EXPECT_TRUE(w.params.is_object() && w.params.empty());
  ASSERT_EQ(w.steps.size(), 1u);
  EXPECT_EQ(w.steps[0].line, 2);
  EXPECT_TRUE(w.steps[0].params.is_object() && w.steps[0].params.empty());
  EXPECT_EQ(w.steps[0].extension, "");
}

struct BadCase {
  const char* from;
  const char* to;
  const char* expected;  // the message starts with it
};

TEST(WorkflowFile, MalformedFieldsNameFileLineAndField) {
  const BadCase cases[] = {
      // The workflow itself.
      {"name = \"analyze-source\"", "name = \"Analyze\"", "wf.toml:1:8: name: 'Analyze' is not a workflow name"},
      {"name = \"analyze-source\"", "name = \"analyze-source",
       "wf.toml:1:"},  // TOML syntax: toml++'s message, still file:line:col
      {"name = \"analyze-source\"", "nme = \"x\"",
       "wf.toml:1:1: nme: unknown field (expected one of: name, description, failure, params, steps)"},
      {"description = \"Analyze the tree\"", "description = 3",
       "wf.toml:2:15: description: expected string, got integer"},
      {"failure = \"continue\"", "failure = \"stop\"",
       "wf.toml:3:11: failure: 'stop' is not one of fail_workflow, continue"},
      {"limit = 10", "Limit = 10", "wf.toml:8:9: params.Limit: parameter names are [a-z][a-z0-9_]*"},
      {"limit = 10", "limit = 1979-05-27", "wf.toml:8:9: params.limit: dates and times are not parameter values"},
      // Step ids.
      {"id = \"log\"", "id = \"Log\"", "wf.toml:14:6: steps[0].id: 'Log' is not a step id"},
      {"id = \"log\"", "id = \"log[1]\"", "wf.toml:14:6: steps[0].id: 'log[1]' is not a step id"},
      {"id = \"log\"", "id = 1", "wf.toml:14:6: steps[0].id: expected string, got integer"},
      {"id = \"report\"", "id = \"log\"", "wf.toml:32:6: steps[2].id: duplicate step id 'log' (first at line 13)"},
      {"id = \"report\"", "#", "wf.toml:31:1: steps[2].id: missing required field"},
      {"cost = 2.5", "costs = 2.5",
       "wf.toml:20:1: steps[log].costs: unknown field (expected one of: id, capability, extension, params, "
       "inputs, after, for_each, allow_empty, timeout, retry, cost)"},
      // Capability and extension.
      {"capability = \"git.log\"", "capability = \"git log\"",
       "wf.toml:15:14: steps[log].capability: 'git log' is not dot-separated lowercase identifiers"},
      {"capability = \"code.report\"", "#", "wf.toml:31:1: steps[report].capability: missing required field"},
      {"extension = \"org.symphony.code\"", "extension = \"code\"",
       "wf.toml:25:13: steps[analyze].extension: 'code' is not a reverse-DNS extension id"},
      {"org.symphony.git@>=0.1, <0.3", "org.symphony.git@>=0.1, 0.3",
       "wf.toml:16:13: steps[log].extension: '>=0.1, 0.3' is not a version range: comparator 2 ('0.3') needs "
       "an operator"},
      // Params and substitution.
      {kReportParams, "params = \"x\"", "wf.toml:35:10: steps[report].params: expected table, got string"},
      {"\"${params.title}\", verbose", "\"${params.titel}\", verbose",
       "wf.toml:35:20: steps[report].params.title: unknown parameter 'titel' in '${params.titel}' (did you mean "
       "'title'?)"},
      {"\"${params.title}\", verbose", "\"${item}\", verbose",
       "wf.toml:35:20: steps[report].params.title: '${item}' is only available in a step with for_each"},
      {"\"${params.title}\", verbose", "\"#${index}\", verbose",
       "wf.toml:35:20: steps[report].params.title: '${index}' is only available in a step with for_each"},
      {"lit = \"$${item}\"", "lit = \"x${item\"",
       "wf.toml:27:116: steps[analyze].params.lit: 'x${item': '${' at position 2 is not closed by '}'"},
      {"lit = \"$${item}\"", "lit = \"${foo}\"",
       "wf.toml:27:116: steps[analyze].params.lit: '${foo}' is not a reference (expected ${params.NAME}, "
       "${item}, ${item.KEY} or ${index})"},
      {"lit = \"$${item}\"", "lit = \"${params}\"", "wf.toml:27:116: steps[analyze].params.lit: '${params}' is not a reference"},
      {"lit = \"$${item}\"", "lit = \"${}\"", "wf.toml:27:116: steps[analyze].params.lit: '${}' is not a reference"},
      {"lit = \"$${item}\"", "lit = [1, {a = \"${index.x}\"}]",
       "wf.toml:27:125: steps[analyze].params.lit[1].a: '${index.x}' is not a reference"},
      {"${params.cfg.depth}", "${params.cfg.dpth}",
       "wf.toml:27:87: steps[analyze].params.depth: '${params.cfg.dpth}': params.cfg has no key 'dpth' (did you "
       "mean 'depth'?)"},
      {"${params.cfg.depth}", "${params.title.x}",
       "wf.toml:27:87: steps[analyze].params.depth: '${params.title.x}': params.title is a string, not a table"},
      {"lit = \"$${item}\"", "lit = 1979-05-27",
       "wf.toml:27:116: steps[analyze].params.lit: dates and times are not parameter values"},
      // Fan-out.
      {"for_each = \"${params.dirs}\"", "for_each = 3",
       "wf.toml:26:12: steps[analyze].for_each: expected array or string (\"${params.NAME}\"), got integer"},
      {"for_each = \"${params.dirs}\"", "for_each = \"${params.title}\"",
       "wf.toml:26:12: steps[analyze].for_each: parameter 'title' is a string, not an array"},
      {"for_each = \"${params.dirs}\"", "for_each = \"${params.dir}\"",
       "wf.toml:26:12: steps[analyze].for_each: unknown parameter 'dir' in '${params.dir}' (did you mean 'dirs'?)"},
      {"for_each = \"${params.dirs}\"", "for_each = \"dirs\"",
       "wf.toml:26:12: steps[analyze].for_each: 'dirs' is neither an array nor \"${params.NAME}\""},
      {"for_each = \"${params.dirs}\"", "for_each = \"x ${params.dirs}\"",
       "wf.toml:26:12: steps[analyze].for_each: 'x ${params.dirs}' is neither an array nor"},
      {"for_each = \"${params.dirs}\"", "for_each = [\"a\", \"${item}\"]",
       "wf.toml:26:18: steps[analyze].for_each[1]: '${item}' is only available in a step with for_each"},
      {"cost = 2.5", "cost = 2.5\nallow_empty = true",
       "wf.toml:21:15: steps[log].allow_empty: only means something with for_each"},
      {"after = [\"log\"]", "after = [\"log\"]\nallow_empty = 1",
       "wf.toml:30:15: steps[analyze].allow_empty: expected boolean, got integer"},
      // Timeouts.
      {"timeout = \"30s\"", "timeout = \"30 s\"", "wf.toml:18:11: steps[log].timeout: expected a positive duration"},
      {"timeout = \"30s\"", "timeout = \"-1s\"", "wf.toml:18:11: steps[log].timeout: expected a positive duration"},
      {"timeout = 250", "timeout = 0", "wf.toml:28:11: steps[analyze].timeout: expected a positive duration"},
      {"timeout = 250", "timeout = true",
       "wf.toml:28:11: steps[analyze].timeout: expected integer (milliseconds) or string (\"30s\"), got boolean"},
      // Retry.
      {kLogRetry, "retry = 3", "wf.toml:19:9: steps[log].retry: expected table, got integer"},
      {"attempts = 3", "attempts = 0", "wf.toml:19:22: steps[log].retry.attempts: must be between 1 and 100, got 0"},
      {"attempts = 3", "attempts = 101", "wf.toml:19:22: steps[log].retry.attempts: must be between 1 and 100, got 101"},
      {"attempts = 3", "attempts = \"3\"", "wf.toml:19:22: steps[log].retry.attempts: expected integer, got string"},
      {"attempts = 3", "attempt = 3",
       "wf.toml:19:11: steps[log].retry.attempt: unknown field (expected one of: attempts, backoff, max_backoff, "
       "multiplier, jitter, on)"},
      {"backoff = \"100ms\"", "backoff = \"fast\"",
       "wf.toml:19:35: steps[log].retry.backoff: expected a non-negative duration"},
      {"max_backoff = \"2s\"", "max_backoff = \"50ms\"",
       "wf.toml:19:58: steps[log].retry.max_backoff: 50ms is less than backoff (100ms)"},
      {"multiplier = 3.0", "multiplier = 0.5", "wf.toml:19:77: steps[log].retry.multiplier: must be between 1 and 100, got 0.5"},
      {"multiplier = 3.0", "multiplier = nan", "wf.toml:19:77: steps[log].retry.multiplier: must be a finite number"},
      {"jitter = 0.5", "jitter = 1.5", "wf.toml:19:91: steps[log].retry.jitter: must be between 0 and 1, got 1.5"},
      {"jitter = 0.5", "jitter = \"some\"", "wf.toml:19:91: steps[log].retry.jitter: expected number, got string"},
      {"on = [\"crash\", \"timeout\"]", "on = [\"crash\", \"segv\"]",
       "wf.toml:19:111: steps[log].retry.on[1]: 'segv' is not one of crash, hang, timeout, oom, syscall, "
       "protocol, failed"},
      {"on = [\"crash\", \"timeout\"]", "on = [\"crash\", \"crash\"]",
       "wf.toml:19:111: steps[log].retry.on[1]: 'crash' is listed twice"},
      {"on = [\"crash\", \"timeout\"]", "on = []", "wf.toml:19:101: steps[log].retry.on: names no failure class"},
      {"on = [\"crash\", \"timeout\"]", "on = \"crash\"", "wf.toml:19:101: steps[log].retry.on: expected array, got string"},
      // Cost.
      {"cost = 2.5", "cost = -1", "wf.toml:20:8: steps[log].cost: must be at least 0, got -1"},
      {"cost = 2.5", "cost = \"high\"", "wf.toml:20:8: steps[log].cost: expected number, got string"},
      {"cost = 2.5", "cost = inf", "wf.toml:20:8: steps[log].cost: must be a finite number"},
      // Inputs.
      {"\"steps.analyze.analysis\"", "\"analyze.analysis\"",
       "wf.toml:34:23: steps[report].inputs.analyses: 'analyze.analysis' is not an input reference (expected "
       "\"steps.STEP.OUTPUT\", \"artifact:NAME\" or \"artifact:NAME@VERSION\")"},
      {"\"steps.analyze.analysis\"", "\"steps.analyze\"",
       "wf.toml:34:23: steps[report].inputs.analyses: 'steps.analyze' names no output"},
      {"\"steps.analyze.analysis\"", "\"steps.Analyze.analysis\"",
       "wf.toml:34:23: steps[report].inputs.analyses: 'steps.Analyze.analysis': 'Analyze' is not a step id"},
      {"\"steps.analyze.analysis\"", "\"steps.analyze.a.b\"",
       "wf.toml:34:23: steps[report].inputs.analyses: 'steps.analyze.a.b': 'a.b' is not an output name"},
      {"\"artifact:notes@3\"", "\"artifact:notes@0\"",
       "wf.toml:34:84: steps[report].inputs.notes: 'artifact:notes@0': artifact reference 'notes@0': versions "
       "start at 1"},
      {"\"artifact:notes@3\"", "\"artifact:../notes\"",
       "wf.toml:34:84: steps[report].inputs.notes: 'artifact:../notes': artifact name '../notes': must start "
       "with a letter or digit"},
      {"git_log = ", "GitLog = ", "wf.toml:34:58: steps[report].inputs.GitLog: input names are [a-z][a-z0-9_]*"},
      {"notes = \"artifact:notes@3\"", "title = \"artifact:notes@3\"",
       "wf.toml:34:84: steps[report].inputs.title: 'title' is both a parameter and an input of the step"},
      {"notes = \"artifact:notes@3\"", "notes = 3", "wf.toml:34:84: steps[report].inputs.notes: expected string, got integer"},
      {kReportInputs, "inputs = []", "wf.toml:34:10: steps[report].inputs: expected table, got array"},
      // After.
      {"after = [\"log\"]", "after = [\"Log\"]", "wf.toml:29:10: steps[analyze].after[0]: 'Log' is not a step id"},
      {"after = [\"log\"]", "after = [\"log\", \"log\"]", "wf.toml:29:17: steps[analyze].after[1]: 'log' is listed twice"},
      {"after = [\"log\"]", "after = \"log\"", "wf.toml:29:9: steps[analyze].after: expected array, got string"},
      {"after = [\"log\"]", "after = [1]", "wf.toml:29:10: steps[analyze].after[0]: expected string, got integer"},
  };
  for (const auto& c : cases) {
    std::string message = parse_error(full_with(c.from, c.to));
    EXPECT_EQ(message.rfind(c.expected, 0), 0u)
        << "replacing " << c.from << " by " << c.to << "\n  got: " << message
        << "\n  expected to start with: " << c.expected;
  }
}

TEST(WorkflowFile, StepsMustBeANonEmptyArrayOfTables) {
  EXPECT_EQ(parse_error("name = \"w\"\n"), "wf.toml: steps: missing required field");
  EXPECT_EQ(parse_error("steps = [{id = \"a\", capability = \"x.y\"}]\n"), "wf.toml: name: missing required field");
  EXPECT_EQ(parse_error("name = \"w\"\nsteps = []\n"), "wf.toml:2:9: steps: a workflow needs at least one step");
  EXPECT_EQ(parse_error("name = \"w\"\nsteps = [1]\n"), "wf.toml:2:10: steps[0]: expected table, got integer");
  EXPECT_EQ(parse_error("name = \"w\"\nsteps = 1\n"), "wf.toml:2:9: steps: expected array, got integer");
  EXPECT_EQ(parse_error("name = \"w\"\n[params]\nx = 1\n[[steps]]\nid = \"a\"\ncapability = \"x.y\"\n"
                        "params = { p = \"${params.y}\" }\n"),
            "wf.toml:7:16: steps[a].params.p: unknown parameter 'y' in '${params.y}'");
}

TEST(WorkflowFile, LoadWorkflowReadsFilesAndReportsErrno) {
  auto missing = load_workflow("/nonexistent/wf.toml");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ENOENT);
  EXPECT_THAT(missing.error().message(), HasSubstr("/nonexistent/wf.toml"));
}

TEST(WorkflowPlan, SubstitutesParamsItemsAndIndexes) {
  Plan plan = plan_ok(kFull);
  EXPECT_EQ(plan.name, "analyze-source");
  EXPECT_EQ(plan.failure, pit::dag::FailurePolicy::continue_independent);
  EXPECT_EQ(plan.params["dirs"], json::array({"base", "ipc"}));
  ASSERT_EQ(plan.steps.size(), 4u);
  EXPECT_EQ(plan.steps[0].id, "log");
  EXPECT_EQ(plan.steps[1].id, "analyze[0]");
  EXPECT_EQ(plan.steps[2].id, "analyze[1]");
  EXPECT_EQ(plan.steps[3].id, "report");

  const PlannedStep& log = plan.steps[0];
  EXPECT_EQ(log.group, "log");
  EXPECT_FALSE(log.item_index);
  EXPECT_TRUE(log.item.is_null());
  // A whole-string reference keeps its type; a longer one is text.
  EXPECT_EQ(log.params, json::parse(R"j({"limit": 10, "header": "Report (10 commits)"})j"));
  EXPECT_EQ(log.extension, "org.symphony.git");
  ASSERT_TRUE(log.extension_range);
  EXPECT_EQ(log.extension_range->text(), ">=0.1, <0.3");
  EXPECT_EQ(log.timeout, milliseconds(30'000));
  EXPECT_EQ(log.retry.attempts, 3u);
  EXPECT_EQ(log.cost, 2.5);
  EXPECT_EQ(log.line, 13);
  EXPECT_TRUE(log.depends_on.empty());

  const PlannedStep& second = plan.steps[2];
  EXPECT_EQ(second.group, "analyze");
  EXPECT_EQ(second.item_index, 1u);
  EXPECT_EQ(second.item, json("ipc"));
  EXPECT_EQ(second.capability, "code.analyze");
  EXPECT_EQ(second.params, json::parse(R"({"path": "ipc", "n": 1, "label": "dir 1: ipc", "depth": 2,
                                           "lit": "${item}"})"));
  EXPECT_EQ(second.depends_on, Strings{"log"});  // after = ["log"]
  EXPECT_TRUE(second.inputs.empty());
  EXPECT_EQ(second.timeout, milliseconds(250));
  EXPECT_EQ(plan.steps[1].params["path"], "base");

  const PlannedStep& report = plan.steps[3];
  EXPECT_EQ(report.params, json::parse(R"({"title": "Report", "verbose": false, "ratio": 0.5,
                                           "all": "dirs: [\"base\",\"ipc\"]"})"));
  ASSERT_EQ(report.inputs.size(), 4u);  // sorted by name
  EXPECT_EQ(report.inputs[0].name, "analyses");
  EXPECT_EQ(report.inputs[0].from_steps, (Strings{"analyze[0]", "analyze[1]"}));
  EXPECT_EQ(report.inputs[1].name, "extra");
  EXPECT_EQ(report.inputs[1].ref.kind, InputRef::Kind::artifact);
  EXPECT_TRUE(report.inputs[1].from_steps.empty());
  EXPECT_EQ(report.inputs[2].name, "git_log");
  EXPECT_EQ(report.inputs[2].from_steps, Strings{"log"});
  EXPECT_EQ(report.inputs[3].name, "notes");
  EXPECT_EQ(report.inputs[3].ref.version, 3u);
  EXPECT_EQ(report.depends_on, (Strings{"analyze[0]", "analyze[1]", "log"}));
}

TEST(WorkflowPlan, OverridesTakeTheDefaultsType) {
  Plan plan = plan_ok(kFull, {"dirs=[\"a\", \"b\", \"c\"]", "title=2024", "limit=5", "ratio=1", "verbose=true",
                              "cfg={depth = 7}"});
  EXPECT_EQ(plan.params["dirs"], json::array({"a", "b", "c"}));
  EXPECT_EQ(plan.params["title"], json("2024"));  // a string default takes the text
  EXPECT_EQ(plan.params["limit"], json(5));
  EXPECT_TRUE(plan.params["ratio"].is_number_float());
  EXPECT_EQ(plan.params["ratio"], json(1.0));
  EXPECT_EQ(plan.params["verbose"], json(true));
  ASSERT_EQ(plan.steps.size(), 5u);
  EXPECT_EQ(plan.steps[3].params["path"], "c");
  EXPECT_EQ(plan.steps[3].params["depth"], 7);
  EXPECT_EQ(find_step(plan, "report")->inputs[0].from_steps, (Strings{"analyze[0]", "analyze[1]", "analyze[2]"}));
  EXPECT_EQ(find_step(plan, "log")->params["header"], "2024 (5 commits)");

  EXPECT_EQ(plan_ok(kFull, {"title=\"quoted\""}).params["title"], "quoted");
  EXPECT_EQ(plan_ok(kFull, {"title=hello world"}).params["title"], "hello world");
  EXPECT_EQ(plan_ok(kFull, {"title=a=b"}).params["title"], "a=b");
  EXPECT_EQ(plan_ok(kFull, {"title=", "title=second"}).params["title"], "second");  // later wins
  EXPECT_EQ(plan_ok(kFull, {"title="}).params["title"], "");
  EXPECT_EQ(plan_ok(kFull, {"title=1979-05-27"}).params["title"], "1979-05-27");
}

TEST(WorkflowPlan, ErrorsNameFileLineAndStep) {
  const std::string with_cycle = full_with("cost = 2.5", "cost = 2.5\nafter = [\"report\"]");
  const BadCase cases[] = {
      {"\"steps.analyze.analysis\"", "\"steps.analyse.analysis\"",
       "wf.toml:34: step 'report': input 'analyses' names unknown step 'analyse' (did you mean 'analyze'?)"},
      {"\"steps.analyze.analysis\"", "\"steps.zzz.analysis\"",
       "wf.toml:34: step 'report': input 'analyses' names unknown step 'zzz'"},
      {"\"steps.analyze.analysis\"", "\"steps.report.analysis\"",
       "wf.toml:34: step 'report': input 'analyses' names the step itself"},
      {"after = [\"log\"]", "after = [\"lg\"]",
       "wf.toml:22: step 'analyze': after names unknown step 'lg' (did you mean 'log'?)"},
      {"after = [\"log\"]", "after = [\"analyze\"]", "wf.toml:22: step 'analyze': after names the step itself"},
      {"after = [\"log\"]", "after = [\"report\"]", "wf.toml:22: step 'analyze': cycle: analyze → report → analyze"},
      {"for_each = \"${params.dirs}\"", "for_each = []",
       "wf.toml:22: step 'analyze': for_each: has no items (set allow_empty = true"},
      {"\"${item}\", n", "\"${item.path}\", n",
       "wf.toml:22: step 'analyze[0]': params.path: '${item.path}': item is a string, not a table"},
  };
  for (const auto& c : cases) {
    std::string message = plan_error(full_with(c.from, c.to));
    EXPECT_EQ(message.rfind(c.expected, 0), 0u)
        << "replacing " << c.from << " by " << c.to << "\n  got: " << message
        << "\n  expected to start with: " << c.expected;
  }
  EXPECT_EQ(plan_error(with_cycle), "wf.toml:13: step 'log': cycle: log → report → analyze → log");
  std::string items = full_with("for_each = \"${params.dirs}\"", "for_each = [{ path = \"a\" }, { x = 1 }]");
  items.replace(items.find("\"${item}\", n"), 9, "\"${item.path}\"");
  EXPECT_EQ(plan_error(items), "wf.toml:22: step 'analyze[1]': params.path: '${item.path}': item has no key 'path'");
}

TEST(WorkflowPlan, BadOverridesNameTheOverride) {
  EXPECT_EQ(plan_error(kFull, {"dirz=x"}),
            "wf.toml: --param dirz=x: unknown parameter 'dirz' (did you mean 'dirs'?) (declared: cfg, dirs, limit, "
            "ratio, title, verbose)");
  EXPECT_EQ(plan_error(kFull, {"dirs=3"}),
            "wf.toml: --param dirs=3: expected array (the type of the default, [\"base\",\"ipc\"]), got integer");
  EXPECT_EQ(plan_error(kFull, {"dirs=base"}),
            "wf.toml: --param dirs=base: expected array (the type of the default, [\"base\",\"ipc\"]), got string");
  EXPECT_EQ(plan_error(kFull, {"limit=2.5"}),
            "wf.toml: --param limit=2.5: expected integer (the type of the default, 10), got float");
  EXPECT_EQ(plan_error(kFull, {"verbose=yes"}),
            "wf.toml: --param verbose=yes: expected boolean (the type of the default, false), got string");
  EXPECT_EQ(plan_error(kFull, {"cfg=[1]"}),
            "wf.toml: --param cfg=[1]: expected table (the type of the default, {\"depth\":2}), got array");
  EXPECT_EQ(plan_error(kFull, {"dirs"}), "wf.toml: --param dirs: expected NAME=VALUE");
  EXPECT_EQ(plan_error(kFull, {"=3"}), "wf.toml: --param =3: expected NAME=VALUE");
  EXPECT_EQ(plan_error("name = \"w\"\nsteps = [{id = \"a\", capability = \"x.y\"}]\n", {"a=1"}),
            "wf.toml: --param a=1: the workflow declares no parameters");
  // Overrides that parse but leave a fan-out empty or a reference dangling.
  EXPECT_THAT(plan_error(kFull, {"dirs=[]"}), StartsWith("wf.toml:22: step 'analyze': for_each: has no items"));
  EXPECT_EQ(plan_error(kFull, {"cfg={deep = 1}"}),
            "wf.toml:22: step 'analyze[0]': params.depth: '${params.cfg.depth}': params.cfg has no key 'depth'");
}

TEST(WorkflowPlan, EmptyFanOutAllowedLeavesDependentsWithoutProducers) {
  Plan plan = plan_ok(full_with("for_each = \"${params.dirs}\"", "for_each = \"${params.dirs}\"\nallow_empty = true"),
                      {"dirs=[]"});
  ASSERT_EQ(plan.steps.size(), 2u);
  EXPECT_EQ(plan.steps[0].id, "log");
  const PlannedStep& report = plan.steps[1];
  EXPECT_EQ(report.id, "report");
  EXPECT_TRUE(report.inputs[0].from_steps.empty());
  EXPECT_EQ(report.depends_on, Strings{"log"});
}

TEST(WorkflowPlan, FanOutOverLiteralItemsAndFanOutIntoFanOut) {
  Plan plan = plan_ok(R"(name = "fan"
[params]
base = "src"
[[steps]]
id = "b"
capability = "x.consume"
for_each = [1, 2]
inputs = { parts = "steps.a.part" }
params = { n = "${item}" }
[[steps]]
id = "a"
capability = "x.produce"
for_each = [{ path = "${params.base}/a", depth = 1 }, { path = "lib", depth = 2 }]
params = { where = "${item.path}", depth = "${item.depth}", i = "${index}", all = "${item}" }
)");
  // Topological order although b comes first in the file.
  ASSERT_EQ(plan.steps.size(), 4u);
  EXPECT_EQ(plan.steps[0].id, "a[0]");
  EXPECT_EQ(plan.steps[1].id, "a[1]");
  EXPECT_EQ(plan.steps[2].id, "b[0]");
  EXPECT_EQ(plan.steps[3].id, "b[1]");
  // Items may use ${params.X}; ${item.KEY} reaches into table items.
  EXPECT_EQ(plan.steps[0].item, json::parse(R"({"path": "src/a", "depth": 1})"));
  EXPECT_EQ(plan.steps[0].params,
            json::parse(R"({"where": "src/a", "depth": 1, "i": 0, "all": {"path": "src/a", "depth": 1}})"));
  EXPECT_EQ(plan.steps[1].params["where"], "lib");
  // Each item of b consumes every item of a.
  for (std::size_t i : {2, 3}) {
    EXPECT_EQ(plan.steps[i].inputs[0].from_steps, (Strings{"a[0]", "a[1]"}));
    EXPECT_EQ(plan.steps[i].depends_on, (Strings{"a[0]", "a[1]"}));
  }
  EXPECT_EQ(plan.steps[3].params["n"], 2);
}

TEST(WorkflowPlan, ParamDefaultsAreValuesNotTemplates) {
  Plan plan = plan_ok(R"(name = "t"
[params]
a = "${params.b}"
b = "x"
[[steps]]
id = "s"
capability = "x.y"
params = { v = "${params.a}", w = "<${params.a}>" }
)");
  EXPECT_EQ(plan.steps[0].params, json::parse(R"({"v": "${params.b}", "w": "<${params.b}>"})"));
}

TEST(RetryPolicy, DelayGrowsExponentiallyWithinJitterBounds) {
  RetryPolicy p;
  p.backoff = milliseconds(100);
  p.max_backoff = milliseconds(1000);
  p.multiplier = 2.0;
  p.jitter = 0.2;
  EXPECT_EQ(p.delay(1, 0.0), milliseconds(100));
  EXPECT_EQ(p.delay(1, 1.0), milliseconds(80));
  EXPECT_EQ(p.delay(0, 0.0), milliseconds(100));  // read as the first
  EXPECT_EQ(p.delay(2, 0.0), milliseconds(200));
  EXPECT_EQ(p.delay(3, 0.5), milliseconds(360));
  EXPECT_EQ(p.delay(5, 0.0), milliseconds(1000));  // 1600 capped
  EXPECT_EQ(p.delay(5, 1.0), milliseconds(800));
  EXPECT_EQ(p.delay(100, 0.0), milliseconds(1000));  // 2^99 does not overflow
  EXPECT_EQ(p.delay(1, -3.0), milliseconds(100));     // clamped draws
  EXPECT_EQ(p.delay(1, 7.0), milliseconds(80));
  for (std::uint32_t attempt = 1; attempt <= 8; ++attempt) {
    double base = std::min(1000.0, 100.0 * std::pow(2.0, attempt - 1));
    for (int i = 0; i <= 100; ++i) {
      auto d = p.delay(attempt, i / 100.0);
      EXPECT_GE(d.count(), static_cast<std::int64_t>(std::floor(base * 0.8))) << attempt << " " << i;
      EXPECT_LE(d.count(), static_cast<std::int64_t>(base)) << attempt << " " << i;
      EXPECT_LE(d, p.max_backoff);
    }
  }
  p.jitter = 0;
  EXPECT_EQ(p.delay(3, 0.9), milliseconds(400));
  p.multiplier = 1;
  EXPECT_EQ(p.delay(7, 0.0), milliseconds(100));
}

TEST(RetryPolicy, FailureClassesRoundTripAndDefaultToAll) {
  RetryPolicy p;
  for (auto c : kAllFailureClasses) {
    EXPECT_EQ(parse_failure_class(to_string(c)), c);
    EXPECT_TRUE(p.retries(c)) << to_string(c);
  }
  EXPECT_FALSE(parse_failure_class("segv"));
  EXPECT_EQ(to_string(FailureClass::syscall), "syscall");
}

TEST(WorkflowPlan, DagSpecsCarryIdsDependenciesCostsAndAttempts) {
  auto specs = dag_specs(plan_ok(kFull));
  ASSERT_EQ(specs.size(), 4u);
  EXPECT_EQ(specs[0].id, "log");
  EXPECT_TRUE(specs[0].inputs.empty());
  EXPECT_EQ(specs[0].cost, 2.5);
  EXPECT_EQ(specs[0].max_attempts, 3u);
  EXPECT_EQ(specs[1].id, "analyze[0]");
  EXPECT_EQ(specs[1].inputs, Strings{"log"});
  EXPECT_EQ(specs[1].max_attempts, 1u);
  EXPECT_EQ(specs[3].id, "report");
  EXPECT_EQ(specs[3].inputs, (Strings{"analyze[0]", "analyze[1]", "log"}));
  EXPECT_EQ(specs[3].cost, 1.0);
  for (const auto& s : specs) {
    EXPECT_FALSE(s.failure_policy);
    EXPECT_FALSE(s.memo);
  }
}

TEST(WorkflowExamples, EveryExampleParsesAndPlans) {
  const char* dir = std::getenv("SYMPHONY_EXAMPLES_DIR");
  ASSERT_NE(dir, nullptr) << "SYMPHONY_EXAMPLES_DIR is set by meson";
  std::set<std::string> seen;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".toml") continue;
    auto def = load_workflow(entry.path());
    ASSERT_TRUE(def) << def.error().message();
    auto plan = plan_workflow(*def, {});
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_FALSE(plan->steps.empty()) << entry.path();
    EXPECT_EQ(dag_specs(*plan).size(), plan->steps.size());
    seen.insert(entry.path().filename().string());
  }
  for (const char* name : {"analyze-source.toml", "hello.toml", "fs-search.toml"}) {
    EXPECT_TRUE(seen.count(name)) << name;
  }

  auto analyze = load_workflow(std::filesystem::path(dir) / "analyze-source.toml");
  ASSERT_TRUE(analyze) << analyze.error().message();
  auto plan = plan_workflow(*analyze, {});
  ASSERT_TRUE(plan) << plan.error().message();
  ASSERT_EQ(plan->steps.size(), 11u);  // status, log, 8 analyses, report
  const PlannedStep* report = find_step(*plan, "report");
  ASSERT_NE(report, nullptr);
  EXPECT_EQ(plan->steps.back().id, "report");
  EXPECT_EQ(report->depends_on.size(), 10u);
  EXPECT_GT(find_step(*plan, "analyze[0]")->retry.attempts, 1u);
  EXPECT_EQ(find_step(*plan, "analyze[7]")->params["path"], "cli");
  auto narrowed = plan_workflow(*analyze, {"dirs=[\"base\"]", "title=Only base"});
  ASSERT_TRUE(narrowed) << narrowed.error().message();
  EXPECT_EQ(narrowed->steps.size(), 4u);
  EXPECT_EQ(find_step(*narrowed, "report")->params["title"], "Only base");

  auto hello = load_workflow(std::filesystem::path(dir) / "hello.toml");
  ASSERT_TRUE(hello) << hello.error().message();
  auto hello_plan = plan_workflow(*hello, {"name=Ada"});
  ASSERT_TRUE(hello_plan) << hello_plan.error().message();
  ASSERT_EQ(hello_plan->steps.size(), 1u);
  EXPECT_EQ(hello_plan->steps[0].capability, "hello.greet");
  EXPECT_EQ(hello_plan->steps[0].params, json::parse(R"({"name": "Ada"})"));
}

}  // namespace
}  // namespace symphony::conductor
