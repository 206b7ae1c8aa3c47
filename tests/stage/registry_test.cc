// The extension registry on a real file system: installs, replaces,
// removal, enable/disable, resolution order (user, system, bundled) and
// shadowing, pruning of old versions, what the copy refuses (escaping
// symlinks, fifos, bad or incompatible manifests), leftovers of an
// interrupted install, and the change generation and callbacks.
#include "stage/registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>

#include "symphony_build_config.h"
#include "tests/support/temp_dir.h"

namespace symphony::stage {
namespace {

namespace fs = std::filesystem;
using symphony::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::uint32_t kAlice = 1000;
constexpr std::uint32_t kBob = 1001;

void write(const fs::path& p, const std::string& text, fs::perms mode = fs::perms::none) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
  if (mode != fs::perms::none) fs::permissions(p, mode);
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string manifest_text(const std::string& id, const std::string& version,
                          const std::string& symphony = ">=0.1") {
  return "id = \"" + id + "\"\nversion = \"" + version +
         "\"\nkind = \"operator\"\ndescription = \"test extension\"\nsymphony = \"" + symphony +
         "\"\n\n[entry]\ncommand = [\"bin/run\"]\n\n[[capabilities]]\nname = \"demo.echo\"\n"
         "[capabilities.params]\ntext = {type = \"string\", required = true}\n\n"
         "[permissions]\nfilesystem = [{path = \"workspace\", access = \"rw\"}]\n";
}

class RegistryTest : public ::testing::Test {
 protected:
  RegistryTest() {
    root_ = dir_.path() / "root";
    bundled_ = dir_.path() / "bundled";
    fs::create_directories(bundled_);
  }

  std::unique_ptr<Registry> open_registry(std::vector<std::string>* warnings = nullptr) {
    auto r = Registry::open({root_, {bundled_}});
    EXPECT_TRUE(r) << r.error().message();
    if (!r) return nullptr;
    if (warnings) *warnings = r->warnings;
    return std::move(r->registry);
  }

  // A source tree for `id` `version` with an executable and a data file.
  fs::path source(const std::string& id, const std::string& version, const std::string& name = "") {
    fs::path d = dir_.path() / "src" / (name.empty() ? id + "-" + version : name);
    write(d / "extension.toml", manifest_text(id, version));
    write(d / "bin" / "run", "#!/bin/sh\necho " + version + "\n",
          fs::perms::owner_all | fs::perms::others_read);
    write(d / "data" / "words.txt", "hello\n");
    return d;
  }

  void bundle(const std::string& dir_name, const std::string& id, const std::string& version) {
    write(bundled_ / dir_name / "extension.toml", manifest_text(id, version));
  }

  Installed install_ok(Registry& reg, const fs::path& src, Scope scope = Scope::system,
                       std::uint32_t uid = 0, bool force = false) {
    auto r = reg.install(src, scope, uid, force);
    EXPECT_TRUE(r) << r.error().message();
    return r ? r->installed : Installed{};
  }

  TempDir dir_{"symphony-registry"};
  fs::path root_;
  fs::path bundled_;
};

TEST_F(RegistryTest, InstallCopiesTheTreeAndMakesItCurrentAndEnabled) {
  auto reg = open_registry();
  fs::path src = source("org.example.hello", "0.1.0");
  fs::create_directory_symlink("data", src / "data-link");
  auto r = reg->install(src, Scope::system, 0, false);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(r->previous.has_value());
  const Installed& e = r->installed;
  EXPECT_EQ(e.manifest.id, "org.example.hello");
  EXPECT_EQ(to_string(e.manifest.version), "0.1.0");
  EXPECT_EQ(e.scope, Scope::system);
  EXPECT_FALSE(e.bundled);
  EXPECT_TRUE(e.enabled);
  EXPECT_EQ(e.dir, root_ / "org.example.hello" / "0.1.0");
  EXPECT_EQ(e.manifest.directory, e.dir);
  EXPECT_EQ(read(e.dir / "data" / "words.txt"), "hello\n");
  struct stat st {};
  ASSERT_EQ(::stat((e.dir / "bin" / "run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u) << "the executable bit is kept";
  ASSERT_EQ(::stat((e.dir / "data" / "words.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  EXPECT_EQ(fs::read_symlink(e.dir / "data-link"), "data");
  EXPECT_EQ(read(root_ / "org.example.hello" / "state.json"),
            "{\"current\":\"0.1.0\",\"enabled\":true}\n");
  // The source may go away: the registry has its own copy.
  fs::remove_all(src);
  auto found = reg->find("org.example.hello", 0);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->dir, e.dir);
  EXPECT_EQ(found->manifest.capabilities.size(), 1u);
}

TEST_F(RegistryTest, InstallingTheCurrentVersionAgainIsRefusedUnlessForced) {
  auto reg = open_registry();
  fs::path src = source("org.example.hello", "0.1.0");
  install_ok(*reg, src);
  auto again = reg->install(src, Scope::system, 0, false);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), EEXIST);
  EXPECT_THAT(
      again.error().message(),
      HasSubstr("org.example.hello 0.1.0 is already installed; remove it first or install another "
                "version (system-wide"));

  write(src / "data" / "words.txt", "changed\n");
  auto forced = reg->install(src, Scope::system, 0, true);
  ASSERT_TRUE(forced) << forced.error().message();
  EXPECT_EQ(forced->previous, "0.1.0");
  EXPECT_EQ(read(forced->installed.dir / "data" / "words.txt"), "changed\n");
  EXPECT_TRUE(forced->installed.other_versions.empty());
  // Nothing left over from the exchange.
  for (const auto& e : fs::directory_iterator(root_ / "org.example.hello")) {
    EXPECT_FALSE(e.path().filename().string().starts_with(".")) << e.path();
  }
}

TEST_F(RegistryTest, ANewVersionBecomesCurrentAndTheOldOneStaysUntilPruned) {
  auto reg = open_registry();
  install_ok(*reg, source("org.example.hello", "0.1.0"));
  auto r = reg->install(source("org.example.hello", "0.2.0"), Scope::system, 0, false);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->previous, "0.1.0");
  EXPECT_EQ(to_string(r->installed.manifest.version), "0.2.0");
  EXPECT_THAT(r->installed.other_versions, ElementsAre("0.1.0"));
  EXPECT_TRUE(fs::exists(root_ / "org.example.hello" / "0.1.0" / "bin" / "run"))
      << "still running instances use it";
  install_ok(*reg, source("org.example.hello", "0.3.0-rc.1"));

  // A version still in use survives the prune (named with build metadata:
  // compared by precedence).
  auto pruned = reg->prune("org.example.hello", Scope::system, 0, {"0.2.0+build.7"});
  ASSERT_TRUE(pruned) << pruned.error().message();
  EXPECT_THAT(*pruned, ElementsAre("0.1.0"));
  EXPECT_FALSE(fs::exists(root_ / "org.example.hello" / "0.1.0"));
  auto e = reg->find("org.example.hello", 0);
  ASSERT_TRUE(e);
  EXPECT_EQ(to_string(e->manifest.version), "0.3.0-rc.1");
  EXPECT_THAT(e->other_versions, ElementsAre("0.2.0"));
  pruned = reg->prune("org.example.hello", Scope::system, 0, {});
  ASSERT_TRUE(pruned);
  EXPECT_THAT(*pruned, ElementsAre("0.2.0"));
  EXPECT_TRUE(reg->find("org.example.hello", 0)->other_versions.empty());
  EXPECT_EQ(reg->prune("org.example.nope", Scope::system, 0, {}).error().code(), ENOENT);
}

TEST_F(RegistryTest, AnOlderVersionCanBeInstalledBackAsCurrent) {
  auto reg = open_registry();
  install_ok(*reg, source("org.example.hello", "0.1.0"));
  install_ok(*reg, source("org.example.hello", "0.2.0"));
  // 0.1.0 is on disk but not current: installing it again switches back.
  auto r = reg->install(source("org.example.hello", "0.1.0", "again"), Scope::system, 0, false);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->previous, "0.2.0");
  EXPECT_EQ(to_string(reg->find("org.example.hello", 0)->manifest.version), "0.1.0");
}

TEST_F(RegistryTest, RemoveDeletesEveryVersion) {
  auto reg = open_registry();
  install_ok(*reg, source("org.example.hello", "0.1.0"));
  install_ok(*reg, source("org.example.hello", "0.2.0"));
  auto removed = reg->remove("org.example.hello", Scope::system, 0);
  ASSERT_TRUE(removed) << removed.error().message();
  EXPECT_EQ(to_string(removed->manifest.version), "0.2.0");
  EXPECT_FALSE(fs::exists(root_ / "org.example.hello"));
  EXPECT_FALSE(reg->find("org.example.hello", 0));
  auto again = reg->remove("org.example.hello", Scope::system, 0);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ENOENT);
  EXPECT_THAT(again.error().message(),
              HasSubstr("no extension 'org.example.hello' is installed system-wide"));
  EXPECT_EQ(reg->remove("../../etc", Scope::system, 0).error().code(), EINVAL);
  EXPECT_TRUE(reg->list(0).empty());
}

TEST_F(RegistryTest, EnableAndDisableAreKeptOnDisk) {
  auto reg = open_registry();
  install_ok(*reg, source("org.example.hello", "0.1.0"));
  auto off = reg->set_enabled("org.example.hello", false, std::nullopt, 0);
  ASSERT_TRUE(off) << off.error().message();
  EXPECT_FALSE(off->enabled);
  EXPECT_EQ(read(root_ / "org.example.hello" / "state.json"),
            "{\"current\":\"0.1.0\",\"enabled\":false}\n");
  // A new registry (a daemon restart) sees the same.
  reg = open_registry();
  EXPECT_FALSE(reg->find("org.example.hello", 0)->enabled);
  auto on = reg->set_enabled("org.example.hello", true, Scope::system, 0);
  ASSERT_TRUE(on);
  EXPECT_TRUE(on->enabled);
  EXPECT_TRUE(reg->find("org.example.hello", 0)->enabled);
  // A new version installed is enabled again even if the old one was not.
  ASSERT_TRUE(reg->set_enabled("org.example.hello", false, std::nullopt, 0));
  EXPECT_TRUE(install_ok(*reg, source("org.example.hello", "0.2.0")).enabled);
  auto missing = reg->set_enabled("org.example.nope", false, std::nullopt, 0);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ENOENT);
  EXPECT_EQ(reg->set_enabled("org.example.hello", false, Scope::user, kAlice).error().code(),
            ENOENT);
}

TEST_F(RegistryTest, ResolutionIsUserThenSystemThenBundledAndListShowsTheRestShadowed) {
  bundle("git", "org.symphony.git", "1.0.0");
  bundle("hello", "org.example.hello", "0.0.1");
  auto reg = open_registry();
  install_ok(*reg, source("org.example.hello", "0.1.0"));
  install_ok(*reg, source("org.example.hello", "0.2.0", "alice"), Scope::user, kAlice);

  auto alice = reg->find("org.example.hello", kAlice);
  ASSERT_TRUE(alice);
  EXPECT_EQ(alice->scope, Scope::user);
  EXPECT_EQ(to_string(alice->manifest.version), "0.2.0");
  EXPECT_EQ(alice->dir, root_ / "users" / "1000" / "org.example.hello" / "0.2.0");
  auto bob = reg->find("org.example.hello", kBob);
  ASSERT_TRUE(bob);
  EXPECT_EQ(bob->scope, Scope::system);
  EXPECT_FALSE(bob->bundled);
  EXPECT_EQ(to_string(bob->manifest.version), "0.1.0");
  auto git = reg->find("org.symphony.git", kBob);
  ASSERT_TRUE(git);
  EXPECT_TRUE(git->bundled);
  EXPECT_EQ(git->dir, bundled_ / "git");

  auto list = reg->list(kAlice);
  ASSERT_EQ(list.size(), 4u);
  EXPECT_EQ(list[0].manifest.id, "org.example.hello");
  EXPECT_EQ(list[0].scope, Scope::user);
  EXPECT_FALSE(list[0].shadowed);
  EXPECT_EQ(list[1].scope, Scope::system);
  EXPECT_FALSE(list[1].bundled);
  EXPECT_TRUE(list[1].shadowed);
  EXPECT_TRUE(list[2].bundled);
  EXPECT_TRUE(list[2].shadowed);
  EXPECT_EQ(list[3].manifest.id, "org.symphony.git");
  EXPECT_FALSE(list[3].shadowed);
  EXPECT_EQ(reg->list(kBob).size(), 3u) << "alice's install is hers only";

  // Removing the user's copy uncovers the system one.
  ASSERT_TRUE(reg->remove("org.example.hello", Scope::user, kAlice));
  EXPECT_EQ(reg->find("org.example.hello", kAlice)->scope, Scope::system);
  ASSERT_TRUE(reg->remove("org.example.hello", Scope::system, 0));
  EXPECT_TRUE(reg->find("org.example.hello", kAlice)->bundled);
}

TEST_F(RegistryTest, ABundledExtensionCanBeDisabledButNotRemoved) {
  bundle("git", "org.symphony.git", "1.0.0");
  auto reg = open_registry();
  auto removed = reg->remove("org.symphony.git", Scope::system, 0);
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().code(), EPERM);
  EXPECT_THAT(removed.error().message(),
              HasSubstr("bundled with Symphony: use `symphonyctl ext disable"));
  auto off = reg->set_enabled("org.symphony.git", false, std::nullopt, kAlice);
  ASSERT_TRUE(off) << off.error().message();
  EXPECT_TRUE(off->bundled);
  EXPECT_FALSE(off->enabled);
  EXPECT_EQ(read(root_ / "org.symphony.git" / "state.json"), "{\"enabled\":false}\n");
  EXPECT_FALSE(reg->find("org.symphony.git", kBob)->enabled);
  EXPECT_TRUE(fs::exists(bundled_ / "git" / "extension.toml"))
      << "the bundled root is never written";
  ASSERT_TRUE(reg->set_enabled("org.symphony.git", true, std::nullopt, 0));
  EXPECT_TRUE(reg->find("org.symphony.git", kBob)->enabled);
}

TEST_F(RegistryTest, ABadManifestIsRefusedNamingFileLineAndField) {
  auto reg = open_registry();
  fs::path src = source("org.example.hello", "0.1.0");
  write(src / "extension.toml",
        manifest_text("org.example.hello", "0.1.0") + "[limits]\nmemory = \"lots\"\n");
  auto r = reg->install(src, Scope::system, 0, false);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr((src / "extension.toml").string() + ":18:"));
  EXPECT_THAT(r.error().message(), HasSubstr("limits.memory"));
  EXPECT_FALSE(fs::exists(root_ / "org.example.hello"));

  auto none = reg->install(dir_.path() / "src" / "missing", Scope::system, 0, false);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), ENOENT);
}

TEST_F(RegistryTest, AnIncompatibleSymphonyRangeIsRefused) {
  auto reg = open_registry();
  fs::path src = source("org.example.hello", "0.1.0");
  write(src / "extension.toml", manifest_text("org.example.hello", "0.1.0", ">=99.0"));
  auto r = reg->install(src, Scope::system, 0, false);
  ASSERT_FALSE(r);
  EXPECT_THAT(
      r.error().message(),
      HasSubstr(
          "extension.toml:5: symphony: org.example.hello 0.1.0 works with Symphony >=99.0, not " +
          std::string(SYMPHONY_VERSION)));
}

TEST_F(RegistryTest, SymlinksThatLeaveTheExtensionAreRefusedNamingThePath) {
  auto reg = open_registry();
  struct Case {
    const char* name;
    const char* target;
    const char* expect;
  };
  for (const auto& c : {Case{"abs", "/etc/passwd", "is absolute"},
                        Case{"up", "../../secret", "leaves the extension's directory"},
                        Case{"deep", "sub/../../../x", "leaves the extension's directory"}}) {
    fs::path src = source("org.example.hello", "0.1.0", c.name);
    fs::create_symlink(c.target, src / "data" / "link");
    auto r = reg->install(src, Scope::system, 0, false);
    ASSERT_FALSE(r) << c.name;
    EXPECT_THAT(r.error().message(), HasSubstr((src / "data" / "link").string())) << c.name;
    EXPECT_THAT(r.error().message(), HasSubstr(c.expect)) << c.name;
  }
  // Lexically inside, but through another symlink that points up.
  fs::path src = source("org.example.hello", "0.1.0", "chain");
  fs::create_directory_symlink("..", src / "data" / "up");
  fs::create_symlink("up/../x", src / "data" / "sneaky");
  auto r = reg->install(src, Scope::system, 0, false);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("resolves outside the extension"));
  // Nothing installed, no temporary left behind.
  EXPECT_FALSE(fs::exists(root_ / "org.example.hello" / "0.1.0"));
  for (const auto& e : fs::directory_iterator(root_ / "org.example.hello"))
    ADD_FAILURE() << e.path();
}

TEST_F(RegistryTest, FifosAreRefused) {
  auto reg = open_registry();
  fs::path src = source("org.example.hello", "0.1.0");
  ASSERT_EQ(::mkfifo((src / "data" / "pipe").c_str(), 0644), 0);
  auto r = reg->install(src, Scope::system, 0, false);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr((src / "data" / "pipe").string() + ": is a fifo"));
}

TEST_F(RegistryTest, FilesTheRequesterCannotReadAreNotCopied) {
  // The check reads mode bits against the given credentials, so it works
  // the same whoever runs the test (root included).
  fs::permissions(dir_.path(), fs::perms::owner_all | fs::perms::group_read |
                                   fs::perms::group_exec | fs::perms::others_read |
                                   fs::perms::others_exec);
  auto reg = open_registry();
  fs::path src = source("org.example.hello", "0.1.0");
  write(src / "data" / "private.txt", "secret\n", fs::perms::owner_read | fs::perms::owner_write);
  ReadAs stranger{::geteuid() + 4242, ::getegid() + 4242, {}};
  auto r = reg->install(src, Scope::user, stranger.uid, false, stranger);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EACCES);
  EXPECT_THAT(r.error().message(),
              HasSubstr((src / "data" / "private.txt").string() + ": not readable by uid"));
  ReadAs owner{::geteuid(), ::getegid(), {}};
  EXPECT_TRUE(reg->install(src, Scope::user, owner.uid, false, owner));
}

TEST_F(RegistryTest, OpenRemovesWhatAnInterruptedInstallLeft) {
  {
    auto reg = open_registry();
    install_ok(*reg, source("org.example.hello", "0.1.0"));
  }
  // A crash mid-copy, one mid-remove, one of a user's install, and a state
  // file written but not renamed.
  write(root_ / "org.example.hello" / ".symphony-tmp-999-0" / "bin" / "run", "half");
  write(root_ / ".symphony-tmp-999-1" / "0.1.0" / "extension.toml", "x");
  write(root_ / "users" / "1000" / "org.example.x" / ".symphony-tmp-999-2" / "extension.toml", "x");
  write(root_ / "org.example.hello" / ".symphony-tmp-999-3", "{");
  std::vector<std::string> warnings;
  auto reg = open_registry(&warnings);
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  EXPECT_FALSE(fs::exists(root_ / "org.example.hello" / ".symphony-tmp-999-0"));
  EXPECT_FALSE(fs::exists(root_ / ".symphony-tmp-999-1"));
  EXPECT_FALSE(fs::exists(root_ / "users" / "1000" / "org.example.x" / ".symphony-tmp-999-2"));
  EXPECT_FALSE(fs::exists(root_ / "org.example.hello" / ".symphony-tmp-999-3"));
  EXPECT_TRUE(reg->find("org.example.hello", 0));
  EXPECT_EQ(reg->list(kAlice).size(), 1u);
}

TEST_F(RegistryTest, BrokenBundledManifestsAreWarningsNotFailures) {
  bundle("git", "org.symphony.git", "1.0.0");
  write(bundled_ / "broken" / "extension.toml", "id = \"org.x.broken\"\nversion = 1\n");
  write(bundled_ / "future" / "extension.toml", manifest_text("org.x.future", "1.0.0", ">=99"));
  fs::create_directories(bundled_ / "not-an-extension");
  std::vector<std::string> warnings;
  auto reg = open_registry(&warnings);
  ASSERT_TRUE(reg);
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_THAT(warnings[0], HasSubstr((bundled_ / "broken" / "extension.toml").string() + ":2:"));
  EXPECT_THAT(warnings[1], HasSubstr("org.x.future 1.0.0 works with Symphony >=99"));
  auto list = reg->list(0);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].manifest.id, "org.symphony.git");
  // A system directory that does not exist is no warning (no package data yet).
  auto r = Registry::open({root_, {dir_.path() / "nowhere"}});
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->warnings.empty());
}

TEST_F(RegistryTest, ABrokenStateFileFailsClosed) {
  auto reg = open_registry();
  install_ok(*reg, source("org.example.hello", "0.1.0"));
  write(root_ / "org.example.hello" / "state.json", "{not json");
  std::vector<std::string> warnings;
  reg = open_registry(&warnings);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr((root_ / "org.example.hello" / "state.json").string()));
  auto e = reg->find("org.example.hello", 0);
  ASSERT_TRUE(e);
  EXPECT_FALSE(e->enabled);
  ASSERT_TRUE(reg->set_enabled("org.example.hello", true, std::nullopt, 0));
  EXPECT_TRUE(reg->find("org.example.hello", 0)->enabled);
}

TEST_F(RegistryTest, EveryChangeBumpsTheGenerationAndRunsTheCallbacks) {
  auto reg = open_registry();
  std::vector<std::string> seen;
  reg->on_change([&](const std::string& id) {
    seen.push_back(id);
    // Callbacks run without the registry's lock held.
    EXPECT_TRUE(reg->find(id, 0));
  });
  std::uint64_t g0 = reg->generation();
  install_ok(*reg, source("org.example.hello", "0.1.0"));
  EXPECT_EQ(reg->generation(), g0 + 1);
  install_ok(*reg, source("org.example.hello", "0.2.0"));
  ASSERT_TRUE(reg->set_enabled("org.example.hello", false, std::nullopt, 0));
  std::uint64_t g = reg->generation();
  ASSERT_TRUE(reg->set_enabled("org.example.hello", false, std::nullopt, 0));
  EXPECT_EQ(reg->generation(), g) << "no change, no new generation";
  ASSERT_TRUE(reg->prune("org.example.hello", Scope::system, 0, {}));
  EXPECT_FALSE(reg->install(source("org.example.hello", "0.2.0", "dup"), Scope::system, 0, false));
  EXPECT_EQ(reg->generation(), g + 1) << "a refused install changes nothing";
  EXPECT_EQ(seen.size(), 4u);
  EXPECT_THAT(seen, ::testing::Each(std::string("org.example.hello")));
}

TEST_F(RegistryTest, ConcurrentInstallsAndReadersSeeOnlyWholeVersions) {
  auto reg = open_registry();
  std::vector<fs::path> sources;
  for (int i = 0; i < 4; ++i)
    sources.push_back(source("org.example.race", "1." + std::to_string(i) + ".0"));
  std::atomic<bool> done{false};
  std::atomic<int> seen{0};
  std::thread reader([&] {
    while (!done) {
      if (auto e = reg->find("org.example.race", 0)) {
        // What find answers is complete: its directory holds the version it names.
        EXPECT_EQ(e->dir.filename().string(), to_string(e->manifest.version));
        EXPECT_TRUE(fs::exists(e->dir / "bin" / "run")) << e->dir;
        ++seen;
      }
    }
  });
  std::vector<std::thread> writers;
  for (const auto& src : sources) {
    writers.emplace_back([&reg, src] { EXPECT_TRUE(reg->install(src, Scope::system, 0, false)); });
  }
  for (auto& t : writers) t.join();
  done = true;
  reader.join();
  auto e = reg->find("org.example.race", 0);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->other_versions.size(), 3u);
  EXPECT_EQ(reg->generation(), 4u);
  for (const auto& entry : fs::directory_iterator(root_ / "org.example.race")) {
    EXPECT_FALSE(entry.path().filename().string().starts_with(".")) << entry.path();
  }
}

TEST(SimilarIds, SuggestsCloseAndRelatedNames) {
  std::vector<std::string> ids = {"org.symphony.git", "org.symphony.shell", "org.example.hello",
                                  "com.other.git"};
  EXPECT_THAT(similar_ids("org.symphony.gti", ids), ElementsAre("org.symphony.git"));
  EXPECT_THAT(similar_ids("git", ids), ElementsAre("com.other.git", "org.symphony.git"));
  EXPECT_TRUE(similar_ids("net.nothing.alike", ids).empty());
}

}  // namespace
}  // namespace symphony::stage
