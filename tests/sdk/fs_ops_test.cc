// The fs operator's file operations: what they return, and that no path,
// symlink or parameter gets them outside the workspace — under openat2
// confinement and under the realpath fallback alike.
#include "extensions/fs/fs_ops.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iterator>

#include "tests/support/temp_dir.h"

namespace symphony::extensions::fs {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

namespace stdfs = std::filesystem;

void put(const stdfs::path& path, std::string_view content) {
  stdfs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

std::string get(const stdfs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::vector<std::string> paths(const Listing& listing) {
  std::vector<std::string> out;
  for (const Entry& e : listing.entries) out.push_back(e.path);
  return out;
}

TEST(FsPaths, NormalisesRelativePaths) {
  EXPECT_EQ(*check_relative("."), "");
  EXPECT_EQ(*check_relative("./a//b/"), "a/b");
  EXPECT_EQ(*check_relative("a/./b"), "a/b");
}

TEST(FsPaths, RefusesAbsoluteDotDotAndEmpty) {
  auto absolute = check_relative("/etc/passwd");
  ASSERT_FALSE(absolute);
  EXPECT_EQ(absolute.error().code(), EINVAL);
  EXPECT_EQ(absolute.error().message(),
            "path '/etc/passwd' is absolute; paths are relative to the workspace");

  for (const char* p : {"..", "../x", "a/../../x", "a/.."}) {
    auto r = check_relative(p);
    ASSERT_FALSE(r) << p;
    EXPECT_THAT(r.error().message(), HasSubstr("contains '..'")) << p;
  }
  EXPECT_THAT(check_relative("").error().message(), HasSubstr("path is empty"));
}

TEST(FsText, GuessesMediaType) {
  EXPECT_EQ(guess_media_type(""), "text/plain");
  EXPECT_EQ(guess_media_type("hello\n"), "text/plain");
  EXPECT_EQ(guess_media_type("gr\xc3\xbc\xc3\x9f" "e"), "text/plain");
  EXPECT_EQ(guess_media_type(std::string("a\0b", 3)), "application/octet-stream");
  EXPECT_EQ(guess_media_type("\xff\xfe"), "application/octet-stream");
}

TEST(FsText, ChecksUtf8Strictly) {
  EXPECT_TRUE(is_utf8("\xe2\x82\xac"));       // €
  EXPECT_TRUE(is_utf8("\xf0\x9f\x8e\xb5"));   // 🎵
  EXPECT_FALSE(is_utf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(is_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(is_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(is_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
}

// Every operation, under both ways of confining opens.
class FsOps : public ::testing::TestWithParam<Confinement> {
 protected:
  void SetUp() override {
    root_ = dir_.path() / "ws";
    outside_ = dir_.path() / "outside";
    put(root_ / "a.txt", "alpha\nbeta\n");
    put(root_ / "src/main.cc", "int main() {\n  return 0;  // TODO\n}\n");
    put(root_ / "src/util/util.h", "// todo later\n#pragma once\n");
    put(root_ / "bin/blob", std::string("\x7f" "ELF\0\0TODO", 10));
    put(outside_ / "secret", "top secret TODO\n");
    // Escape routes: a directory symlink, a file symlink and an absolute
    // one, all pointing out of the workspace.
    stdfs::create_directory_symlink("../outside", root_ / "out");
    stdfs::create_symlink(outside_ / "secret", root_ / "secret-link");
    stdfs::create_symlink("../../outside/secret", root_ / "src/relative-secret");
    // And one that stays inside.
    stdfs::create_symlink("a.txt", root_ / "alias.txt");
    auto ws = Workspace::open(root_, GetParam());
    ASSERT_TRUE(ws) << ws.error().message();
    ws_.emplace(std::move(*ws));
  }

  const Workspace& ws() const { return *ws_; }

  testing::TempDir dir_{"fs-ops"};
  stdfs::path root_;
  stdfs::path outside_;
  std::optional<Workspace> ws_;
};

INSTANTIATE_TEST_SUITE_P(Confinement, FsOps,
                         ::testing::Values(Confinement::beneath, Confinement::realpath_check),
                         [](const auto& info) {
                           return info.param == Confinement::beneath ? std::string("openat2")
                                                                     : std::string("realpath");
                         });

TEST_P(FsOps, ReadsFilesWithAGuessedMediaType) {
  auto text = read(ws(), "a.txt", 1024);
  ASSERT_TRUE(text) << text.error().message();
  EXPECT_EQ(text->data, "alpha\nbeta\n");
  EXPECT_EQ(text->media_type, "text/plain");

  auto blob = read(ws(), "./bin//blob", 1024);
  ASSERT_TRUE(blob) << blob.error().message();
  EXPECT_EQ(blob->data.size(), 10u);
  EXPECT_EQ(blob->media_type, "application/octet-stream");
}

TEST_P(FsOps, ReadFollowsSymlinksThatStayInside) {
  auto r = read(ws(), "alias.txt", 1024);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->data, "alpha\nbeta\n");
}

TEST_P(FsOps, ReadRefusesEveryWayOut) {
  for (const char* path : {"../outside/secret", "src/../../outside/secret"}) {
    auto r = read(ws(), path, 1024);
    ASSERT_FALSE(r) << path;
    EXPECT_EQ(r.error().code(), EINVAL) << path;
  }
  auto absolute = read(ws(), (outside_ / "secret").string(), 1024);
  ASSERT_FALSE(absolute);
  EXPECT_THAT(absolute.error().message(), HasSubstr("is absolute"));

  for (const char* path : {"out/secret", "secret-link", "src/relative-secret"}) {
    auto r = read(ws(), path, 1024);
    ASSERT_FALSE(r) << path << " was read: " << r->data;
    EXPECT_EQ(r.error().code(), EXDEV) << path << ": " << r.error().message();
    EXPECT_EQ(r.error().message(),
              "path '" + std::string(path) + "' leads outside the workspace");
  }
}

TEST_P(FsOps, ReadRefusesDirectoriesAndLargeFiles) {
  auto dir = read(ws(), "src", 1024);
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().message(), "'src' is a directory");

  auto big = read(ws(), "a.txt", 4);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().message(), "'a.txt' is 11 bytes, over max_bytes (4)");

  auto missing = read(ws(), "nope.txt", 1024);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ENOENT);
  EXPECT_THAT(missing.error().message(), HasSubstr("'nope.txt'"));
}

TEST_P(FsOps, ListsSortedDepthFirstWithoutFollowingSymlinks) {
  ListOptions options;
  options.recursive = true;
  auto all = list(ws(), options);
  ASSERT_TRUE(all) << all.error().message();
  EXPECT_THAT(paths(*all), ElementsAre("a.txt", "alias.txt", "bin", "bin/blob", "out",
                                       "secret-link", "src", "src/main.cc",
                                       "src/relative-secret", "src/util", "src/util/util.h"));
  EXPECT_FALSE(all->truncated);
  EXPECT_EQ(all->entries[0].type, "file");
  EXPECT_EQ(all->entries[0].size, 11u);
  EXPECT_EQ(all->entries[2].type, "directory");
  EXPECT_EQ(all->entries[2].size, 0u);
  EXPECT_EQ(all->entries[4].type, "symlink");  // "out": listed, not entered

  ListOptions top;
  auto shallow = list(ws(), top);
  ASSERT_TRUE(shallow);
  EXPECT_THAT(paths(*shallow), ElementsAre("a.txt", "alias.txt", "bin", "out", "secret-link", "src"));
}

TEST_P(FsOps, ListFiltersByGlobAndStopsAtMaxEntries) {
  ListOptions by_name;
  by_name.recursive = true;
  by_name.pattern = "*.h";
  auto headers = list(ws(), by_name);
  ASSERT_TRUE(headers);
  EXPECT_THAT(paths(*headers), ElementsAre("src/util/util.h"));

  ListOptions by_path;
  by_path.recursive = true;
  by_path.pattern = "src/*";  // FNM_PATHNAME: one level only
  auto direct = list(ws(), by_path);
  ASSERT_TRUE(direct);
  EXPECT_THAT(paths(*direct), ElementsAre("src/main.cc", "src/relative-secret", "src/util"));

  ListOptions few;
  few.recursive = true;
  few.max_entries = 3;
  auto cut = list(ws(), few);
  ASSERT_TRUE(cut);
  EXPECT_EQ(cut->entries.size(), 3u);
  EXPECT_TRUE(cut->truncated);

  ListOptions sub;
  sub.path = "src/util";
  auto inside = list(ws(), sub);
  ASSERT_TRUE(inside);
  EXPECT_THAT(paths(*inside), ElementsAre("src/util/util.h"));
}

TEST_P(FsOps, ListRefusesWaysOut) {
  ListOptions through_link;
  through_link.path = "out";
  auto r = list(ws(), through_link);
  ASSERT_FALSE(r) << "listed " << r->entries.size() << " entries outside";
  EXPECT_EQ(r.error().code(), EXDEV);

  ListOptions up;
  up.path = "..";
  EXPECT_EQ(list(ws(), up).error().code(), EINVAL);
}

TEST_P(FsOps, WritesAFileWhole) {
  WriteOptions options;
  options.path = "notes/today.md";
  options.content = "# Today\n";
  auto missing_parent = write(ws(), options);
  ASSERT_FALSE(missing_parent);
  EXPECT_EQ(missing_parent.error().message(),
            "directory 'notes' does not exist (create_parents = true creates it)");

  options.create_parents = true;
  auto n = write(ws(), options);
  ASSERT_TRUE(n) << n.error().message();
  EXPECT_EQ(*n, 8u);
  EXPECT_EQ(get(root_ / "notes/today.md"), "# Today\n");

  // Replacing keeps the permissions and leaves no temporary file behind.
  ASSERT_EQ(::chmod((root_ / "a.txt").c_str(), 0640), 0);
  WriteOptions replace;
  replace.path = "a.txt";
  replace.content = "gamma\n";
  ASSERT_TRUE(write(ws(), replace));
  EXPECT_EQ(get(root_ / "a.txt"), "gamma\n");
  struct stat st {};
  ASSERT_EQ(::stat((root_ / "a.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(testing::count_entries(root_), 7u);  // what SetUp made, plus notes/
}

TEST_P(FsOps, WriteThroughAnInsideSymlinkWritesItsTarget) {
  WriteOptions options;
  options.path = "alias.txt";
  options.content = "via alias\n";
  ASSERT_TRUE(write(ws(), options));
  EXPECT_EQ(get(root_ / "a.txt"), "via alias\n");
  EXPECT_TRUE(stdfs::is_symlink(root_ / "alias.txt"));
}

TEST_P(FsOps, WriteRefusesEveryWayOut) {
  for (const char* path : {"out/secret", "secret-link", "src/relative-secret", "out/new-file"}) {
    WriteOptions options;
    options.path = path;
    options.content = "pwned";
    auto r = write(ws(), options);
    ASSERT_FALSE(r) << path;
    EXPECT_EQ(r.error().code(), EXDEV) << path << ": " << r.error().message();
  }
  WriteOptions parents;
  parents.path = "out/deeper/file";
  parents.content = "pwned";
  parents.create_parents = true;
  auto r = write(ws(), parents);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EXDEV) << r.error().message();

  WriteOptions absolute;
  absolute.path = (outside_ / "secret").string();
  absolute.content = "pwned";
  EXPECT_EQ(write(ws(), absolute).error().code(), EINVAL);

  EXPECT_EQ(get(outside_ / "secret"), "top secret TODO\n");
  EXPECT_THAT(testing::count_entries(outside_), 1u);
}

TEST_P(FsOps, WriteRefusesTheWorkspaceAndDirectories) {
  WriteOptions root;
  root.path = ".";
  EXPECT_EQ(write(ws(), root).error().message(), "path '.' is the workspace itself, not a file");
  WriteOptions dir;
  dir.path = "src";
  EXPECT_EQ(write(ws(), dir).error().message(), "'src' is a directory");
}

TEST_P(FsOps, SearchesLinesWithExtendedRegexes) {
  SearchOptions options;
  options.pattern = "TODO|todo";
  auto found = search(ws(), options);
  ASSERT_TRUE(found) << found.error().message();
  ASSERT_EQ(found->matches.size(), 2u);  // the binary is skipped, links not followed
  EXPECT_EQ(found->matches[0].path, "src/main.cc");
  EXPECT_EQ(found->matches[0].line, 2u);
  EXPECT_EQ(found->matches[0].text, "  return 0;  // TODO");
  EXPECT_EQ(found->matches[1].path, "src/util/util.h");
  EXPECT_EQ(found->matches[1].line, 1u);
  EXPECT_EQ(found->files_skipped, 1u);
  EXPECT_EQ(found->files_searched, 3u);

  SearchOptions caseless;
  caseless.pattern = "^// TODO";
  caseless.ignore_case = true;
  caseless.glob = "*.h";
  auto headers = search(ws(), caseless);
  ASSERT_TRUE(headers);
  ASSERT_EQ(headers->matches.size(), 1u);
  EXPECT_EQ(headers->matches[0].path, "src/util/util.h");

  SearchOptions one;
  one.pattern = "a";
  one.path = "a.txt";
  one.max_matches = 1;
  auto cut = search(ws(), one);
  ASSERT_TRUE(cut);
  ASSERT_EQ(cut->matches.size(), 1u);
  EXPECT_EQ(cut->matches[0].text, "alpha");
  EXPECT_TRUE(cut->truncated);
}

TEST_P(FsOps, SearchRefusesBadPatternsAndWaysOut) {
  SearchOptions bad;
  bad.pattern = "(unclosed";
  auto r = search(ws(), bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EINVAL);
  EXPECT_THAT(r.error().message(), HasSubstr("pattern '(unclosed': "));

  SearchOptions out;
  out.pattern = "secret";
  out.path = "out";
  EXPECT_EQ(search(ws(), out).error().code(), EXDEV);
  out.path = "secret-link";
  EXPECT_EQ(search(ws(), out).error().code(), EXDEV);
}

TEST(FsWorkspace, MissingWorkspaceIsAnError) {
  auto none = Workspace::open("");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().message(), "the step has no workspace");
  auto missing = Workspace::open("/nonexistent/symphony-ws");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message(),
            "workspace /nonexistent/symphony-ws: No such file or directory");
}

}  // namespace
}  // namespace symphony::extensions::fs
