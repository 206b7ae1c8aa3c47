// Conflict policies and the libgit2-backed three-way merge. Every ordering
// rule ends in a deterministic tie-break (b, the later commit, wins a full
// tie) so replaying the same inputs gives the same decision.
#include "pit/arbiter/conflict_resolver.h"

#include <git2.h>

#include <cstdio>
#include <memory>

#include "pit/digest.h"

namespace symphony::pit {
namespace {

std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string quality_str(const std::optional<double>& q) {
  if (!q) return "no score";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", *q);
  return buf;
}

// Which side wins and why, for the two ordering policies.
struct Pick {
  bool a_wins = false;
  std::string reason;
};

Pick by_quality(const VersionCandidate& a, const VersionCandidate& b) {
  double qa = a.quality.value_or(-1.0), qb = b.quality.value_or(-1.0);
  if (qa != qb) {
    bool a_wins = qa > qb;
    const auto& w = a_wins ? a : b;
    const auto& l = a_wins ? b : a;
    return {a_wins, w.ref + " has quality " + quality_str(w.quality) + ", " + l.ref + " has " + quality_str(l.quality)};
  }
  std::string tie = a.quality ? "equal quality " + quality_str(a.quality) : std::string("neither has a quality score");
  if (a.created != b.created) {
    bool a_wins = a.created > b.created;
    return {a_wins, tie + "; " + (a_wins ? a.ref : b.ref) + " is newer"};
  }
  return {false, tie + " and equal creation time; " + b.ref + " was committed last"};
}

Pick by_time(const VersionCandidate& a, const VersionCandidate& b) {
  if (a.created != b.created) {
    bool a_wins = a.created > b.created;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(a_wins ? a.created - b.created : b.created - a.created);
    return {a_wins, (a_wins ? a.ref : b.ref) + " was created " + std::to_string(ms.count()) + " ms after " +
                        (a_wins ? b.ref : a.ref)};
  }
  Pick q = by_quality(a, b);
  q.reason = "same creation time; " + q.reason;
  return q;
}

}  // namespace

Result<std::optional<std::string>> merge_text(std::string_view base, std::string_view ours, std::string_view theirs) {
  for (auto [what, text] : {std::pair{"base", base}, std::pair{"ours", ours}, std::pair{"theirs", theirs}})
    if (text.find('\0') != std::string_view::npos)
      return Error::invalid(std::string("merge3: the ") + what + " text is binary (contains a NUL byte)");
  // libgit2 keeps process-wide state; initialized once, never shut down
  // (the daemon merges for its whole life).
  static const int init = git_libgit2_init();
  if (init < 0) return Error::described(EIO, "merge3: libgit2 failed to initialize");

  auto input = [](std::string_view text) {
    git_merge_file_input in;
    git_merge_file_input_init(&in, GIT_MERGE_FILE_INPUT_VERSION);
    in.ptr = text.data();
    in.size = text.size();
    return in;
  };
  git_merge_file_input b = input(base), o = input(ours), t = input(theirs);
  git_merge_file_options opts;
  git_merge_file_options_init(&opts, GIT_MERGE_FILE_OPTIONS_VERSION);
  git_merge_file_result res{};
  if (git_merge_file(&res, &b, &o, &t, &opts) != 0) {
    const git_error* e = git_error_last();
    return Error::described(EIO, std::string("merge3: git_merge_file failed: ") + (e && e->message ? e->message : "unknown error"));
  }
  std::unique_ptr<git_merge_file_result, void (*)(git_merge_file_result*)> guard(&res, git_merge_file_result_free);
  if (!res.automergeable) return std::optional<std::string>();
  return std::optional<std::string>(std::string(res.ptr ? res.ptr : "", res.len));
}

ConflictResolver::ConflictResolver(ResolverOptions options, DecisionLog& log) : options_(options), log_(log) {}
ConflictResolver::~ConflictResolver() = default;

Result<std::unique_ptr<ConflictResolver>> ConflictResolver::create(ResolverOptions options, DecisionLog& log) {
  if (options.merge_fallback == ConflictPolicy::merge3)
    return Error::invalid("conflict resolver: merge_fallback cannot be merge3 (it is what merge3 falls back from)");
  return std::unique_ptr<ConflictResolver>(new ConflictResolver(options, log));
}

Result<Decision> ConflictResolver::resolve(const ConflictInput& in) {
  Decision d;
  DecisionRecord& r = d.record;
  r.time_ms = unix_ms(std::chrono::system_clock::now());
  r.artifact = in.artifact;
  r.policy = options_.policy;
  r.applied = options_.policy;
  if (in.base) r.base = in.base->ref;
  r.a = CandidateSummary{in.a.ref, in.a.quality, unix_ms(in.a.created)};
  r.b = CandidateSummary{in.b.ref, in.b.quality, unix_ms(in.b.created)};

  std::string prefix;
  if (r.applied == ConflictPolicy::merge3) {
    std::string why_not;
    if (!in.base || !in.base->text) {
      why_not = "no base text";
    } else if (!in.a.text || !in.b.text) {
      why_not = "a side has no text";
    } else {
      auto merged = merge_text(*in.base->text, *in.a.text, *in.b.text);
      if (!merged) {
        why_not = merged.error().message();
      } else if (!*merged) {
        why_not = "the merge of " + in.a.ref + " and " + in.b.ref + " onto " + in.base->ref + " conflicts";
      } else {
        d.merged = std::move(**merged);
        r.outcome = DecisionOutcome::merged;
        r.merged_digest = Digest::of(std::string_view(d.merged)).to_string();
        r.merged_size = d.merged.size();
        r.reason = "three-way merge of " + in.a.ref + " and " + in.b.ref + " onto " + in.base->ref + " is clean (" +
                   std::to_string(d.merged.size()) + " bytes)";
      }
    }
    if (!why_not.empty()) {
      r.fell_back = true;
      r.applied = options_.merge_fallback;
      prefix = "merge3 not possible (" + why_not + "); fell back to " + std::string(to_string(r.applied)) + ": ";
    }
  }
  switch (r.applied) {
    case ConflictPolicy::highest_quality:
    case ConflictPolicy::latest: {
      Pick p = r.applied == ConflictPolicy::latest ? by_time(in.a, in.b) : by_quality(in.a, in.b);
      r.outcome = p.a_wins ? DecisionOutcome::take_a : DecisionOutcome::take_b;
      r.winner = p.a_wins ? in.a.ref : in.b.ref;
      r.reason = prefix + r.winner + " wins: " + p.reason;
      break;
    }
    case ConflictPolicy::keep_both: {
      Pick p = by_quality(in.a, in.b);
      r.outcome = DecisionOutcome::keep_both;
      r.winner = p.a_wins ? in.a.ref : in.b.ref;
      r.alternative = p.a_wins ? in.b.ref : in.a.ref;
      r.reason = prefix + "both kept; " + r.winner + " is primary and " + r.alternative + " its alternative (" +
                 p.reason + ")";
      break;
    }
    case ConflictPolicy::merge3:
      break;  // decided above
  }

  std::lock_guard lock(mu_);
  r.seq = next_seq_++;
  if (auto logged = log_.append(r); !logged) {
    ++stats_.log_failures;
    return std::move(logged.error().wrap("record conflict decision for " + in.artifact));
  }
  ++stats_.resolved_by_policy[static_cast<std::size_t>(r.applied)];
  if (r.fell_back) ++stats_.merge_fallbacks;
  return d;
}

ConflictStats ConflictResolver::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace symphony::pit
