// The git operator's library against real repositories made with libgit2 in
// a scratch directory: status of each kind of change, diffs as text and
// numbers, log with its filters, blame line by line, and the specific errors
// for what is not there (a repository, a revision, a file in HEAD) or is
// malformed (parameters, paths that leave the workspace).
#include "extensions/git/git_ops.h"

#include <git2.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include "stage/manifest.h"
#include "tests/support/temp_dir.h"

namespace symphony::extensions::git {
namespace {

using symphony::testing::TempDir;
using ::testing::HasSubstr;

constexpr std::int64_t kT0 = 1700000000;  // 2023-11-14T22:13:20Z

void check(int rc, const char* what) {
  if (rc < 0) {
    const git_error* e = git_error_last();
    throw std::runtime_error(std::string(what) + ": " + (e != nullptr ? e->message : "?"));
  }
}

std::string hex(const git_oid& oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof buf, &oid);
  return buf;
}

std::string blob_abbrev(std::string_view content) {
  git_oid oid;
  check(git_odb_hash(&oid, content.data(), content.size(), GIT_OBJECT_BLOB), "hash");
  return hex(oid).substr(0, 7);
}

// A repository in a scratch directory, on branch "main", built commit by
// commit with fixed signatures so that every result is known in advance.
class GitRepo : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    git_libgit2_init();
    // Hermetic: no global or system configuration from the machine running the test.
    for (auto level : {GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG, GIT_CONFIG_LEVEL_GLOBAL})
      git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, level, "/nonexistent");
  }

  void SetUp() override {
    git_repository_init_options opts = GIT_REPOSITORY_INIT_OPTIONS_INIT;
    opts.flags = GIT_REPOSITORY_INIT_MKPATH;
    opts.initial_head = "main";
    check(git_repository_init_ext(&repo_, root().c_str(), &opts), "init");
  }
  void TearDown() override { git_repository_free(repo_); }

  const std::filesystem::path& root() const { return dir_.path(); }

  void write(const std::string& rel, std::string_view content) {
    auto p = root() / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
  }
  void stage(const std::string& rel) {
    git_index* index = nullptr;
    check(git_repository_index(&index, repo_), "index");
    check(git_index_add_bypath(index, rel.c_str()), "add");
    check(git_index_write(index), "write index");
    git_index_free(index);
  }
  void unstage_removed(const std::string& rel) {
    git_index* index = nullptr;
    check(git_repository_index(&index, repo_), "index");
    check(git_index_remove_bypath(index, rel.c_str()), "remove");
    check(git_index_write(index), "write index");
    git_index_free(index);
  }
  // Commits the index as `name` at kT0 + `seconds`, offset +01:00; returns the id.
  std::string commit(const std::string& message, std::int64_t seconds = 0,
                     const char* name = "Ada Lovelace", const char* email = "ada@example.org") {
    git_index* index = nullptr;
    check(git_repository_index(&index, repo_), "index");
    git_oid tree_id;
    check(git_index_write_tree(&tree_id, index), "write tree");
    git_index_free(index);
    git_tree* tree = nullptr;
    check(git_tree_lookup(&tree, repo_, &tree_id), "tree");
    git_signature* sig = nullptr;
    check(git_signature_new(&sig, name, email, kT0 + seconds, 60), "signature");
    git_commit* parent = nullptr;
    git_oid parent_id;
    int n = 0;
    if (git_reference_name_to_id(&parent_id, repo_, "HEAD") == 0) {
      check(git_commit_lookup(&parent, repo_, &parent_id), "parent");
      n = 1;
    }
    const git_commit* parents[] = {parent};
    git_oid id;
    check(
        git_commit_create(&id, repo_, "HEAD", sig, sig, nullptr, message.c_str(), tree, n, parents),
        "commit");
    git_commit_free(parent);
    git_signature_free(sig);
    git_tree_free(tree);
    return hex(id);
  }
  std::string add_and_commit(const std::string& rel, std::string_view content,
                             const std::string& message, std::int64_t seconds = 0,
                             const char* name = "Ada Lovelace",
                             const char* email = "ada@example.org") {
    write(rel, content);
    stage(rel);
    return commit(message, seconds, name, email);
  }

  Repository open() {
    auto r = Repository::open(root());
    if (!r) throw std::runtime_error(r.error().message());
    return std::move(*r);
  }

  TempDir dir_{"git-ops-test"};
  git_repository* repo_ = nullptr;
};

TEST_F(GitRepo, StatusOfACleanRepositoryNamesBranchAndHead) {
  std::string c1 = add_and_commit("a.txt", "one\n", "first");
  auto status = open().status();
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(status->branch, "main");
  EXPECT_EQ(status->head, c1);
  EXPECT_TRUE(status->entries.empty());
  EXPECT_EQ(to_json(*status), nlohmann::json({{"branch", "main"},
                                              {"head", c1},
                                              {"entries", nlohmann::json::array()},
                                              {"clean", true}}));
}

TEST_F(GitRepo, StatusReportsEachIndexAndWorktreeChange) {
  write("a.txt", "a\n");
  write("b.txt", "b\n");
  write("dir/c.txt", "c\n");
  stage("a.txt");
  stage("b.txt");
  stage("dir/c.txt");
  commit("first");

  write("a.txt", "a changed\n");              // worktree modified
  std::filesystem::remove(root() / "b.txt");  // worktree deleted
  write("d.txt", "untracked\n");              // worktree new
  write("e.txt", "staged\n");                 // index new
  stage("e.txt");
  write("dir/c.txt", "c staged\n");  // index modified, then worktree modified again
  stage("dir/c.txt");
  write("dir/c.txt", "c staged and changed\n");

  auto status = open().status();
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_FALSE(status->clean());
  auto j = to_json(*status);
  EXPECT_EQ(j["entries"], nlohmann::json::parse(R"([
    {"path": "a.txt", "index": "none", "worktree": "modified"},
    {"path": "b.txt", "index": "none", "worktree": "deleted"},
    {"path": "d.txt", "index": "none", "worktree": "new"},
    {"path": "dir/c.txt", "index": "modified", "worktree": "modified"},
    {"path": "e.txt", "index": "new", "worktree": "none"}])"));
  EXPECT_EQ(j["clean"], false);
}

TEST_F(GitRepo, StatusReportsAStagedRenameWithItsOldPath) {
  add_and_commit("old.txt", "some content that is long enough to be similar\n", "first");
  std::filesystem::rename(root() / "old.txt", root() / "new.txt");
  unstage_removed("old.txt");
  stage("new.txt");
  auto status = open().status();
  ASSERT_TRUE(status) << status.error().message();
  ASSERT_EQ(status->entries.size(), 1u);
  EXPECT_EQ(status->entries[0].path, "new.txt");
  EXPECT_EQ(status->entries[0].old_path, "old.txt");
  EXPECT_EQ(status->entries[0].index, Change::renamed);
  EXPECT_EQ(status->entries[0].worktree, Change::none);
  EXPECT_EQ(to_json(*status)["entries"][0]["old_path"], "old.txt");
}

TEST_F(GitRepo, StatusBeforeTheFirstCommitHasABranchButNoHead) {
  write("x.txt", "x\n");
  auto status = open().status();
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(status->branch, "main");
  EXPECT_FALSE(status->head.has_value());
  EXPECT_EQ(to_json(*status),
            nlohmann::json::parse(R"({"branch": "main", "head": null, "clean": false,
              "entries": [{"path": "x.txt", "index": "none", "worktree": "new"}]})"));
}

TEST_F(GitRepo, StatusOnADetachedHeadHasNoBranch) {
  std::string c1 = add_and_commit("a.txt", "a\n", "first");
  git_oid id;
  git_oid_fromstr(&id, c1.c_str());
  check(git_repository_set_head_detached(repo_, &id), "detach");
  auto status = open().status();
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_FALSE(status->branch.has_value());
  EXPECT_EQ(status->head, c1);
  EXPECT_TRUE(to_json(*status)["branch"].is_null());
}

TEST_F(GitRepo, DiffOfTheWorkingTreeAgainstHeadIsAUnifiedPatch) {
  add_and_commit("a.txt", "one\ntwo\nthree\n", "first");
  write("a.txt", "one\n2\nthree\n");
  auto diff = open().diff(DiffOptions{});
  ASSERT_TRUE(diff) << diff.error().message();
  EXPECT_EQ(diff->patch,
            "diff --git a/a.txt b/a.txt\n"
            "index " +
                blob_abbrev("one\ntwo\nthree\n") + ".." + blob_abbrev("one\n2\nthree\n") +
                " 100644\n"
                "--- a/a.txt\n"
                "+++ b/a.txt\n"
                "@@ -1,3 +1,3 @@\n"
                " one\n"
                "-two\n"
                "+2\n"
                " three\n");
  EXPECT_EQ(diff->files_changed, 1u);
  EXPECT_EQ(diff->insertions, 1u);
  EXPECT_EQ(diff->deletions, 1u);
  EXPECT_EQ(diff_summary(*diff),
            nlohmann::json({{"files_changed", 1}, {"insertions", 1}, {"deletions", 1}}));
}

TEST_F(GitRepo, DiffBetweenRevisionsHonoursContextAndPaths) {
  write("a.txt", "1\n2\n3\n4\n5\n");
  write("b.txt", "x\n");
  stage("a.txt");
  stage("b.txt");
  std::string c1 = commit("first");
  write("a.txt", "1\n2\nthree\n4\n5\n");
  write("b.txt", "y\nz\n");
  stage("a.txt");
  stage("b.txt");
  std::string c2 = commit("second", 60);
  write("a.txt", "not committed\n");  // must not show: `to` is a commit

  DiffOptions opts;
  opts.from = c1;
  opts.to = c2;
  opts.context = 0;
  auto all = open().diff(opts);
  ASSERT_TRUE(all) << all.error().message();
  EXPECT_EQ(all->files_changed, 2u);
  EXPECT_EQ(all->insertions, 3u);
  EXPECT_EQ(all->deletions, 2u);
  EXPECT_THAT(all->patch, HasSubstr("@@ -3 +3 @@\n-3\n+three\n"));
  EXPECT_THAT(all->patch, ::testing::Not(HasSubstr("not committed")));

  opts.paths = {"b.txt"};
  opts.from = "HEAD~1";
  opts.to = "main";
  auto only_b = open().diff(opts);
  ASSERT_TRUE(only_b) << only_b.error().message();
  EXPECT_EQ(only_b->files_changed, 1u);
  EXPECT_EQ(only_b->insertions, 2u);
  EXPECT_EQ(only_b->deletions, 1u);
  EXPECT_THAT(only_b->patch, ::testing::Not(HasSubstr("a.txt")));
}

TEST_F(GitRepo, DiffBeforeTheFirstCommitComparesWithTheEmptyTree) {
  write("a.txt", "a\nb\n");
  stage("a.txt");
  auto diff = open().diff(DiffOptions{});
  ASSERT_TRUE(diff) << diff.error().message();
  EXPECT_EQ(diff->files_changed, 1u);
  EXPECT_EQ(diff->insertions, 2u);
  EXPECT_EQ(diff->deletions, 0u);
}

TEST_F(GitRepo, DiffOfAnUnknownRevisionNamesIt) {
  add_and_commit("a.txt", "a\n", "first");
  DiffOptions opts;
  opts.from = "no-such-branch";
  auto diff = open().diff(opts);
  ASSERT_FALSE(diff);
  EXPECT_EQ(diff.error().code(), ENOENT);
  EXPECT_EQ(diff.error().message(), "from: unknown revision 'no-such-branch'");
  EXPECT_TRUE(is_request_error(diff.error()));

  opts.from = "HEAD";
  opts.to = "v9.9";
  diff = open().diff(opts);
  ASSERT_FALSE(diff);
  EXPECT_EQ(diff.error().message(), "to: unknown revision 'v9.9'");
}

TEST_F(GitRepo, LogListsCommitsNewestFirstWithIsoTimes) {
  std::string c1 = add_and_commit("a.txt", "1\n", "first commit\n\nwith a body", 0);
  std::string c2 =
      add_and_commit("b.txt", "2\n", "second commit", 60, "Grace Hopper", "grace@example.org");
  std::string c3 = add_and_commit("a.txt", "3\n", "third commit", 120);

  auto log = open().log(LogOptions{});
  ASSERT_TRUE(log) << log.error().message();
  ASSERT_EQ(log->size(), 3u);
  EXPECT_EQ(to_json(*log), nlohmann::json::parse(R"([
    {"commit": ")" + c3 + R"(", "author": "Ada Lovelace", "email": "ada@example.org",
     "time": "2023-11-14T23:15:20+01:00", "summary": "third commit"},
    {"commit": ")" + c2 + R"(", "author": "Grace Hopper", "email": "grace@example.org",
     "time": "2023-11-14T23:14:20+01:00", "summary": "second commit"},
    {"commit": ")" + c1 + R"(", "author": "Ada Lovelace", "email": "ada@example.org",
     "time": "2023-11-14T23:13:20+01:00", "summary": "first commit"}])"));

  LogOptions limited;
  limited.limit = 2;
  auto two = open().log(limited);
  ASSERT_TRUE(two);
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ((*two)[0].commit, c3);
  EXPECT_EQ((*two)[1].commit, c2);
}

TEST_F(GitRepo, LogFiltersByPathAndSince) {
  std::string c1 = add_and_commit("a.txt", "1\n", "one", 0);
  std::string c2 = add_and_commit("src/b.txt", "2\n", "two", 60);
  std::string c3 = add_and_commit("a.txt", "3\n", "three", 120);
  std::string c4 = add_and_commit("src/b.txt", "4\n", "four", 180);

  LogOptions by_file;
  by_file.path = "a.txt";
  auto a = open().log(by_file);
  ASSERT_TRUE(a) << a.error().message();
  ASSERT_EQ(a->size(), 2u);
  EXPECT_EQ((*a)[0].commit, c3);
  EXPECT_EQ((*a)[1].commit, c1);

  LogOptions by_dir;
  by_dir.path = "src";
  auto src = open().log(by_dir);
  ASSERT_TRUE(src);
  ASSERT_EQ(src->size(), 2u);
  EXPECT_EQ((*src)[0].commit, c4);
  EXPECT_EQ((*src)[1].commit, c2);

  LogOptions since;
  since.since = c2;
  auto after = open().log(since);
  ASSERT_TRUE(after);
  ASSERT_EQ(after->size(), 2u);
  EXPECT_EQ((*after)[0].commit, c4);
  EXPECT_EQ((*after)[1].commit, c3);

  since.since = "nope";
  auto bad = open().log(since);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "since: unknown revision 'nope'");
  EXPECT_TRUE(is_request_error(bad.error()));
}

TEST_F(GitRepo, LogOfARepositoryWithoutCommitsIsEmpty) {
  auto log = open().log(LogOptions{});
  ASSERT_TRUE(log) << log.error().message();
  EXPECT_TRUE(log->empty());
  EXPECT_EQ(to_json(*log), nlohmann::json::array());
}

TEST_F(GitRepo, BlameAttributesEachLineToItsLastCommit) {
  std::string c1 = add_and_commit("src/f.txt", "alpha\nbeta\ngamma\n", "first", 0);
  std::string c2 = add_and_commit("src/f.txt", "alpha\nBETA\ngamma\ndelta", "second", 60,
                                  "Grace Hopper", "grace@example.org");
  write("src/f.txt", "worktree edits are not blamed\n");

  auto blame = open().blame("src/f.txt");
  ASSERT_TRUE(blame) << blame.error().message();
  EXPECT_EQ(to_json(*blame), nlohmann::json::parse(R"([
    {"line": 1, "commit": ")" + c1 + R"(", "author": "Ada Lovelace", "text": "alpha"},
    {"line": 2, "commit": ")" + c2 + R"(", "author": "Grace Hopper", "text": "BETA"},
    {"line": 3, "commit": ")" + c1 + R"(", "author": "Ada Lovelace", "text": "gamma"},
    {"line": 4, "commit": ")" + c2 + R"(", "author": "Grace Hopper", "text": "delta"}])"));
}

TEST_F(GitRepo, BlameOfAFileNotInHeadNamesIt) {
  add_and_commit("a.txt", "a\n", "first");
  write("new.txt", "not committed\n");
  auto blame = open().blame("new.txt");
  ASSERT_FALSE(blame);
  EXPECT_EQ(blame.error().code(), ENOENT);
  EXPECT_EQ(blame.error().message(), "'new.txt' is not in HEAD");

  add_and_commit("dir/b.txt", "b\n", "second", 60);
  auto dir = open().blame("dir");
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().code(), EINVAL);
  EXPECT_THAT(dir.error().message(), HasSubstr("'dir' is a directory"));
}

// Inside the sandbox the workspace may belong to another uid; libgit2 would
// refuse it as "not owned by current user" were owner validation on.
TEST_F(GitRepo, OpensARepositoryOwnedByAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the repository away";
  std::string c1 = add_and_commit("a.txt", "a\n", "first");
  constexpr uid_t kNobody = 65534;
  ASSERT_EQ(::lchown(root().c_str(), kNobody, kNobody), 0);
  for (const auto& e : std::filesystem::recursive_directory_iterator(root()))
    ASSERT_EQ(::lchown(e.path().c_str(), kNobody, kNobody), 0) << e.path();
  auto status = open().status();
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(status->head, c1);
}

TEST(GitOps, OpeningADirectoryThatIsNotARepositoryNamesIt) {
  TempDir dir("git-ops-norepo");
  auto repo = Repository::open(dir.path());
  ASSERT_FALSE(repo);
  EXPECT_EQ(repo.error().code(), ENOENT);
  EXPECT_EQ(repo.error().message(), "'" + dir.path().string() + "' is not a git repository");
  EXPECT_TRUE(is_request_error(repo.error()));

  auto missing = Repository::open(dir.path() / "absent");
  ASSERT_FALSE(missing);
  EXPECT_THAT(missing.error().message(), HasSubstr("absent' does not exist"));
}

TEST(GitOps, WorkspacePathsMayNotLeaveTheWorkspace) {
  TempDir ws("git-ops-ws");
  TempDir outside("git-ops-outside");
  std::filesystem::create_directories(ws.path() / "sub");
  std::filesystem::create_directory_symlink(outside.path(), ws.path() / "link");

  auto root = resolve_in_workspace(ws.path(), ".", "params.repo");
  ASSERT_TRUE(root) << root.error().message();
  EXPECT_EQ(*root, ws.path());
  auto sub = resolve_in_workspace(ws.path(), "./sub/", "params.repo");
  ASSERT_TRUE(sub) << sub.error().message();
  EXPECT_EQ(*sub, ws.path() / "sub");

  auto abs = resolve_in_workspace(ws.path(), "/etc", "params.repo");
  ASSERT_FALSE(abs);
  EXPECT_EQ(abs.error().message(),
            "params.repo: '/etc' is absolute; give a path relative to the workspace");
  auto up = resolve_in_workspace(ws.path(), "sub/../..", "params.repo");
  ASSERT_FALSE(up);
  EXPECT_EQ(up.error().message(), "params.repo: 'sub/../..' contains '..'; paths must stay inside");
  auto link = resolve_in_workspace(ws.path(), "link", "params.repo");
  ASSERT_FALSE(link);
  EXPECT_THAT(link.error().message(), HasSubstr("params.repo: 'link' leads outside the workspace"));
  EXPECT_EQ(link.error().code(), EINVAL);
}

TEST(GitOps, ParamsAreCheckedAndNamed) {
  auto d = diff_options(nlohmann::json::parse(R"({"from": "v1", "to": "v2", "context": 5,
                                                  "paths": ["./src/", "docs"]})"));
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(d->from, "v1");
  EXPECT_EQ(d->to, "v2");
  EXPECT_EQ(d->context, 5);
  EXPECT_EQ(d->paths, (std::vector<std::string>{"src", "docs"}));

  auto defaults = diff_options(nlohmann::json::object());
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->from, "HEAD");
  EXPECT_FALSE(defaults->to.has_value());
  EXPECT_EQ(defaults->context, 3);

  EXPECT_EQ(diff_options(nlohmann::json({{"context", "3"}})).error().message(),
            "params.context: expected integer, got string");
  EXPECT_EQ(diff_options(nlohmann::json({{"context", -1}})).error().message(),
            "params.context: -1 is out of range (0 to 100000)");
  EXPECT_EQ(diff_options(nlohmann::json({{"paths", {"a", 3}}})).error().message(),
            "params.paths[1]: expected string, got integer");
  EXPECT_EQ(diff_options(nlohmann::json({{"paths", {"../x"}}})).error().message(),
            "params.paths[0]: '../x' contains '..'; paths must stay inside");
  EXPECT_EQ(diff_options(nlohmann::json::array()).error().message(),
            "params: expected object, got array");

  auto l = log_options(nlohmann::json({{"limit", 5}, {"path", "src/x.cc"}, {"since", "v1"}}));
  ASSERT_TRUE(l);
  EXPECT_EQ(l->limit, 5);
  EXPECT_EQ(l->path, "src/x.cc");
  EXPECT_EQ(l->since, "v1");
  EXPECT_EQ(log_options(nlohmann::json({{"limit", 0}})).error().message(),
            "params.limit: 0 is out of range (1 to 100000)");
  EXPECT_EQ(log_options(nlohmann::json({{"path", "/abs"}})).error().message(),
            "params.path: '/abs' is absolute; give a path relative to the workspace");

  EXPECT_EQ(*blame_path(nlohmann::json({{"path", "./a/b.cc"}})), "a/b.cc");
  EXPECT_EQ(blame_path(nlohmann::json::object()).error().message(),
            "params.path: missing required parameter (the file to blame)");
  EXPECT_EQ(blame_path(nlohmann::json({{"path", 1.5}})).error().message(),
            "params.path: expected string, got number");

  EXPECT_EQ(*repository_param(nlohmann::json::object()), ".");
  EXPECT_EQ(*repository_param(nlohmann::json({{"repo", "sub"}})), "sub");
}

TEST(GitOps, JsonOutputsReplaceInvalidUtf8) {
  std::vector<BlameLine> blame = {{1, "abc", "J\xC3\xB6rg", "bad \xFF byte"}};
  auto j = to_json(blame);
  EXPECT_EQ(j[0]["author"], "J\xC3\xB6rg");
  EXPECT_EQ(j[0]["text"], "bad \xEF\xBF\xBD byte");
  EXPECT_NO_THROW((void)j.dump());
}

// The manifest the program ships with parses, and declares exactly what
// main.cc registers, with the workspace read-only.
TEST(GitManifest, DeclaresTheCapabilitiesTheProgramRegisters) {
  const char* root = std::getenv("SYMPHONY_SOURCE_ROOT");
  if (root == nullptr) GTEST_SKIP() << "SYMPHONY_SOURCE_ROOT is not set";
  auto m = stage::load_manifest(std::filesystem::path(root) / "extensions/git/extension.toml");
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->id, "org.symphony.git");
  EXPECT_EQ(stage::to_string(m->version), "0.1.0");
  EXPECT_EQ(m->kind, stage::Kind::operator_);
  EXPECT_EQ(m->command, std::vector<std::string>{"./symphony-ext-git"});
  std::vector<std::string> names;
  for (const auto& c : m->capabilities) names.push_back(c.name);
  EXPECT_THAT(names, ::testing::ElementsAre("git.status", "git.diff", "git.log", "git.blame"));
  const stage::Capability* blame = m->find_capability("git.blame");
  ASSERT_NE(blame, nullptr);
  ASSERT_EQ(blame->outputs.size(), 1u);
  EXPECT_EQ(blame->outputs[0].name, "blame");
  ASSERT_EQ(m->permissions.filesystem.size(), 1u);
  EXPECT_TRUE(m->permissions.filesystem[0].in_workspace);
  EXPECT_EQ(m->permissions.filesystem[0].path, "");
  EXPECT_EQ(m->permissions.filesystem[0].access, sandbox::Access::read_only);
  EXPECT_FALSE(m->permissions.network);
  EXPECT_EQ(m->limits.memory, sandbox::Bytes{256u << 20});
  EXPECT_TRUE(stage::check_compatible(*m, "0.1.0"));
}

}  // namespace
}  // namespace symphony::extensions::git
