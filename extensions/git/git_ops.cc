// libgit2 behind the git operator. Every libgit2 object is owned by a
// unique_ptr with its free function, and every failing libgit2 call becomes
// an Error that says what was being done, naming the revision, path or
// directory involved, followed by libgit2's own message.
#include "extensions/git/git_ops.h"

#include <fmt/format.h>
#include <git2.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <system_error>

#include "symphony/ext.h"

namespace symphony::extensions::git {
namespace {

template <auto FreeFn>
struct Freer {
  template <class T>
  void operator()(T* p) const {
    FreeFn(p);
  }
};
using ObjectPtr = std::unique_ptr<git_object, Freer<git_object_free>>;
using TreePtr = std::unique_ptr<git_tree, Freer<git_tree_free>>;
using TreeEntryPtr = std::unique_ptr<git_tree_entry, Freer<git_tree_entry_free>>;
using CommitPtr = std::unique_ptr<git_commit, Freer<git_commit_free>>;
using ReferencePtr = std::unique_ptr<git_reference, Freer<git_reference_free>>;
using StatusListPtr = std::unique_ptr<git_status_list, Freer<git_status_list_free>>;
using DiffPtr = std::unique_ptr<git_diff, Freer<git_diff_free>>;
using DiffStatsPtr = std::unique_ptr<git_diff_stats, Freer<git_diff_stats_free>>;
using RevwalkPtr = std::unique_ptr<git_revwalk, Freer<git_revwalk_free>>;
using BlamePtr = std::unique_ptr<git_blame, Freer<git_blame_free>>;
using BlobPtr = std::unique_ptr<git_blob, Freer<git_blob_free>>;

struct Buf {
  git_buf buf = GIT_BUF_INIT;
  Buf() = default;
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  ~Buf() { git_buf_dispose(&buf); }
};

void initialise_libgit2() {
  static std::once_flag once;
  std::call_once(once, [] {
    git_libgit2_init();
    // The sandbox grants the workspace explicitly; it may belong to another
    // uid there, which libgit2 would otherwise refuse as "unsafe".
    git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
  });
}

std::string last_git_message() {
  const git_error* e = git_error_last();
  return e != nullptr && e->message != nullptr ? e->message : "unknown libgit2 error";
}

// `what` failed with libgit2 code `rc`: "what: libgit2's message". Codes that
// mean "the thing asked for is not there or not valid" become ENOENT/EINVAL.
Error git_failure(int rc, std::string_view what) {
  int code = EIO;
  switch (rc) {
    case GIT_ENOTFOUND:
    case GIT_EUNBORNBRANCH:
      code = ENOENT;
      break;
    case GIT_EAMBIGUOUS:
    case GIT_EINVALIDSPEC:
    case GIT_EINVALID:
    case GIT_EBAREREPO:
      code = EINVAL;
      break;
    default:
      break;
  }
  return Error::described(code, fmt::format("{}: {}", what, last_git_message()));
}

std::string oid_hex(const git_oid* oid) {
  char hex[GIT_OID_HEXSZ + 1];
  git_oid_tostr(hex, sizeof hex, oid);
  return hex;
}

std::string iso8601(const git_time& when) {
  std::time_t local = static_cast<std::time_t>(when.time + std::int64_t{when.offset} * 60);
  std::tm tm{};
  gmtime_r(&local, &tm);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  int offset = when.offset;
  char sign = offset < 0 ? '-' : '+';
  offset = offset < 0 ? -offset : offset;
  return fmt::format("{}{}{:02}:{:02}", date, sign, offset / 60, offset % 60);
}

Change index_change(unsigned flags) {
  if ((flags & GIT_STATUS_CONFLICTED) != 0) return Change::conflicted;
  if ((flags & GIT_STATUS_INDEX_NEW) != 0) return Change::added;
  if ((flags & GIT_STATUS_INDEX_DELETED) != 0) return Change::deleted;
  if ((flags & GIT_STATUS_INDEX_RENAMED) != 0) return Change::renamed;
  if ((flags & GIT_STATUS_INDEX_TYPECHANGE) != 0) return Change::typechange;
  if ((flags & GIT_STATUS_INDEX_MODIFIED) != 0) return Change::modified;
  return Change::none;
}

Change worktree_change(unsigned flags) {
  if ((flags & GIT_STATUS_CONFLICTED) != 0) return Change::conflicted;
  if ((flags & GIT_STATUS_WT_NEW) != 0) return Change::added;
  if ((flags & GIT_STATUS_WT_DELETED) != 0) return Change::deleted;
  if ((flags & GIT_STATUS_WT_RENAMED) != 0) return Change::renamed;
  if ((flags & GIT_STATUS_WT_TYPECHANGE) != 0) return Change::typechange;
  if ((flags & GIT_STATUS_WT_MODIFIED) != 0) return Change::modified;
  return Change::none;
}

// "" / "." → ""; otherwise a relative path without "..", with "." and
// repeated slashes dropped. `field` names the parameter in errors.
Result<std::string> normalise_relative(std::string_view path, std::string_view field) {
  if (path.find('\0') != std::string_view::npos)
    return Error::invalid(fmt::format("{}: path contains a NUL byte", field));
  if (!path.empty() && path.front() == '/')
    return Error::invalid(
        fmt::format("{}: '{}' is absolute; give a path relative to the workspace", field, path));
  std::string out;
  std::size_t start = 0;
  while (start <= path.size()) {
    auto slash = path.find('/', start);
    auto part = path.substr(start, slash == std::string_view::npos ? path.npos : slash - start);
    if (part == "..")
      return Error::invalid(
          fmt::format("{}: '{}' contains '..'; paths must stay inside", field, path));
    if (!part.empty() && part != ".") {
      if (!out.empty()) out += '/';
      out += part;
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

std::string_view json_type(const nlohmann::json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  return v.type_name();
}

Error param_type_error(std::string_view name, std::string_view expected, const nlohmann::json& v) {
  return Error::invalid(
      fmt::format("params.{}: expected {}, got {}", name, expected, json_type(v)));
}

// The parameter `name` when present (and not null).
const nlohmann::json* find_param(const nlohmann::json& params, std::string_view name) {
  if (!params.is_object()) return nullptr;
  auto it = params.find(name);
  return it == params.end() || it->is_null() ? nullptr : &*it;
}

Result<std::optional<std::string>> string_param(const nlohmann::json& params,
                                                std::string_view name) {
  const auto* v = find_param(params, name);
  if (v == nullptr) return std::optional<std::string>{};
  if (!v->is_string()) return param_type_error(name, "string", *v);
  return std::optional<std::string>(v->get<std::string>());
}

Result<std::optional<std::int64_t>> integer_param(const nlohmann::json& params,
                                                  std::string_view name, std::int64_t min,
                                                  std::int64_t max) {
  const auto* v = find_param(params, name);
  if (v == nullptr) return std::optional<std::int64_t>{};
  if (!v->is_number_integer()) return param_type_error(name, "integer", *v);
  auto n = v->get<std::int64_t>();
  if (n < min || n > max)
    return Error::invalid(
        fmt::format("params.{}: {} is out of range ({} to {})", name, n, min, max));
  return std::optional<std::int64_t>(n);
}

Result<void> check_params_object(const nlohmann::json& params) {
  if (params.is_object() || params.is_null()) return ok();
  return Error::invalid(fmt::format("params: expected object, got {}", json_type(params)));
}

}  // namespace

std::string_view to_string(Change change) {
  switch (change) {
    case Change::none:
      return "none";
    case Change::modified:
      return "modified";
    case Change::added:
      return "new";
    case Change::deleted:
      return "deleted";
    case Change::renamed:
      return "renamed";
    case Change::typechange:
      return "typechange";
    case Change::conflicted:
      return "conflicted";
  }
  return "none";
}

void Repository::Free::operator()(git_repository* repo) const { git_repository_free(repo); }

Repository::Repository(git_repository* repo, std::filesystem::path dir)
    : repo_(repo), dir_(std::move(dir)) {}

Result<Repository> Repository::open(const std::filesystem::path& dir) {
  initialise_libgit2();
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    return Error::described(
        ENOENT, fmt::format("repository directory '{}' does not exist or is not a directory",
                            dir.string()));
  git_repository* repo = nullptr;
  int rc = git_repository_open_ext(&repo, dir.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr);
  if (rc == GIT_ENOTFOUND)
    return Error::described(ENOENT, fmt::format("'{}' is not a git repository", dir.string()));
  if (rc < 0) return git_failure(rc, fmt::format("open repository '{}'", dir.string()));
  return Repository(repo, dir);
}

Result<Status> Repository::status() const {
  Status out;
  if (git_repository_is_bare(repo_.get()) != 0)
    return Error::invalid(
        fmt::format("repository '{}' is bare (it has no working tree)", dir_.string()));

  git_reference* head_raw = nullptr;
  int rc = git_repository_head(&head_raw, repo_.get());
  ReferencePtr head(head_raw);
  if (rc == GIT_EUNBORNBRANCH || rc == GIT_ENOTFOUND) {
    // No commit yet: the branch is what HEAD points at symbolically.
    git_reference* sym_raw = nullptr;
    if (git_reference_lookup(&sym_raw, repo_.get(), "HEAD") == 0) {
      ReferencePtr sym(sym_raw);
      if (const char* target = git_reference_symbolic_target(sym.get()); target != nullptr) {
        std::string_view name = target;
        if (name.starts_with("refs/heads/")) name.remove_prefix(11);
        out.branch = std::string(name);
      }
    }
  } else if (rc < 0) {
    return git_failure(rc, fmt::format("read HEAD of '{}'", dir_.string()));
  } else {
    if (git_repository_head_detached(repo_.get()) != 1)
      out.branch = git_reference_shorthand(head.get());
    if (const git_oid* oid = git_reference_target(head.get()); oid != nullptr)
      out.head = oid_hex(oid);
  }

  git_status_options opts = GIT_STATUS_OPTIONS_INIT;
  opts.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
  opts.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED | GIT_STATUS_OPT_RECURSE_UNTRACKED_DIRS |
               GIT_STATUS_OPT_RENAMES_HEAD_TO_INDEX | GIT_STATUS_OPT_SORT_CASE_SENSITIVELY;
  git_status_list* list_raw = nullptr;
  rc = git_status_list_new(&list_raw, repo_.get(), &opts);
  StatusListPtr list(list_raw);
  if (rc < 0) return git_failure(rc, fmt::format("status of '{}'", dir_.string()));

  std::size_t count = git_status_list_entrycount(list.get());
  for (std::size_t i = 0; i < count; ++i) {
    const git_status_entry* e = git_status_byindex(list.get(), i);
    if (e == nullptr || e->status == GIT_STATUS_CURRENT || (e->status & GIT_STATUS_IGNORED) != 0)
      continue;
    StatusEntry entry;
    entry.index = index_change(e->status);
    entry.worktree = worktree_change(e->status);
    const git_diff_delta* delta =
        e->head_to_index != nullptr ? e->head_to_index : e->index_to_workdir;
    if (e->index_to_workdir != nullptr && e->index_to_workdir->new_file.path != nullptr)
      entry.path = e->index_to_workdir->new_file.path;
    else if (delta != nullptr && delta->new_file.path != nullptr)
      entry.path = delta->new_file.path;
    if (entry.index == Change::renamed && e->head_to_index != nullptr &&
        e->head_to_index->old_file.path != nullptr)
      entry.old_path = e->head_to_index->old_file.path;
    out.entries.push_back(std::move(entry));
  }
  std::sort(out.entries.begin(), out.entries.end(),
            [](const StatusEntry& a, const StatusEntry& b) { return a.path < b.path; });
  return out;
}

namespace {

// The tree `revision` names (a commit, tag or tree), or an error naming it.
Result<TreePtr> resolve_tree(git_repository* repo, const std::string& revision) {
  git_object* obj_raw = nullptr;
  int rc = git_revparse_single(&obj_raw, repo, revision.c_str());
  ObjectPtr obj(obj_raw);
  if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC || rc == GIT_EUNBORNBRANCH)
    return Error::described(ENOENT, fmt::format("unknown revision '{}'", revision));
  if (rc < 0) return git_failure(rc, fmt::format("resolve revision '{}'", revision));
  git_object* tree_raw = nullptr;
  rc = git_object_peel(&tree_raw, obj.get(), GIT_OBJECT_TREE);
  if (rc < 0)
    return Error::described(EINVAL, fmt::format("revision '{}' does not name a commit or tree: {}",
                                                revision, last_git_message()));
  return TreePtr(reinterpret_cast<git_tree*>(tree_raw));
}

Result<git_oid> resolve_commit(git_repository* repo, const std::string& revision) {
  git_object* obj_raw = nullptr;
  int rc = git_revparse_single(&obj_raw, repo, revision.c_str());
  ObjectPtr obj(obj_raw);
  if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC || rc == GIT_EUNBORNBRANCH)
    return Error::described(ENOENT, fmt::format("unknown revision '{}'", revision));
  if (rc < 0) return git_failure(rc, fmt::format("resolve revision '{}'", revision));
  git_object* commit_raw = nullptr;
  rc = git_object_peel(&commit_raw, obj.get(), GIT_OBJECT_COMMIT);
  ObjectPtr commit(commit_raw);
  if (rc < 0)
    return Error::described(EINVAL, fmt::format("revision '{}' does not name a commit: {}",
                                                revision, last_git_message()));
  return *git_object_id(commit.get());
}

bool head_is_unborn(git_repository* repo) { return git_repository_head_unborn(repo) == 1; }

}  // namespace

Result<Diff> Repository::diff(const DiffOptions& options) const {
  TreePtr from;
  // Before the first commit, the default base is the empty tree, as for
  // `git diff --cached` in a new repository.
  if (!(options.from == "HEAD" && head_is_unborn(repo_.get()))) {
    auto tree = resolve_tree(repo_.get(), options.from);
    if (!tree) return std::move(tree.error()).wrap("from");
    from = std::move(*tree);
  }

  std::vector<const char*> specs;
  specs.reserve(options.paths.size());
  for (const auto& p : options.paths) specs.push_back(p.c_str());
  git_diff_options opts = GIT_DIFF_OPTIONS_INIT;
  opts.context_lines = static_cast<std::uint32_t>(options.context);
  opts.pathspec.strings = const_cast<char**>(specs.data());
  opts.pathspec.count = specs.size();

  git_diff* diff_raw = nullptr;
  int rc = 0;
  if (options.to) {
    auto to = resolve_tree(repo_.get(), *options.to);
    if (!to) return std::move(to.error()).wrap("to");
    rc = git_diff_tree_to_tree(&diff_raw, repo_.get(), from.get(), to->get(), &opts);
  } else {
    if (git_repository_is_bare(repo_.get()) != 0)
      return Error::invalid(fmt::format(
          "repository '{}' is bare; give `to` (it has no working tree)", dir_.string()));
    rc = git_diff_tree_to_workdir_with_index(&diff_raw, repo_.get(), from.get(), &opts);
  }
  DiffPtr diff(diff_raw);
  if (rc < 0)
    return git_failure(
        rc, fmt::format("diff {}..{}", options.from, options.to.value_or("working tree")));

  git_diff_find_options find = GIT_DIFF_FIND_OPTIONS_INIT;
  find.flags = GIT_DIFF_FIND_RENAMES;
  if (rc = git_diff_find_similar(diff.get(), &find); rc < 0)
    return git_failure(rc, "detect renames");

  Diff out;
  Buf text;
  if (rc = git_diff_to_buf(&text.buf, diff.get(), GIT_DIFF_FORMAT_PATCH); rc < 0)
    return git_failure(rc, "format patch");
  out.patch.assign(text.buf.ptr != nullptr ? text.buf.ptr : "", text.buf.size);

  git_diff_stats* stats_raw = nullptr;
  rc = git_diff_get_stats(&stats_raw, diff.get());
  DiffStatsPtr stats(stats_raw);
  if (rc < 0) return git_failure(rc, "statistics");
  out.files_changed = git_diff_stats_files_changed(stats.get());
  out.insertions = git_diff_stats_insertions(stats.get());
  out.deletions = git_diff_stats_deletions(stats.get());
  return out;
}

namespace {

// The id of `path` in `tree`, or nullopt when the tree has no such entry.
Result<std::optional<git_oid>> entry_id(const git_tree* tree, const std::string& path) {
  git_tree_entry* raw = nullptr;
  int rc = git_tree_entry_bypath(&raw, tree, path.c_str());
  TreeEntryPtr entry(raw);
  if (rc == GIT_ENOTFOUND) return std::optional<git_oid>{};
  if (rc < 0) return git_failure(rc, fmt::format("look up '{}'", path));
  return std::optional<git_oid>(*git_tree_entry_id(entry.get()));
}

bool same(const std::optional<git_oid>& a, const std::optional<git_oid>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || git_oid_equal(&*a, &*b) != 0;
}

// Whether `commit` changes `path`, as `git log -- PATH` decides it: a commit
// the same as any of its parents at `path` is left out (history
// simplification); a root commit counts when it has the path.
Result<bool> touches(const git_commit* commit, const std::string& path) {
  git_tree* tree_raw = nullptr;
  if (int rc = git_commit_tree(&tree_raw, commit); rc < 0)
    return git_failure(rc, fmt::format("tree of {}", oid_hex(git_commit_id(commit))));
  TreePtr tree(tree_raw);
  auto mine = entry_id(tree.get(), path);
  if (!mine) return std::move(mine.error());
  unsigned parents = git_commit_parentcount(commit);
  if (parents == 0) return mine->has_value();
  for (unsigned i = 0; i < parents; ++i) {
    git_commit* parent_raw = nullptr;
    if (int rc = git_commit_parent(&parent_raw, commit, i); rc < 0)
      return git_failure(rc, fmt::format("parent of {}", oid_hex(git_commit_id(commit))));
    CommitPtr parent(parent_raw);
    git_tree* ptree_raw = nullptr;
    if (int rc = git_commit_tree(&ptree_raw, parent.get()); rc < 0)
      return git_failure(rc, fmt::format("tree of {}", oid_hex(git_commit_id(parent.get()))));
    TreePtr ptree(ptree_raw);
    auto theirs = entry_id(ptree.get(), path);
    if (!theirs) return std::move(theirs.error());
    if (same(*mine, *theirs)) return false;
  }
  return true;
}

}  // namespace

Result<std::vector<Commit>> Repository::log(const LogOptions& options) const {
  std::vector<Commit> out;
  git_revwalk* walk_raw = nullptr;
  if (int rc = git_revwalk_new(&walk_raw, repo_.get()); rc < 0)
    return git_failure(rc, "start walk");
  RevwalkPtr walk(walk_raw);
  git_revwalk_sorting(walk.get(), GIT_SORT_TIME);
  if (head_is_unborn(repo_.get())) {
    if (options.since) {
      auto since = resolve_commit(repo_.get(), *options.since);
      if (!since) return std::move(since.error()).wrap("since");
    }
    return out;
  }
  if (int rc = git_revwalk_push_head(walk.get()); rc < 0) return git_failure(rc, "read HEAD");
  if (options.since) {
    auto since = resolve_commit(repo_.get(), *options.since);
    if (!since) return std::move(since.error()).wrap("since");
    if (int rc = git_revwalk_hide(walk.get(), &*since); rc < 0)
      return git_failure(rc, fmt::format("hide '{}'", *options.since));
  }

  git_oid oid;
  while (out.size() < static_cast<std::size_t>(options.limit)) {
    int rc = git_revwalk_next(&oid, walk.get());
    if (rc == GIT_ITEROVER) break;
    if (rc < 0) return git_failure(rc, "walk history");
    git_commit* commit_raw = nullptr;
    if (rc = git_commit_lookup(&commit_raw, repo_.get(), &oid); rc < 0)
      return git_failure(rc, fmt::format("read commit {}", oid_hex(&oid)));
    CommitPtr commit(commit_raw);
    if (options.path) {
      auto changed = touches(commit.get(), *options.path);
      if (!changed) return std::move(changed.error());
      if (!*changed) continue;
    }
    const git_signature* author = git_commit_author(commit.get());
    const char* summary = git_commit_summary(commit.get());
    out.push_back(Commit{oid_hex(&oid), author->name != nullptr ? author->name : "",
                         author->email != nullptr ? author->email : "", iso8601(author->when),
                         summary != nullptr ? summary : ""});
  }
  return out;
}

Result<std::vector<BlameLine>> Repository::blame(std::string_view path_view) const {
  std::string path(path_view);
  if (head_is_unborn(repo_.get()))
    return Error::described(
        ENOENT, fmt::format("'{}' is not in HEAD (the repository has no commits)", path));
  auto head = resolve_tree(repo_.get(), "HEAD");
  if (!head) return std::move(head.error());
  git_tree_entry* entry_raw = nullptr;
  int rc = git_tree_entry_bypath(&entry_raw, head->get(), path.c_str());
  TreeEntryPtr entry(entry_raw);
  if (rc == GIT_ENOTFOUND)
    return Error::described(ENOENT, fmt::format("'{}' is not in HEAD", path));
  if (rc < 0) return git_failure(rc, fmt::format("look up '{}' in HEAD", path));
  if (git_tree_entry_type(entry.get()) != GIT_OBJECT_BLOB)
    return Error::invalid(
        fmt::format("'{}' is a directory (or submodule) in HEAD, not a file", path));

  git_object* blob_raw = nullptr;
  if (rc = git_tree_entry_to_object(&blob_raw, repo_.get(), entry.get()); rc < 0)
    return git_failure(rc, fmt::format("read '{}'", path));
  BlobPtr blob(reinterpret_cast<git_blob*>(blob_raw));
  std::string_view content(static_cast<const char*>(git_blob_rawcontent(blob.get())),
                           static_cast<std::size_t>(git_blob_rawsize(blob.get())));
  std::vector<std::string_view> lines;
  for (std::size_t start = 0; start < content.size();) {
    auto nl = content.find('\n', start);
    if (nl == std::string_view::npos) nl = content.size();
    lines.push_back(content.substr(start, nl - start));
    start = nl + 1;
  }

  git_blame_options opts = GIT_BLAME_OPTIONS_INIT;
  git_blame* blame_raw = nullptr;
  rc = git_blame_file(&blame_raw, repo_.get(), path.c_str(), &opts);
  BlamePtr blame(blame_raw);
  if (rc < 0) return git_failure(rc, fmt::format("blame '{}'", path));

  std::vector<BlameLine> out;
  out.reserve(lines.size());
  std::uint32_t hunks = git_blame_get_hunk_count(blame.get());
  for (std::uint32_t h = 0; h < hunks; ++h) {
    const git_blame_hunk* hunk = git_blame_get_hunk_byindex(blame.get(), h);
    std::string commit = oid_hex(&hunk->final_commit_id);
    std::string author = hunk->final_signature != nullptr && hunk->final_signature->name != nullptr
                             ? hunk->final_signature->name
                             : "";
    for (std::size_t k = 0; k < hunk->lines_in_hunk; ++k) {
      std::size_t line = hunk->final_start_line_number + k;
      std::string_view text =
          line >= 1 && line <= lines.size() ? lines[line - 1] : std::string_view{};
      out.push_back(BlameLine{line, commit, author, std::string(text)});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const BlameLine& a, const BlameLine& b) { return a.line < b.line; });
  return out;
}

bool is_request_error(const Error& error) {
  return error.code() == EINVAL || error.code() == ENOENT;
}

Result<std::filesystem::path> resolve_in_workspace(const std::filesystem::path& workspace,
                                                   std::string_view relative,
                                                   std::string_view field) {
  auto rel = normalise_relative(relative, field);
  if (!rel) return std::move(rel.error());
  if (workspace.empty())
    return Error::invalid(
        fmt::format("{}: the step has no workspace to resolve '{}' in", field, relative));
  std::filesystem::path target = rel->empty() ? workspace : workspace / *rel;
  std::error_code ec;
  auto real_ws = std::filesystem::canonical(workspace, ec);
  if (ec) return Error(ec.value(), fmt::format("{}: workspace '{}'", field, workspace.string()));
  auto real_target = std::filesystem::weakly_canonical(target, ec);
  if (ec) return Error(ec.value(), fmt::format("{}: resolve '{}'", field, target.string()));
  auto diverge =
      std::mismatch(real_ws.begin(), real_ws.end(), real_target.begin(), real_target.end());
  if (diverge.first != real_ws.end())
    return Error::invalid(fmt::format("{}: '{}' leads outside the workspace (to '{}')", field,
                                      relative, real_target.string()));
  return target;
}

Result<std::string> repository_param(const nlohmann::json& params) {
  if (auto r = check_params_object(params); !r) return std::move(r.error());
  auto repo = string_param(params, "repo");
  if (!repo) return std::move(repo.error());
  return repo->value_or(".");
}

Result<DiffOptions> diff_options(const nlohmann::json& params) {
  if (auto r = check_params_object(params); !r) return std::move(r.error());
  DiffOptions out;
  auto from = string_param(params, "from");
  if (!from) return std::move(from.error());
  if (*from) {
    if ((*from)->empty()) return Error::invalid("params.from: empty revision");
    out.from = **from;
  }
  auto to = string_param(params, "to");
  if (!to) return std::move(to.error());
  if (*to && (*to)->empty()) return Error::invalid("params.to: empty revision");
  out.to = *to;
  auto context = integer_param(params, "context", 0, 100000);
  if (!context) return std::move(context.error());
  if (*context) out.context = static_cast<int>(**context);
  if (const auto* paths = find_param(params, "paths")) {
    if (!paths->is_array()) return param_type_error("paths", "array", *paths);
    for (std::size_t i = 0; i < paths->size(); ++i) {
      const auto& p = (*paths)[i];
      std::string field = fmt::format("params.paths[{}]", i);
      if (!p.is_string())
        return Error::invalid(fmt::format("{}: expected string, got {}", field, json_type(p)));
      auto norm = normalise_relative(p.get<std::string>(), field);
      if (!norm) return std::move(norm.error());
      if (norm->empty()) return Error::invalid(fmt::format("{}: empty path", field));
      out.paths.push_back(std::move(*norm));
    }
  }
  return out;
}

Result<LogOptions> log_options(const nlohmann::json& params) {
  if (auto r = check_params_object(params); !r) return std::move(r.error());
  LogOptions out;
  auto limit = integer_param(params, "limit", 1, 100000);
  if (!limit) return std::move(limit.error());
  if (*limit) out.limit = static_cast<int>(**limit);
  auto path = string_param(params, "path");
  if (!path) return std::move(path.error());
  if (*path) {
    auto norm = normalise_relative(**path, "params.path");
    if (!norm) return std::move(norm.error());
    if (!norm->empty()) out.path = std::move(*norm);  // "." = the whole tree: no filter
  }
  auto since = string_param(params, "since");
  if (!since) return std::move(since.error());
  if (*since && (*since)->empty()) return Error::invalid("params.since: empty revision");
  out.since = *since;
  return out;
}

Result<std::string> blame_path(const nlohmann::json& params) {
  if (auto r = check_params_object(params); !r) return std::move(r.error());
  auto path = string_param(params, "path");
  if (!path) return std::move(path.error());
  if (!*path) return Error::invalid("params.path: missing required parameter (the file to blame)");
  auto norm = normalise_relative(**path, "params.path");
  if (!norm) return std::move(norm.error());
  if (norm->empty()) return Error::invalid("params.path: names the repository root, not a file");
  return std::move(*norm);
}

nlohmann::json to_json(const Status& status) {
  auto entries = nlohmann::json::array();
  for (const auto& e : status.entries) {
    nlohmann::json j = {{"path", ext::valid_utf8(e.path)},
                        {"index", to_string(e.index)},
                        {"worktree", to_string(e.worktree)}};
    if (!e.old_path.empty()) j["old_path"] = ext::valid_utf8(e.old_path);
    entries.push_back(std::move(j));
  }
  return {{"branch", status.branch ? nlohmann::json(ext::valid_utf8(*status.branch)) : nlohmann::json()},
          {"head", status.head ? nlohmann::json(*status.head) : nlohmann::json()},
          {"entries", std::move(entries)},
          {"clean", status.clean()}};
}

nlohmann::json to_json(const std::vector<Commit>& log) {
  auto out = nlohmann::json::array();
  for (const auto& c : log)
    out.push_back({{"commit", c.commit},
                   {"author", ext::valid_utf8(c.author)},
                   {"email", ext::valid_utf8(c.email)},
                   {"time", c.time},
                   {"summary", ext::valid_utf8(c.summary)}});
  return out;
}

nlohmann::json to_json(const std::vector<BlameLine>& blame) {
  auto out = nlohmann::json::array();
  for (const auto& l : blame)
    out.push_back({{"line", l.line},
                   {"commit", l.commit},
                   {"author", ext::valid_utf8(l.author)},
                   {"text", ext::valid_utf8(l.text)}});
  return out;
}

nlohmann::json diff_summary(const Diff& diff) {
  return {{"files_changed", diff.files_changed},
          {"insertions", diff.insertions},
          {"deletions", diff.deletions}};
}

}  // namespace symphony::extensions::git
