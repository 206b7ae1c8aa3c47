// Extension manifests: a full manifest round trip, every field's malformed
// value named by file, line and field path, semver precedence, version
// ranges, and the translation into a sandbox spec.
#include "stage/manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

namespace symphony::stage {
namespace {

using ::testing::HasSubstr;

constexpr const char* kFull = R"(id = "org.symphony.git"
version = "1.2.3-rc.1+build.7"
kind = "operator"
description = "Git for workflows"
symphony = ">=0.1, <0.3"

[entry]
command = ["/usr/bin/python3", "main.py"]

[[capabilities]]
name = "git.diff"
description = "Diff two revisions"
outputs = [{name = "patch", media_type = "text/x-diff"}]
[capabilities.params]
from = {type = "string", required = true, description = "base revision"}
context = {type = "integer", default = 3}
paths = {type = "array", default = ["src"]}
tree = {type = "artifact"}

[[capabilities]]
name = "git.log"

[permissions]
filesystem = [{path = "workspace", access = "ro"},
              {path = "workspace/out/./x/", access = "rw"},
              {path = "/usr/share/dict", access = "ro"}]
network = true
gpu = false
devices = ["/dev/kvm"]

[limits]
cpu = 0.5
memory = "512M"
pids = 64
timeout = "5m"
gpu_memory = 1073741824

[activation]
on = "start"
)";

Manifest parse_ok(std::string_view text) {
  auto m = parse_manifest(text, "ext.toml");
  EXPECT_TRUE(m) << m.error().message();
  return m ? std::move(*m) : Manifest{};
}

// The error message of a manifest that must not parse.
std::string parse_error(std::string_view text) {
  auto m = parse_manifest(text, "ext.toml");
  EXPECT_FALSE(m) << "parsed: " << text;
  return m ? std::string() : m.error().message();
}

// kFull with `from` replaced by `to` (exactly once).
std::string full_with(std::string_view from, std::string_view to) {
  std::string text = kFull;
  auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

constexpr const char* kMinimal = R"(id = "org.example.min"
version = "0.1.0"
kind = "motif"
symphony = "^0.1"
[entry]
command = ["bin/run"]
)";

TEST(Manifest, FullManifestRoundTrip) {
  Manifest m = parse_ok(kFull);
  EXPECT_EQ(m.id, "org.symphony.git");
  EXPECT_EQ(to_string(m.version), "1.2.3-rc.1+build.7");
  EXPECT_EQ(m.kind, Kind::operator_);
  EXPECT_EQ(m.description, "Git for workflows");
  EXPECT_EQ(m.symphony.text(), ">=0.1, <0.3");
  EXPECT_EQ(m.symphony_line, 5);
  EXPECT_EQ(m.command, (std::vector<std::string>{"/usr/bin/python3", "main.py"}));
  ASSERT_EQ(m.capabilities.size(), 2u);
  const Capability* diff = m.find_capability("git.diff");
  ASSERT_NE(diff, nullptr);
  EXPECT_EQ(diff->description, "Diff two revisions");
  ASSERT_EQ(diff->params.size(), 4u);  // sorted by name
  EXPECT_EQ(diff->params[0].name, "context");
  EXPECT_EQ(diff->params[0].type, ParamType::integer);
  EXPECT_EQ(diff->params[0].default_value, nlohmann::json(3));
  EXPECT_EQ(diff->params[1].name, "from");
  EXPECT_TRUE(diff->params[1].required);
  EXPECT_EQ(diff->params[1].description, "base revision");
  EXPECT_EQ(diff->params[2].default_value, nlohmann::json::array({"src"}));
  EXPECT_EQ(diff->params[3].type, ParamType::artifact);
  EXPECT_FALSE(diff->params[3].default_value);
  ASSERT_EQ(diff->outputs.size(), 1u);
  EXPECT_EQ(diff->outputs[0].name, "patch");
  EXPECT_EQ(diff->outputs[0].media_type, "text/x-diff");
  EXPECT_TRUE(m.find_capability("git.log")->params.empty());
  ASSERT_EQ(m.permissions.filesystem.size(), 3u);
  EXPECT_TRUE(m.permissions.filesystem[0].in_workspace);
  EXPECT_EQ(m.permissions.filesystem[0].path, "");
  EXPECT_EQ(m.permissions.filesystem[1].path, "out/x");
  EXPECT_EQ(m.permissions.filesystem[1].access, sandbox::Access::read_write);
  EXPECT_FALSE(m.permissions.filesystem[2].in_workspace);
  EXPECT_EQ(m.permissions.filesystem[2].path, "/usr/share/dict");
  EXPECT_TRUE(m.permissions.network);
  EXPECT_FALSE(m.permissions.gpu);
  EXPECT_EQ(m.permissions.devices, std::vector<std::string>{"/dev/kvm"});
  EXPECT_EQ(m.limits.cpu, 0.5);
  EXPECT_EQ(m.limits.memory, sandbox::Bytes{512u << 20});
  EXPECT_EQ(m.limits.pids, 64u);
  EXPECT_EQ(m.limits.timeout, std::chrono::minutes(5));
  EXPECT_EQ(m.limits.gpu_memory, sandbox::Bytes{1u << 30});
  EXPECT_EQ(m.activation, Activation::at_start);
}

TEST(Manifest, DefaultsOfOptionalFields) {
  Manifest m = parse_ok(kMinimal);
  EXPECT_EQ(m.kind, Kind::motif);
  EXPECT_TRUE(m.capabilities.empty());
  EXPECT_TRUE(m.permissions.filesystem.empty());
  EXPECT_FALSE(m.permissions.network);
  EXPECT_FALSE(m.limits.memory);
  EXPECT_EQ(m.activation, Activation::on_demand);
}

struct BadCase {
  const char* from;
  const char* to;
  const char* expected;  // the message's start: file:line:column: field path: ...
};

TEST(Manifest, MalformedFieldsNameFileLineAndPath) {
  const BadCase cases[] = {
      {"id = \"org.symphony.git\"", "id = \"git\"", "ext.toml:1:6: id: 'git' is not a reverse-DNS id"},
      {"id = \"org.symphony.git\"", "id = \"Org.x\"", "ext.toml:1:6: id: "},
      {"id = \"org.symphony.git\"", "id = \"org.9x\"", "ext.toml:1:6: id: "},
      {"id = \"org.symphony.git\"", "id = 7", "ext.toml:1:6: id: expected string, got integer"},
      {"version = \"1.2.3-rc.1+build.7\"", "version = \"1.2\"",
       "ext.toml:2:11: version: '1.2' is not a semantic version: expected MAJOR.MINOR.PATCH"},
      {"version = \"1.2.3-rc.1+build.7\"", "version = \"01.2.3\"",
       "ext.toml:2:11: version: '01.2.3' is not a semantic version: leading zero in major"},
      {"kind = \"operator\"", "kind = \"plugin\"",
       "ext.toml:3:8: kind: 'plugin' is not one of instrument, operator, motif"},
      {"description = \"Git for workflows\"", "description = true",
       "ext.toml:4:15: description: expected string, got boolean"},
      {"symphony = \">=0.1, <0.3\"", "symphony = \">=0.1, 0.3\"",
       "ext.toml:5:12: symphony: '>=0.1, 0.3' is not a version range: comparator 2 ('0.3') "
       "needs an operator"},
      {"command = [\"/usr/bin/python3\", \"main.py\"]", "command = []",
       "ext.toml:8:11: entry.command: needs a program"},
      {"command = [\"/usr/bin/python3\", \"main.py\"]", "command = [\"/usr/bin/python3\", 1]",
       "ext.toml:8:32: entry.command[1]: expected string, got integer"},
      {"command = [\"/usr/bin/python3\", \"main.py\"]", "cmd = [\"x\"]",
       "ext.toml:8:1: entry.cmd: unknown field (expected one of: command)"},
      {"name = \"git.log\"", "name = \"Git.Log\"",
       "ext.toml:21:8: capabilities[1].name: 'Git.Log' is not dot-separated lowercase"},
      {"name = \"git.log\"", "name = \"git.diff\"",
       "ext.toml:21:8: capabilities[1].name: duplicate capability 'git.diff'"},
      {"name = \"git.log\"", "nme = \"git.log\"",
       "ext.toml:21:1: capabilities[1].nme: unknown field (expected one of: name, description, "
       "params, outputs)"},
      {"name = \"git.log\"", "name = \"git.log\"\nparams.path.type = \"file\"",
       "ext.toml:22:20: capabilities[1].params.path.type: 'file' is not one of string, integer, "
       "number, boolean, array, object, artifact"},
      {"name = \"git.log\"", "name = \"git.log\"\nparams.path = {required = true}",
       "ext.toml:22:15: capabilities[1].params.path.type: missing required field"},
      {"name = \"git.log\"", "name = \"git.log\"\nparams.path = {type = \"string\", requird = true}",
       "ext.toml:22:33: capabilities[1].params.path.requird: unknown field"},
      {"name = \"git.log\"", "name = \"git.log\"\nparams.Path = {type = \"string\"}",
       "ext.toml:22:15: capabilities[1].params.Path: parameter names are"},
      {"context = {type = \"integer\", default = 3}", "context = {type = \"integer\", default = \"3\"}",
       "ext.toml:16:40: capabilities[0].params.context.default: expected integer (the "
       "parameter's type), got string"},
      {"context = {type = \"integer\", default = 3}",
       "context = {type = \"integer\", required = true, default = 3}",
       "ext.toml:16:57: capabilities[0].params.context.default: a required parameter takes no default"},
      {"tree = {type = \"artifact\"}", "tree = {type = \"artifact\", default = \"x\"}",
       "ext.toml:18:38: capabilities[0].params.tree.default: an artifact parameter takes no default"},
      {"context = {type = \"integer\", default = 3}", "context = {type = \"integer\", required = 1}",
       "ext.toml:16:41: capabilities[0].params.context.required: expected boolean, got integer"},
      {"{name = \"patch\", media_type = \"text/x-diff\"}", "{name = \"patch\", media_type = \"diff\"}",
       "ext.toml:13:42: capabilities[0].outputs[0].media_type: 'diff' is not a media type"},
      {"{name = \"patch\", media_type = \"text/x-diff\"}", "{name = \"patch\"}",
       "ext.toml:13:12: capabilities[0].outputs[0].media_type: missing required field"},
      {"{name = \"patch\", media_type = \"text/x-diff\"}", "\"patch\"",
       "ext.toml:13:12: capabilities[0].outputs[0]: expected table, got string"},
      {"{path = \"workspace\", access = \"ro\"}", "{path = \"workspace\", access = \"rx\"}",
       "ext.toml:24:45: permissions.filesystem[0].access: 'rx' is not one of ro, rw"},
      {"{path = \"workspace\", access = \"ro\"}", "{path = \"workspace/../etc\", access = \"ro\"}",
       "ext.toml:24:23: permissions.filesystem[0].path: 'workspace/../etc': '..' is not allowed"},
      {"{path = \"/usr/share/dict\", access = \"ro\"}", "{path = \"/usr/../etc\", access = \"ro\"}",
       "ext.toml:26:23: permissions.filesystem[2].path: '/usr/../etc': '..' is not allowed"},
      {"{path = \"/usr/share/dict\", access = \"ro\"}", "{path = \"src\", access = \"ro\"}",
       "ext.toml:26:23: permissions.filesystem[2].path: 'src' is neither absolute nor under the "
       "workspace"},
      {"{path = \"/usr/share/dict\", access = \"ro\"}", "{path = \"/\", access = \"ro\"}",
       "ext.toml:26:23: permissions.filesystem[2].path: the whole host filesystem"},
      {"network = true", "network = \"yes\"", "ext.toml:27:11: permissions.network: expected boolean, got string"},
      {"gpu = false", "gpu = 0", "ext.toml:28:7: permissions.gpu: expected boolean, got integer"},
      {"devices = [\"/dev/kvm\"]", "devices = [\"/dev/kvm\", \"/etc/passwd\"]",
       "ext.toml:29:24: permissions.devices[1]: '/etc/passwd' is not a normalised path under /dev/"},
      {"network = true", "network = true\nhome = true",
       "ext.toml:28:1: permissions.home: unknown field (expected one of: filesystem, network, gpu, devices)"},
      {"cpu = 0.5", "cpu = 0", "ext.toml:32:7: limits.cpu: must be between 0.01 and 4096 CPUs"},
      {"cpu = 0.5", "cpu = \"half\"", "ext.toml:32:7: limits.cpu: expected number, got string"},
      {"memory = \"512M\"", "memory = \"512Q\"", "ext.toml:33:10: limits.memory: expected a positive size"},
      {"memory = \"512M\"", "memory = -1", "ext.toml:33:10: limits.memory: expected a positive size"},
      {"memory = \"512M\"", "memory = 1.5", "ext.toml:33:10: limits.memory: expected integer (bytes)"},
      {"pids = 64", "pids = 0", "ext.toml:34:8: limits.pids: must be at least 1, got 0"},
      {"timeout = \"5m\"", "timeout = \"5 minutes\"",
       "ext.toml:35:11: limits.timeout: expected a positive duration"},
      {"gpu_memory = 1073741824", "gpu_memory = \"1X\"",
       "ext.toml:36:14: limits.gpu_memory: expected a positive size"},
      {"gpu_memory = 1073741824", "swap = 1",
       "ext.toml:36:1: limits.swap: unknown field (expected one of: cpu, memory, pids, timeout, gpu_memory)"},
      {"on = \"start\"", "on = \"boot\"", "ext.toml:39:6: activation.on: 'boot' is not one of demand, start"},
      {"[activation]", "[activaton]", "ext.toml:38:2: activaton: unknown field (expected one of: id,"},
  };
  for (const auto& c : cases) {
    std::string message = parse_error(full_with(c.from, c.to));
    EXPECT_EQ(message.rfind(c.expected, 0), 0u)
        << "replacing " << c.from << " by " << c.to << "\n  got: " << message
        << "\n  expected to start with: " << c.expected;
  }
}

TEST(Manifest, MissingRequiredFields) {
  for (const char* field : {"id", "version", "kind", "symphony"}) {
    std::string text = kMinimal;
    auto at = text.find(std::string(field) + " = ");
    text.erase(at, text.find('\n', at) - at + 1);
    EXPECT_THAT(parse_error(text), HasSubstr(std::string("ext.toml: ") + field +
                                             ": missing required field"));
  }
  EXPECT_EQ(parse_error("id = \"a.b\"\nversion = \"1.0.0\"\nkind = \"motif\"\nsymphony = \">=0.1\"\n"),
            "ext.toml: entry: missing required field");
  EXPECT_EQ(parse_error("id = \"a.b\"\nversion = \"1.0.0\"\nkind = \"motif\"\nsymphony = \">=0.1\"\n"
                        "[entry]\n"),
            "ext.toml:5:1: entry.command: missing required field");
  EXPECT_EQ(parse_error(std::string(kMinimal).insert(0, "capabilities = 3\n")),
            "ext.toml:1:16: capabilities: expected array, got integer");
  EXPECT_EQ(parse_error(std::string(kMinimal) + "[[capabilities]]\nname = \"a\"\n[[capabilities]]\n"
                                               "name = 7\n"),
            "ext.toml:10:8: capabilities[1].name: expected string, got integer");
  EXPECT_EQ(parse_error(std::string(kMinimal).insert(0, "activation = \"start\"\n")),
            "ext.toml:1:14: activation: expected table, got string");
  EXPECT_THAT(parse_error(std::string(kMinimal) + "[[capabilities]]\ndescription = \"x\"\n"),
              HasSubstr("ext.toml:7:1: capabilities[0].name: missing required field"));
}

TEST(Manifest, TomlSyntaxErrorNamesLineAndColumn) {
  EXPECT_THAT(parse_error("id = \"org.x.y\"\nversion = \n"), HasSubstr("ext.toml:2:"));
}

TEST(Manifest, LoadFileSetsDirectoryAndNamesPathInErrors) {
  char tmpl[] = "/tmp/stage-manifest-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::filesystem::path dir = tmpl;
  {
    std::ofstream(dir / "extension.toml") << kMinimal;
    std::ofstream(dir / "bad.toml") << "\n\n\n\n\n\ncolor = \"red\"\n" << kMinimal;
  }
  auto m = load_manifest(dir / "extension.toml");
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->directory, dir);
  EXPECT_EQ(m->source, (dir / "extension.toml").string());

  auto bad = load_manifest(dir / "bad.toml");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(),
            (dir / "bad.toml").string() + ":7:1: color: unknown field (expected one of: id, "
            "version, kind, description, symphony, entry, capabilities, permissions, limits, activation)");

  auto missing = load_manifest(dir / "nope.toml");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ENOENT);
  EXPECT_THAT(missing.error().message(), HasSubstr((dir / "nope.toml").string()));
  std::filesystem::remove_all(dir);
}

// docs/extensions.md's full example must stay a valid manifest.
TEST(Manifest, DocumentedExampleParses) {
  const char* doc = std::getenv("SYMPHONY_EXTENSIONS_DOC");
  if (doc == nullptr) GTEST_SKIP() << "SYMPHONY_EXTENSIONS_DOC not set (run through meson test)";
  std::ifstream in(doc);
  ASSERT_TRUE(in) << doc;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto begin = text.find("```toml\n");
  ASSERT_NE(begin, std::string::npos);
  begin += 8;
  auto end = text.find("```", begin);
  auto m = parse_manifest(text.substr(begin, end - begin), "docs/extensions.md");
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->id, "org.symphony.git");
  EXPECT_EQ(m->capabilities.size(), 2u);
  EXPECT_TRUE(check_compatible(*m, "0.1.0"));
}

TEST(Manifest, CompatibilityWithSymphonyVersion) {
  Manifest m = parse_ok(kFull);  // ">=0.1, <0.3" on line 5
  EXPECT_TRUE(check_compatible(m, "0.1.0"));
  EXPECT_TRUE(check_compatible(m, "0.2.9"));
  auto r = check_compatible(m, "0.3.0");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "ext.toml:5: symphony: org.symphony.git 1.2.3-rc.1+build.7 works with Symphony "
            ">=0.1, <0.3, not 0.3.0");
  EXPECT_FALSE(check_compatible(m, "0.0.9"));
  EXPECT_FALSE(check_compatible(m, "not-a-version"));
}

TEST(Version, ParsesStrictSemver) {
  auto v = parse_version("1.22.333-alpha.1.x-y+sha.5114f85");
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_EQ(v->major, 1u);
  EXPECT_EQ(v->minor, 22u);
  EXPECT_EQ(v->patch, 333u);
  EXPECT_EQ(v->prerelease, (std::vector<std::string>{"alpha", "1", "x-y"}));
  EXPECT_EQ(v->build, (std::vector<std::string>{"sha", "5114f85"}));
  EXPECT_EQ(to_string(*v), "1.22.333-alpha.1.x-y+sha.5114f85");
  EXPECT_TRUE(parse_version("1.0.0+001"));  // leading zeros are fine in build metadata
  for (const char* bad : {"", "1", "1.2", "1.2.3.4", "v1.2.3", "1.2.x", "01.2.3", "1.02.3",
                          "1.2.03", "1.2.3-", "1.2.3+", "1.2.3-01", "1.2.3-a..b", "1.2.3-a_b",
                          "1.2.3+a..b", "-1.2.3", "1.2.3 ", "99999999999999999999.0.0"}) {
    EXPECT_FALSE(parse_version(bad)) << bad;
  }
  EXPECT_EQ(parse_version("1.02.3").error().message(),
            "'1.02.3' is not a semantic version: leading zero in minor");
}

TEST(Version, PrecedenceFollowsSemver2) {
  // The ordering example of semver 2.0 §11.
  const char* ordered[] = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
                           "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0",
                           "1.0.1", "1.1.0", "1.10.0", "2.0.0"};
  for (std::size_t i = 0; i + 1 < std::size(ordered); ++i) {
    auto a = parse_version(ordered[i]), b = parse_version(ordered[i + 1]);
    ASSERT_TRUE(a && b);
    EXPECT_LT(*a, *b) << ordered[i] << " < " << ordered[i + 1];
    EXPECT_GT(*b, *a);
  }
  EXPECT_EQ(*parse_version("1.0.0+a"), *parse_version("1.0.0+b"));  // build is ignored
  EXPECT_LT(*parse_version("1.0.0-2"), *parse_version("1.0.0-10"));  // numeric, not lexical
  EXPECT_LT(*parse_version("1.0.0-99999999999999999999"), *parse_version("1.0.0-a"));
}

bool in(std::string_view range, std::string_view version) {
  auto r = parse_range(range);
  EXPECT_TRUE(r) << range << ": " << r.error().message();
  auto v = parse_version(version);
  EXPECT_TRUE(v) << version;
  return r && v && r->contains(*v);
}

TEST(VersionRange, Comparators) {
  EXPECT_TRUE(in(">=0.1, <0.3", "0.1.0"));
  EXPECT_TRUE(in(">=0.1, <0.3", "0.2.99"));
  EXPECT_FALSE(in(">=0.1, <0.3", "0.3.0"));
  EXPECT_FALSE(in(">=0.1, <0.3", "0.3.0-alpha"));  // an upper bound excludes its prereleases
  EXPECT_FALSE(in(">=0.1, <0.3", "0.1.0-rc.1"));
  EXPECT_TRUE(in(">= 0.1.0 ,<0.2.0", "0.1.5"));
  EXPECT_TRUE(in(">1.2.3", "1.2.4"));
  EXPECT_FALSE(in(">1.2.3", "1.2.3"));
  EXPECT_FALSE(in(">1.2", "1.2.9"));
  EXPECT_TRUE(in(">1.2", "1.3.0"));
  EXPECT_TRUE(in("<=1.2", "1.2.9"));
  EXPECT_FALSE(in("<=1.2", "1.3.0"));
  EXPECT_TRUE(in("<=1.2.3", "1.2.3"));
  EXPECT_TRUE(in("=1.2.3", "1.2.3+build"));
  EXPECT_FALSE(in("=1.2.3", "1.2.4"));
  EXPECT_TRUE(in("=1.2", "1.2.7"));
  EXPECT_FALSE(in("=1", "2.0.0"));
  EXPECT_TRUE(in("^1.2.3", "1.9.0"));
  EXPECT_FALSE(in("^1.2.3", "2.0.0"));
  EXPECT_FALSE(in("^1.2.3", "1.2.2"));
  EXPECT_TRUE(in("^0.2.3", "0.2.9"));
  EXPECT_FALSE(in("^0.2.3", "0.3.0"));
  EXPECT_TRUE(in("^0.0.3", "0.0.3"));
  EXPECT_FALSE(in("^0.0.3", "0.0.4"));
  EXPECT_TRUE(in("^0.1", "0.1.9"));
  EXPECT_FALSE(in("^0.1", "0.2.0"));
  EXPECT_TRUE(in("^0", "0.9.0"));
  EXPECT_TRUE(in("~1.2.3", "1.2.9"));
  EXPECT_FALSE(in("~1.2.3", "1.3.0"));
  EXPECT_TRUE(in("~1", "1.9.0"));
  EXPECT_FALSE(in("~1", "2.0.0"));
  EXPECT_FALSE(in(">=1.0.0-beta, <1.0.0", "1.0.0-rc.1"));  // < excludes 1.0.0's prereleases
  EXPECT_TRUE(in(">=1.0.0-beta, <=1.0.0", "1.0.0-rc.1"));
  EXPECT_FALSE(in(">=1.0.0-beta, <=1.0.0", "1.0.0-alpha"));
  EXPECT_TRUE(in("<1.0.0-rc.1", "1.0.0-beta"));  // a prerelease bound is compared as written
}

TEST(VersionRange, RejectsMalformedRanges) {
  for (const char* bad : {"", " ", "0.1", ">=", ">=0.1,", ">=x.1", ">=1.2.3.4", "=>1.0",
                          ">=0.1-rc", ">=1.0.0-01", "!=1.0.0"}) {
    EXPECT_FALSE(parse_range(bad)) << bad;
  }
  EXPECT_EQ(parse_range(">=0.1, 0.3").error().message(),
            "'>=0.1, 0.3' is not a version range: comparator 2 ('0.3') needs an operator "
            "(>=, >, <=, <, =, ^, ~)");
}

TEST(SandboxSpec, TranslatesPermissionsAndLimits) {
  Manifest m = parse_ok(kFull);
  m.directory = "/opt/symphony/ext/org.symphony.git";
  auto spec = sandbox_spec(m, "/home/u/project/");
  ASSERT_TRUE(spec) << spec.error().message();
  EXPECT_EQ(spec->argv, (std::vector<std::string>{"/usr/bin/python3", "main.py"}));
  EXPECT_EQ(spec->cwd, "/opt/symphony/ext/org.symphony.git");
  EXPECT_EQ(spec->name, "org.symphony.git");
  const auto& b = spec->permissions.binds;
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(b[0].path, "/opt/symphony/ext/org.symphony.git");
  EXPECT_EQ(b[0].access, sandbox::Access::read_only);
  EXPECT_EQ(b[1].path, "/home/u/project");
  EXPECT_EQ(b[1].access, sandbox::Access::read_only);
  EXPECT_EQ(b[2].path, "/home/u/project/out/x");
  EXPECT_EQ(b[2].access, sandbox::Access::read_write);
  EXPECT_EQ(b[3].path, "/usr/share/dict");
  EXPECT_TRUE(spec->permissions.network);
  EXPECT_FALSE(spec->permissions.gpu);
  EXPECT_EQ(spec->permissions.devices, std::vector<std::string>{"/dev/kvm"});
  EXPECT_EQ(spec->limits.cpu, 0.5);
  EXPECT_EQ(spec->limits.memory, sandbox::Bytes{512u << 20});
  EXPECT_EQ(spec->limits.pids, 64u);
  EXPECT_EQ(spec->limits.timeout, std::chrono::milliseconds(300'000));
  EXPECT_EQ(spec->limits.gpu_memory, sandbox::Bytes{1u << 30});
  EXPECT_TRUE(sandbox::validate(*spec));
}

TEST(SandboxSpec, ResolvesRelativeProgramAgainstDirectory) {
  Manifest m = parse_ok(kMinimal);  // command = ["bin/run"], no permissions
  m.directory = "/opt/ext";
  auto spec = sandbox_spec(m, "/w");
  ASSERT_TRUE(spec) << spec.error().message();
  EXPECT_EQ(spec->argv, std::vector<std::string>{"/opt/ext/bin/run"});
  ASSERT_EQ(spec->permissions.binds.size(), 1u);  // only the extension itself
  EXPECT_FALSE(spec->permissions.network);
  EXPECT_FALSE(spec->limits.memory);
}

TEST(SandboxSpec, NeedsAbsoluteDirectoryAndWorkspace) {
  Manifest m = parse_ok(kMinimal);
  EXPECT_THAT(sandbox_spec(m, "/w").error().message(), HasSubstr("no absolute directory"));
  m.directory = "/opt/ext";
  EXPECT_THAT(sandbox_spec(m, "rel/w").error().message(),
              HasSubstr("workspace 'rel/w' must be an absolute path"));
}

}  // namespace
}  // namespace symphony::stage
