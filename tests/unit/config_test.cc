// Unit tests of the TOML configuration (base/config.h): schema lookup,
// validation errors that name file, line and key, all-or-nothing merges,
// drop-in ordering, command-line overrides and the rendered defaults file.
#include "base/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <sstream>
#include <string>

namespace symphony::config {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A small schema with one key of every type and constraint.
Schema make_schema() {
  Schema s;
  s.add({.key = "ipc.socket",
         .type = Type::string,
         .default_value = std::string("/run/symphony/symphonyd.sock"),
         .doc = "Where the daemon listens."});
  s.add({.key = "ipc.max_message_size",
         .type = Type::integer,
         .default_value = std::int64_t{16 * 1024 * 1024},
         .min = 1024,
         .max = 256 * 1024 * 1024,
         .doc = "Largest accepted message in bytes."});
  s.add({.key = "ipc.loop_backend",
         .type = Type::string,
         .default_value = std::string("auto"),
         .choices = {"auto", "io_uring", "epoll"},
         .doc = "Event loop backend."});
  s.add({.key = "log.journal",
         .type = Type::boolean,
         .default_value = true,
         .doc = "Log to the journal when it is available."});
  s.add({.key = "access.allow_users",
         .type = Type::string_list,
         .default_value = StringList{},
         .doc = "Users allowed to connect."});
  s.add({.key = "access.allow_groups",
         .type = Type::string_list,
         .default_value = StringList{"symphony"},
         .doc = "Groups allowed to connect."});
  return s;
}

class ConfigTest : public ::testing::Test {
 protected:
  Schema schema_ = make_schema();
  Config config_{schema_};
};

// A temporary directory removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "symphony-config-XXXXXX").string();
    char* made = ::mkdtemp(tmpl.data());
    if (made == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const fs::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

TEST(Schema, FindsDeclaredKeysOnly) {
  Schema s = make_schema();
  const KeySpec* spec = s.find("ipc.max_message_size");
  ASSERT_NE(spec, nullptr);
  EXPECT_EQ(spec->type, Type::integer);
  EXPECT_EQ(spec->min, 1024);
  EXPECT_EQ(s.find("ipc"), nullptr);
  EXPECT_EQ(s.find("ipc.max_message"), nullptr);
  EXPECT_EQ(s.keys().size(), 6u);
  EXPECT_EQ(type_name(Type::string_list), "array of strings");
}

TEST_F(ConfigTest, StartsAtTheDefaults) {
  EXPECT_EQ(config_.get_string("ipc.socket"), "/run/symphony/symphonyd.sock");
  EXPECT_EQ(config_.get_int("ipc.max_message_size"), 16 * 1024 * 1024);
  EXPECT_TRUE(config_.get_bool("log.journal"));
  EXPECT_THAT(config_.get_list("access.allow_groups"), ElementsAre("symphony"));
  EXPECT_EQ(config_.origin("ipc.socket").source, "default");
  EXPECT_EQ(config_.origin("ipc.socket").line, 0);
}

TEST_F(ConfigTest, MergeTextAppliesValuesAndRecordsTheirOrigin) {
  auto r = config_.merge_text(
      "[ipc]\n"
      "socket = \"/tmp/s.sock\"\n"
      "max_message_size = 4096\n"
      "\n"
      "[access]\n"
      "allow_users = [\"alice\", \"bob\"]\n",
      "main.toml");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(config_.get_string("ipc.socket"), "/tmp/s.sock");
  EXPECT_EQ(config_.get_int("ipc.max_message_size"), 4096);
  EXPECT_THAT(config_.get_list("access.allow_users"), ElementsAre("alice", "bob"));
  EXPECT_EQ(config_.origin("ipc.max_message_size").source, "main.toml");
  EXPECT_EQ(config_.origin("ipc.max_message_size").line, 3);
  EXPECT_EQ(config_.origin("access.allow_users").line, 6);
  // Keys the text does not mention keep their defaults.
  EXPECT_EQ(config_.get_string("ipc.loop_backend"), "auto");
}

TEST_F(ConfigTest, DottedKeysWorkLikeTables) {
  auto r = config_.merge_text("ipc.loop_backend = \"epoll\"\n", "inline");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(config_.get_string("ipc.loop_backend"), "epoll");
}

TEST_F(ConfigTest, UnknownKeyNamesFileLineAndKey) {
  auto r = config_.merge_text("[ipc]\nsocket = \"/a\"\nsokcet = \"/b\"\n", "/etc/symphony/d.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EINVAL);
  EXPECT_EQ(r.error().message(), "/etc/symphony/d.toml:3: unknown key 'ipc.sokcet'");
}

TEST_F(ConfigTest, UnknownTableIsAnUnknownKey) {
  auto r = config_.merge_text("\n[pits]\nmax = 3\n", "main.toml");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("unknown key 'pits'"));
  EXPECT_THAT(r.error().message(), HasSubstr("main.toml:"));
}

TEST_F(ConfigTest, ScalarWhereATableIsExpectedIsAnUnknownKey) {
  auto r = config_.merge_text("ipc = 5\n", "main.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "main.toml:1: unknown key 'ipc'");
}

TEST_F(ConfigTest, WrongTypeNamesExpectedAndActualType) {
  auto r = config_.merge_text("[ipc]\n\nmax_message_size = \"big\"\n", "main.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "main.toml:3: ipc.max_message_size: expected integer, got string");
}

TEST_F(ConfigTest, WrongTypeForBooleanAndList) {
  auto b = config_.merge_text("log.journal = 1\n", "a.toml");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().message(), "a.toml:1: log.journal: expected boolean, got integer");
  auto l = config_.merge_text("access.allow_users = \"alice\"\n", "b.toml");
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().message(),
            "b.toml:1: access.allow_users: expected array of strings, got string");
}

TEST_F(ConfigTest, IntegerOutOfRangeNamesTheBounds) {
  auto r = config_.merge_text("[ipc]\nmax_message_size = 10\n", "main.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "main.toml:2: ipc.max_message_size: value 10 out of range 1024..268435456");
}

TEST_F(ConfigTest, IntegerBoundsAreInclusive) {
  ASSERT_TRUE(config_.merge_text("ipc.max_message_size = 1024\n", "lo"));
  EXPECT_EQ(config_.get_int("ipc.max_message_size"), 1024);
  ASSERT_TRUE(config_.merge_text("ipc.max_message_size = 268435456\n", "hi"));
  EXPECT_EQ(config_.get_int("ipc.max_message_size"), 268435456);
  EXPECT_FALSE(config_.merge_text("ipc.max_message_size = 268435457\n", "over"));
}

TEST_F(ConfigTest, StringNotInChoicesListsTheChoices) {
  auto r = config_.merge_text("[ipc]\nloop_backend = \"kqueue\"\n", "main.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "main.toml:2: ipc.loop_backend: 'kqueue' is not one of auto, io_uring, epoll");
}

TEST_F(ConfigTest, ArrayElementOfWrongTypeNamesTheIndex) {
  auto r = config_.merge_text("[access]\nallow_users = [\"alice\", 1000, \"bob\"]\n", "main.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "main.toml:2: access.allow_users[1]: expected string, got integer");
}

TEST_F(ConfigTest, BadTextChangesNothing) {
  ASSERT_TRUE(config_.merge_text("[ipc]\nloop_backend = \"io_uring\"\n", "first.toml"));
  // `loop_backend` sorts before `socket` and is valid; `socket` then fails.
  // Neither may be applied.
  auto r = config_.merge_text(
      "[ipc]\n"
      "loop_backend = \"epoll\"\n"
      "socket = 42\n",
      "second.toml");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("second.toml:3: ipc.socket"));
  EXPECT_EQ(config_.get_string("ipc.loop_backend"), "io_uring");
  EXPECT_EQ(config_.origin("ipc.loop_backend").source, "first.toml");
  EXPECT_EQ(config_.get_string("ipc.socket"), "/run/symphony/symphonyd.sock");
}

TEST_F(ConfigTest, TomlSyntaxErrorNamesSourceAndLine) {
  auto r = config_.merge_text("[ipc]\nsocket = \"/tmp/s.sock\"\nmax_message_size = = 3\n",
                              "broken.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EINVAL);
  EXPECT_THAT(r.error().message(), ::testing::StartsWith("broken.toml:3:"));
  EXPECT_EQ(config_.get_string("ipc.socket"), "/run/symphony/symphonyd.sock");
}

TEST_F(ConfigTest, MergeFileOfAMissingFileIsEnoent) {
  TempDir dir;
  auto r = config_.merge_file(dir.path() / "absent.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ENOENT);
  EXPECT_THAT(r.error().message(), HasSubstr("absent.toml"));
  EXPECT_TRUE(config_.files().empty());
}

TEST_F(ConfigTest, MergeFileReportsThePathInErrors) {
  TempDir dir;
  fs::path file = dir.path() / "symphonyd.toml";
  write_file(file, "# comment\n[ipc]\nbogus = 1\n");
  auto r = config_.merge_file(file);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), file.string() + ":3: unknown key 'ipc.bogus'");
  EXPECT_TRUE(config_.files().empty());
}

TEST(FilesWithDropins, MainFirstThenTomlDropinsSortedByName) {
  TempDir dir;
  fs::path main = dir.path() / "symphonyd.toml";
  fs::path dropins = dir.path() / "symphonyd.toml.d";
  write_file(main, "");
  fs::create_directory(dropins);
  write_file(dropins / "50-site.toml", "");
  write_file(dropins / "10-vendor.toml", "");
  write_file(dropins / "90-local.toml", "");
  write_file(dropins / "README", "");          // not .toml: left out
  write_file(dropins / "20-old.toml.bak", "");  // not .toml: left out
  fs::create_directory(dropins / "30-dir.toml");  // not a regular file: left out

  EXPECT_THAT(files_with_dropins(main),
              ElementsAre(main, dropins / "10-vendor.toml", dropins / "50-site.toml",
                          dropins / "90-local.toml"));
}

TEST(FilesWithDropins, MissingMainAndMissingDirectoryAreSkipped) {
  TempDir dir;
  fs::path main = dir.path() / "symphonyd.toml";
  EXPECT_TRUE(files_with_dropins(main).empty());

  fs::create_directory(dir.path() / "symphonyd.toml.d");
  write_file(dir.path() / "symphonyd.toml.d" / "10-a.toml", "");
  EXPECT_THAT(files_with_dropins(main), ElementsAre(dir.path() / "symphonyd.toml.d" / "10-a.toml"));

  fs::path other = dir.path() / "other.toml";
  write_file(other, "");
  EXPECT_THAT(files_with_dropins(other), ElementsAre(other));
}

TEST_F(ConfigTest, LaterDropinsOverrideEarlierOnes) {
  TempDir dir;
  fs::path main = dir.path() / "symphonyd.toml";
  fs::path d = dir.path() / "symphonyd.toml.d";
  fs::create_directory(d);
  write_file(main, "[ipc]\nloop_backend = \"epoll\"\nsocket = \"/main.sock\"\n");
  write_file(d / "20-late.toml", "[ipc]\n\nloop_backend = \"auto\"\n");
  write_file(d / "10-early.toml", "[ipc]\nloop_backend = \"io_uring\"\nmax_message_size = 2048\n");

  for (const auto& file : files_with_dropins(main)) {
    auto r = config_.merge_file(file);
    ASSERT_TRUE(r) << r.error().message();
  }
  EXPECT_EQ(config_.get_string("ipc.loop_backend"), "auto");
  EXPECT_EQ(config_.origin("ipc.loop_backend").source, (d / "20-late.toml").string());
  EXPECT_EQ(config_.origin("ipc.loop_backend").line, 3);
  EXPECT_EQ(config_.get_int("ipc.max_message_size"), 2048);
  EXPECT_EQ(config_.get_string("ipc.socket"), "/main.sock");
  EXPECT_THAT(config_.files(), ElementsAre(main, d / "10-early.toml", d / "20-late.toml"));
}

TEST_F(ConfigTest, SetParsesBooleans) {
  for (const char* yes : {"true", "yes", "1"}) {
    ASSERT_TRUE(config_.set("log.journal", "false", "command line"));
    ASSERT_TRUE(config_.set("log.journal", yes, "command line")) << yes;
    EXPECT_TRUE(config_.get_bool("log.journal")) << yes;
  }
  for (const char* no : {"false", "no", "0"}) {
    ASSERT_TRUE(config_.set("log.journal", "true", "command line"));
    ASSERT_TRUE(config_.set("log.journal", no, "command line")) << no;
    EXPECT_FALSE(config_.get_bool("log.journal")) << no;
  }
  auto r = config_.set("log.journal", "maybe", "--set");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "--set: log.journal: expected boolean, got 'maybe'");
}

TEST_F(ConfigTest, SetParsesIntegersWithRangeCheck) {
  ASSERT_TRUE(config_.set("ipc.max_message_size", "65536", "command line"));
  EXPECT_EQ(config_.get_int("ipc.max_message_size"), 65536);
  EXPECT_EQ(config_.origin("ipc.max_message_size").source, "command line");
  EXPECT_EQ(config_.origin("ipc.max_message_size").line, 0);

  // TOML's prefixes are understood, as in a file.
  for (const char* prefixed : {"0x1000", "0o10000", "0b1000000000000"}) {
    ASSERT_TRUE(config_.set("ipc.max_message_size", "1024", "reset"));
    ASSERT_TRUE(config_.set("ipc.max_message_size", prefixed, "command line")) << prefixed;
    EXPECT_EQ(config_.get_int("ipc.max_message_size"), 4096) << prefixed;
  }
  ASSERT_TRUE(config_.set("ipc.max_message_size", "65536", "command line"));

  for (const char* bad : {"12k", "", " 12", "1e6", "0x", "0o8", "0b2", "4096 "}) {
    auto r = config_.set("ipc.max_message_size", bad, "--set");
    ASSERT_FALSE(r) << "'" << bad << "'";
    EXPECT_THAT(r.error().message(), HasSubstr("expected integer")) << bad;
  }
  auto low = config_.set("ipc.max_message_size", "-5", "--set");
  ASSERT_FALSE(low);
  EXPECT_THAT(low.error().message(), HasSubstr("value -5 out of range 1024..268435456"));
  EXPECT_EQ(config_.get_int("ipc.max_message_size"), 65536);
}

TEST_F(ConfigTest, SetParsesStringsAgainstChoices) {
  ASSERT_TRUE(config_.set("ipc.loop_backend", "epoll", "env"));
  EXPECT_EQ(config_.get_string("ipc.loop_backend"), "epoll");
  auto r = config_.set("ipc.loop_backend", "EPOLL", "env");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "env: ipc.loop_backend: 'EPOLL' is not one of auto, io_uring, epoll");
  EXPECT_EQ(config_.get_string("ipc.loop_backend"), "epoll");
  ASSERT_TRUE(config_.set("ipc.socket", "/run/other.sock", "env"));
  EXPECT_EQ(config_.get_string("ipc.socket"), "/run/other.sock");
}

TEST_F(ConfigTest, SetSplitsListsOnCommas) {
  ASSERT_TRUE(config_.set("access.allow_users", "alice,bob,1001", "--set"));
  EXPECT_THAT(config_.get_list("access.allow_users"), ElementsAre("alice", "bob", "1001"));
  ASSERT_TRUE(config_.set("access.allow_users", "carol", "--set"));
  EXPECT_THAT(config_.get_list("access.allow_users"), ElementsAre("carol"));
  ASSERT_TRUE(config_.set("access.allow_groups", "", "--set"));
  EXPECT_TRUE(config_.get_list("access.allow_groups").empty());
}

TEST_F(ConfigTest, SetOfAnUnknownKeyFails) {
  auto r = config_.set("ipc.sokcet", "/x", "--set");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "--set: unknown key 'ipc.sokcet'");
}

TEST(ConfigDeathTest, GettingAKeyOutsideTheSchemaAborts) {
  Schema schema = make_schema();
  Config config(schema);
  EXPECT_DEATH((void)config.get_int("ipc.nope"), "config key 'ipc.nope' is not in the schema");
}

// Uncomments the "#key = value" lines of a rendered defaults file, leaving the
// "# documentation" lines (hash and space) alone.
std::string uncomment_values(const std::string& rendered) {
  std::istringstream in(rendered);
  std::string out, line;
  while (std::getline(in, line)) {
    if (line.size() > 1 && line[0] == '#' && line[1] != ' ') line.erase(0, 1);
    out += line + "\n";
  }
  return out;
}

TEST(RenderDefaults, DocumentsEveryKeyWithItsConstraints) {
  std::string text = make_schema().render_defaults();
  EXPECT_THAT(text, HasSubstr("[ipc]\n# Where the daemon listens.\n"
                              "#socket = '/run/symphony/symphonyd.sock'\n"));
  EXPECT_THAT(text, HasSubstr("# Range: 1024 .. 268435456\n#max_message_size = 16777216\n"));
  EXPECT_THAT(text, HasSubstr("# One of: auto, io_uring, epoll\n#loop_backend = 'auto'\n"));
  EXPECT_THAT(text, HasSubstr("[access]\n"));
  EXPECT_THAT(text, HasSubstr("#allow_users = []\n"));
  EXPECT_THAT(text, HasSubstr("#allow_groups = ['symphony']\n"));
}

TEST(RenderDefaults, ParsesBackAsIsAndChangesNothing) {
  Schema schema = make_schema();
  Config config(schema);
  auto r = config.merge_text(schema.render_defaults(), "defaults.toml");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(config.origin("ipc.socket").source, "default");
}

TEST(RenderDefaults, UncommentedParsesBackToTheDefaults) {
  Schema schema = make_schema();
  Config config(schema);
  // Move every key away from its default first, so the merge has to restore them.
  ASSERT_TRUE(config.set("ipc.socket", "/elsewhere.sock", "test"));
  ASSERT_TRUE(config.set("ipc.max_message_size", "2048", "test"));
  ASSERT_TRUE(config.set("ipc.loop_backend", "epoll", "test"));
  ASSERT_TRUE(config.set("log.journal", "false", "test"));
  ASSERT_TRUE(config.set("access.allow_users", "alice", "test"));
  ASSERT_TRUE(config.set("access.allow_groups", "", "test"));

  auto r = config.merge_text(uncomment_values(schema.render_defaults()), "defaults.toml");
  ASSERT_TRUE(r) << r.error().message();

  for (const auto& spec : schema.keys()) {
    EXPECT_EQ(config.origin(spec.key).source, "defaults.toml") << spec.key;
    switch (spec.type) {
      case Type::boolean:
        EXPECT_EQ(config.get_bool(spec.key), std::get<bool>(spec.default_value)) << spec.key;
        break;
      case Type::integer:
        EXPECT_EQ(config.get_int(spec.key), std::get<std::int64_t>(spec.default_value)) << spec.key;
        break;
      case Type::string:
        EXPECT_EQ(config.get_string(spec.key), std::get<std::string>(spec.default_value)) << spec.key;
        break;
      case Type::string_list:
        EXPECT_EQ(config.get_list(spec.key), std::get<StringList>(spec.default_value)) << spec.key;
        break;
    }
  }
}

TEST(RenderDefaults, GroupsKeysByTableWithTopLevelKeysFirst) {
  // Declared out of table order, with a top-level key after a table.
  Schema schema;
  schema.add({.key = "ipc.socket", .type = Type::string, .default_value = std::string("/s"),
              .doc = "Socket."});
  schema.add({.key = "verbose", .type = Type::boolean, .default_value = false, .doc = "Verbose."});
  schema.add({.key = "log.level", .type = Type::string, .default_value = std::string("info"),
              .doc = "Level."});
  schema.add({.key = "ipc.backlog", .type = Type::integer, .default_value = std::int64_t{512},
              .doc = "Backlog."});
  std::string text = schema.render_defaults();
  EXPECT_EQ(text,
            "# Verbose.\n#verbose = false\n"
            "\n[ipc]\n# Socket.\n#socket = '/s'\n# Backlog.\n#backlog = 512\n"
            "\n[log]\n# Level.\n#level = 'info'\n");

  Config config(schema);
  ASSERT_TRUE(config.set("verbose", "true", "test"));
  ASSERT_TRUE(config.set("ipc.backlog", "1", "test"));
  auto r = config.merge_text(uncomment_values(text), "defaults.toml");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(config.get_bool("verbose"));
  EXPECT_EQ(config.get_int("ipc.backlog"), 512);
}

TEST(RenderDefaults, OctalKeysRenderInOctalAndParseBack) {
  Schema schema;
  schema.add({.key = "ipc.socket_mode",
              .type = Type::integer,
              .default_value = std::int64_t{0660},
              .min = 0,
              .max = 0777,
              .doc = "Permission bits of the socket file.",
              .octal = true});
  std::string text = schema.render_defaults();
  EXPECT_THAT(text, HasSubstr("#socket_mode = 0o660\n"));
  Config config(schema);
  ASSERT_TRUE(config.set("ipc.socket_mode", "0o600", "test"));
  EXPECT_EQ(config.get_int("ipc.socket_mode"), 0600);
  auto r = config.merge_text(uncomment_values(text), "defaults.toml");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(config.get_int("ipc.socket_mode"), 0660);
}

TEST(RenderDefaults, StringsWithQuotesAndBackslashesSurviveTheRoundTrip) {
  Schema schema;
  schema.add({.key = "cli.prompt",
              .type = Type::string,
              .default_value = std::string("it's \"quoted\" \\ and\ttabbed"),
              .doc = "Prompt."});
  Config config(schema);
  ASSERT_TRUE(config.set("cli.prompt", "x", "test"));
  auto r = config.merge_text(uncomment_values(schema.render_defaults()), "defaults.toml");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(config.get_string("cli.prompt"), "it's \"quoted\" \\ and\ttabbed");
}


// --- wildcard keys: one table per instance ("pit.retention.<kind>") ---

Schema make_wildcard_schema() {
  Schema s = make_schema();
  s.add({.key = "pit.retention.*.active_days",
         .type = Type::integer,
         .default_value = std::int64_t{30},
         .min = 0,
         .max = 36500,
         .doc = "Days a version stays active."});
  s.add({.key = "pit.retention.*.keep_forever",
         .type = Type::boolean,
         .default_value = false,
         .doc = "Never delete."});
  return s;
}

class WildcardTest : public ::testing::Test {
 protected:
  Schema schema_ = make_wildcard_schema();
  Config config_{schema_};
};

TEST(Schema, WildcardSegmentMatchesOneValidName) {
  Schema s = make_wildcard_schema();
  const KeySpec* spec = s.find("pit.retention.report.active_days");
  ASSERT_NE(spec, nullptr);
  EXPECT_EQ(spec->key, "pit.retention.*.active_days");
  EXPECT_EQ(s.find("pit.retention.*.active_days"), spec);
  EXPECT_EQ(s.find("pit.retention.a.b.active_days"), nullptr);  // one segment only
  EXPECT_EQ(s.find("pit.retention.active_days"), nullptr);
  EXPECT_EQ(s.find("pit.retention.bad name.active_days"), nullptr);
  EXPECT_EQ(s.find("pit.retention.report.bogus"), nullptr);
  EXPECT_TRUE(is_wildcard("pit.retention.*.active_days"));
  EXPECT_FALSE(is_wildcard("ipc.socket"));
  EXPECT_TRUE(valid_instance_name("model-ckpt_2"));
  EXPECT_FALSE(valid_instance_name(""));
  EXPECT_FALSE(valid_instance_name("a.b"));
  EXPECT_FALSE(valid_instance_name(std::string(65, 'a')));
}

TEST(Schema, ExactKeyWinsOverAWildcard) {
  Schema s = make_wildcard_schema();
  s.add({.key = "pit.retention.special.active_days", .type = Type::string,
         .default_value = std::string("x"), .doc = "Special."});
  EXPECT_EQ(s.find("pit.retention.special.active_days")->type, Type::string);
  EXPECT_EQ(s.find("pit.retention.other.active_days")->type, Type::integer);
}

TEST_F(WildcardTest, TablesPerInstanceAreValidatedAndEnumerated) {
  auto r = config_.merge_text(
      "[pit.retention.default]\n"
      "active_days = 30\n"
      "[pit.retention.report]\n"
      "active_days = 7\n"
      "[pit.retention.scratch]\n",
      "main.toml");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_THAT(config_.instances("pit.retention"), ElementsAre("default", "report", "scratch"));
  EXPECT_EQ(config_.get_int("pit.retention.report.active_days"), 7);
  EXPECT_EQ(config_.origin("pit.retention.report.active_days").source, "main.toml");
  EXPECT_EQ(config_.origin("pit.retention.report.active_days").line, 4);
  // Keys an instance does not set read as the wildcard's default.
  EXPECT_EQ(config_.get_int("pit.retention.scratch.active_days"), 30);
  EXPECT_FALSE(config_.get_bool("pit.retention.report.keep_forever"));
  EXPECT_EQ(config_.origin("pit.retention.scratch.active_days").source, "default");
  // A name nothing mentioned also reads as the default (and is no instance).
  EXPECT_EQ(config_.get_int("pit.retention.never.active_days"), 30);
  EXPECT_THAT(config_.instances("pit.retention"), ElementsAre("default", "report", "scratch"));
  EXPECT_TRUE(config_.instances("pit").empty());
  EXPECT_TRUE(config_.instances("ipc").empty());
}

TEST_F(WildcardTest, InstancesAccumulateAcrossMergesAndSet) {
  EXPECT_TRUE(config_.instances("pit.retention").empty());
  ASSERT_TRUE(config_.merge_text("pit.retention.report.active_days = 7\n", "a.toml"));
  ASSERT_TRUE(config_.set("pit.retention.logs.keep_forever", "true", "command line"));
  EXPECT_THAT(config_.instances("pit.retention"), ElementsAre("logs", "report"));
  EXPECT_TRUE(config_.get_bool("pit.retention.logs.keep_forever"));
  EXPECT_EQ(config_.get_int("pit.retention.report.active_days"), 7);
}

TEST_F(WildcardTest, WrongTypeNamesFileLineAndTheConcreteKey) {
  auto r = config_.merge_text("[pit.retention.report]\n\nactive_days = \"seven\"\n", "main.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "main.toml:3: pit.retention.report.active_days: expected integer, got string");
  EXPECT_TRUE(config_.instances("pit.retention").empty());  // nothing applied
}

TEST_F(WildcardTest, OutOfRangeNamesFileLineAndTheConcreteKey) {
  auto r = config_.merge_text("[pit.retention.report]\nactive_days = -1\n", "main.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "main.toml:2: pit.retention.report.active_days: value -1 out of range 0..36500");
  auto s = config_.set("pit.retention.report.active_days", "-3", "--set");
  ASSERT_FALSE(s);
  EXPECT_THAT(s.error().message(), HasSubstr("pit.retention.report.active_days: value -3"));
}

TEST_F(WildcardTest, UnknownKeyInAnInstanceTable) {
  auto r = config_.merge_text("[pit.retention.report]\nactive_dayz = 1\n", "main.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "main.toml:2: unknown key 'pit.retention.report.active_dayz'");
}

TEST_F(WildcardTest, InvalidInstanceNamesAreRefused) {
  auto r = config_.merge_text("[pit.retention.\"a.b\"]\nactive_days = 1\n", "main.toml");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("main.toml:1: pit.retention.a.b: 'a.b' is not a valid name"));
  auto q = config_.merge_text("pit.retention.\"a b\".active_days = 1\n", "q.toml");
  ASSERT_FALSE(q);
  EXPECT_THAT(q.error().message(), HasSubstr("'a b' is not a valid name"));
  auto star = config_.set("pit.retention.*.active_days", "1", "--set");
  ASSERT_FALSE(star);
  EXPECT_THAT(star.error().message(), HasSubstr("name an instance in place of '*'"));
  // A scalar where an instance table belongs.
  EXPECT_FALSE(config_.merge_text("[pit.retention]\nreport = 3\n", "s.toml"));
  EXPECT_TRUE(config_.instances("pit.retention").empty());
}

TEST(RenderDefaults, WildcardTablesRenderAsTheDefaultInstanceAndParseBack) {
  Schema schema = make_wildcard_schema();
  std::string text = schema.render_defaults();
  EXPECT_THAT(text, HasSubstr("\n[pit.retention.default]\n"
                              "# (one table or key per name: pit.retention.<name>.active_days)\n"
                              "# Days a version stays active.\n# Range: 0 .. 36500\n"
                              "#active_days = 30\n# Never delete.\n#keep_forever = false\n"));
  Config config(schema);
  ASSERT_TRUE(config.set("pit.retention.default.active_days", "5", "test"));
  auto r = config.merge_text(uncomment_values(text), "defaults.toml");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(config.get_int("pit.retention.default.active_days"), 30);
  EXPECT_THAT(config.instances("pit.retention"), ElementsAre("default"));
}

}  // namespace
}  // namespace symphony::config
