// The decision log's JSON-lines format and its file and memory backends.
// nlohmann::json is used in its non-throwing forms (parse with
// allow_exceptions = false, dump with invalid UTF-8 replaced), so no
// exception leaves this file.
#include "pit/arbiter/decision_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <nlohmann/json.hpp>

namespace symphony::pit {
namespace {

using nlohmann::json;
constexpr int kFormatVersion = 1;

json candidate_json(const CandidateSummary& c) {
  json j = {{"ref", c.ref}, {"created_ms", c.created_ms}};
  j["quality"] = c.quality ? json(*c.quality) : json(nullptr);
  return j;
}

// Typed field readers: each returns an error naming the field.
Result<std::string> get_string(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return Error::invalid(std::string("field \"") + key + "\" missing or not a string");
  return it->get<std::string>();
}
Result<std::int64_t> get_int(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer())
    return Error::invalid(std::string("field \"") + key + "\" missing or not an integer");
  return it->get<std::int64_t>();
}
Result<bool> get_bool(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_boolean()) return Error::invalid(std::string("field \"") + key + "\" missing or not a boolean");
  return it->get<bool>();
}

Result<CandidateSummary> get_candidate(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_object()) return Error::invalid(std::string("field \"") + key + "\" missing or not an object");
  CandidateSummary c;
  auto ref = get_string(*it, "ref");
  if (!ref) return std::move(ref.error().wrap(key));
  c.ref = std::move(*ref);
  auto created = get_int(*it, "created_ms");
  if (!created) return std::move(created.error().wrap(key));
  c.created_ms = *created;
  auto q = it->find("quality");
  if (q != it->end() && !q->is_null()) {
    if (!q->is_number()) return Error::invalid(std::string(key) + ": field \"quality\" is not a number");
    c.quality = q->get<double>();
  }
  return c;
}

}  // namespace

std::string_view to_string(ConflictPolicy policy) {
  switch (policy) {
    case ConflictPolicy::highest_quality: return "highest_quality";
    case ConflictPolicy::latest: return "latest";
    case ConflictPolicy::keep_both: return "keep_both";
    case ConflictPolicy::merge3: return "merge3";
  }
  return "?";
}

Result<ConflictPolicy> parse_conflict_policy(std::string_view text) {
  for (auto p : {ConflictPolicy::highest_quality, ConflictPolicy::latest, ConflictPolicy::keep_both, ConflictPolicy::merge3})
    if (text == to_string(p)) return p;
  return Error::invalid("unknown conflict policy \"" + std::string(text) +
                        "\" (expected highest_quality, latest, keep_both or merge3)");
}

std::string_view to_string(DecisionOutcome outcome) {
  switch (outcome) {
    case DecisionOutcome::take_a: return "take_a";
    case DecisionOutcome::take_b: return "take_b";
    case DecisionOutcome::keep_both: return "keep_both";
    case DecisionOutcome::merged: return "merged";
  }
  return "?";
}

Result<DecisionOutcome> parse_decision_outcome(std::string_view text) {
  for (auto o : {DecisionOutcome::take_a, DecisionOutcome::take_b, DecisionOutcome::keep_both, DecisionOutcome::merged})
    if (text == to_string(o)) return o;
  return Error::invalid("unknown decision outcome \"" + std::string(text) + "\"");
}

std::string to_json_line(const DecisionRecord& r) {
  json j = {
      {"v", kFormatVersion},
      {"seq", r.seq},
      {"time_ms", r.time_ms},
      {"artifact", r.artifact},
      {"policy", std::string(to_string(r.policy))},
      {"applied", std::string(to_string(r.applied))},
      {"outcome", std::string(to_string(r.outcome))},
      {"winner", r.winner},
      {"alternative", r.alternative},
      {"a", candidate_json(r.a)},
      {"b", candidate_json(r.b)},
      {"merged_digest", r.merged_digest},
      {"merged_size", r.merged_size},
      {"fell_back", r.fell_back},
      {"reason", r.reason},
  };
  j["base"] = r.base ? json(*r.base) : json(nullptr);
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<DecisionRecord> parse_json_line(std::string_view line) {
  json j = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error::invalid("not valid JSON");
  if (!j.is_object()) return Error::invalid("not a JSON object");
  auto v = get_int(j, "v");
  if (!v) return std::move(v).error();
  if (*v != kFormatVersion) return Error::invalid("unsupported format version " + std::to_string(*v));
  DecisionRecord r;
  auto seq = get_int(j, "seq");
  if (!seq) return std::move(seq).error();
  if (*seq < 0) return Error::invalid("field \"seq\" is negative");
  r.seq = static_cast<std::uint64_t>(*seq);
  auto time = get_int(j, "time_ms");
  if (!time) return std::move(time).error();
  r.time_ms = *time;
  for (auto [key, out] : {std::pair{"artifact", &r.artifact}, std::pair{"winner", &r.winner},
                          std::pair{"alternative", &r.alternative}, std::pair{"merged_digest", &r.merged_digest},
                          std::pair{"reason", &r.reason}}) {
    auto s = get_string(j, key);
    if (!s) return std::move(s).error();
    *out = std::move(*s);
  }
  auto policy = get_string(j, "policy");
  if (!policy) return std::move(policy).error();
  auto p = parse_conflict_policy(*policy);
  if (!p) return std::move(p).error();
  r.policy = *p;
  auto applied = get_string(j, "applied");
  if (!applied) return std::move(applied).error();
  auto ap = parse_conflict_policy(*applied);
  if (!ap) return std::move(ap).error();
  r.applied = *ap;
  auto outcome = get_string(j, "outcome");
  if (!outcome) return std::move(outcome).error();
  auto o = parse_decision_outcome(*outcome);
  if (!o) return std::move(o).error();
  r.outcome = *o;
  auto a = get_candidate(j, "a");
  if (!a) return std::move(a).error();
  r.a = std::move(*a);
  auto b = get_candidate(j, "b");
  if (!b) return std::move(b).error();
  r.b = std::move(*b);
  auto size = get_int(j, "merged_size");
  if (!size) return std::move(size).error();
  if (*size < 0) return Error::invalid("field \"merged_size\" is negative");
  r.merged_size = static_cast<std::uint64_t>(*size);
  auto fell_back = get_bool(j, "fell_back");
  if (!fell_back) return std::move(fell_back).error();
  r.fell_back = *fell_back;
  auto base = j.find("base");
  if (base != j.end() && !base->is_null()) {
    if (!base->is_string()) return Error::invalid("field \"base\" is not a string");
    r.base = base->get<std::string>();
  }
  return r;
}

ssize_t DecisionLogIo::write(int fd, const void* data, std::size_t size) { return ::write(fd, data, size); }
int DecisionLogIo::fsync(int fd) { return ::fsync(fd); }

namespace {

DecisionLogIo& default_io() {
  static DecisionLogIo io;
  return io;
}

Result<void> write_all(DecisionLogIo& io, int fd, std::string_view data, const std::filesystem::path& path) {
  while (!data.empty()) {
    ssize_t n = io.write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("write " + path.string());
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return ok();
}

}  // namespace

FileDecisionLog::FileDecisionLog(std::filesystem::path path, UniqueFd fd, DecisionLogIo& io, bool needs_newline)
    : path_(std::move(path)), fd_(std::move(fd)), io_(io), needs_newline_(needs_newline) {}

Result<std::unique_ptr<FileDecisionLog>> FileDecisionLog::open(std::filesystem::path path, DecisionLogIo* io) {
  DecisionLogIo& use = io ? *io : default_io();
  bool existed = ::access(path.c_str(), F_OK) == 0;
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
  if (!fd) return Error::from_errno("open decision log " + path.string());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno("stat decision log " + path.string());
  bool needs_newline = false;
  if (st.st_size > 0) {
    char last = 0;
    if (::pread(fd.get(), &last, 1, st.st_size - 1) != 1) return Error::from_errno("read decision log " + path.string());
    needs_newline = last != '\n';  // a torn line from a crash mid-append
  }
  if (!existed) {
    // The new file's name must survive a crash too.
    auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dfd) return Error::from_errno("open directory " + dir.string());
    if (use.fsync(dfd.get()) != 0) return Error::from_errno("fsync directory " + dir.string());
  }
  return std::unique_ptr<FileDecisionLog>(new FileDecisionLog(std::move(path), std::move(fd), use, needs_newline));
}

Result<void> FileDecisionLog::append(const DecisionRecord& record) {
  std::string line;
  std::lock_guard lock(mu_);
  if (needs_newline_) line = "\n";
  line += to_json_line(record);
  line += '\n';
  // O_APPEND: one write() per record, so concurrent writers in other
  // processes could not interleave within a line either.
  if (auto w = write_all(io_, fd_.get(), line, path_); !w) return std::move(w.error().wrap("append decision"));
  needs_newline_ = false;
  if (io_.fsync(fd_.get()) != 0) return Error::from_errno("fsync decision log " + path_.string());
  return ok();
}

Result<DecisionLogContents> FileDecisionLog::read_all() const {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return Error::from_errno("open decision log " + path_.string());
  DecisionLogContents out;
  std::string line;
  std::size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;  // the separator after a torn line
    auto r = parse_json_line(line);
    if (r) {
      out.records.push_back(std::move(*r));
    } else {
      out.bad_lines.push_back(Error::invalid(path_.string() + ":" + std::to_string(number) + ": " + r.error().message()));
    }
  }
  if (in.bad()) return Error::from_errno("read decision log " + path_.string());
  return out;
}

Result<void> MemoryDecisionLog::append(const DecisionRecord& record) {
  std::lock_guard lock(mu_);
  records_.push_back(record);
  return ok();
}

Result<DecisionLogContents> MemoryDecisionLog::read_all() const {
  std::lock_guard lock(mu_);
  return DecisionLogContents{records_, {}};
}

}  // namespace symphony::pit
