// Write conflicts: two steps produced a new version of the same artifact
// name concurrently, both starting from the same base version. The resolver
// applies the configured policy — highest_quality, latest, keep_both or a
// three-way text merge (libgit2's git_merge_file) with a secondary policy
// when the merge conflicts — and records every decision in a DecisionLog
// before returning it, so `pit stats` and audits can say why a version won.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "pit/arbiter/decision_log.h"

namespace symphony::pit {

// One side of a conflict (or the base both started from). `ref` is the
// artifact reference as the store writes it ("name@3"); `text` holds the
// bytes when the artifact is text and merge3 may need them.
struct VersionCandidate {
  std::string ref;
  std::optional<double> quality;  // in [0, 1]; none ranks below any score
  std::chrono::system_clock::time_point created;
  std::optional<std::string> text;
};

struct ConflictInput {
  std::string artifact;                 // the contested name
  std::optional<VersionCandidate> base; // the version both started from (none: both were first)
  VersionCandidate a;                   // the version committed first
  VersionCandidate b;
};

struct ResolverOptions {
  ConflictPolicy policy = ConflictPolicy::highest_quality;
  // Used when merge3 cannot produce a clean merge (conflict, binary or
  // missing text, no base). Must not be merge3.
  ConflictPolicy merge_fallback = ConflictPolicy::keep_both;
};

// What `resolve` decided; `record` is what went to the log.
struct Decision {
  DecisionRecord record;
  std::string merged;  // the merged bytes when record.outcome == merged
};

struct ConflictStats {
  std::array<std::uint64_t, kConflictPolicyCount> resolved_by_policy{};  // by the policy that decided
  std::uint64_t merge_fallbacks = 0;
  std::uint64_t log_failures = 0;
};

class ConflictResolver {
 public:
  // `log` must outlive the resolver. EINVAL when merge_fallback is merge3.
  static Result<std::unique_ptr<ConflictResolver>> create(ResolverOptions options, DecisionLog& log);
  ~ConflictResolver();

  // Decides, appends the decision to the log (durably, for the file log),
  // and only then returns it. An error from the log is returned as is and
  // the decision must be treated as not taken. Thread-safe.
  Result<Decision> resolve(const ConflictInput& input);

  ConflictStats stats() const;

 private:
  ConflictResolver(ResolverOptions options, DecisionLog& log);
  ResolverOptions options_;
  DecisionLog& log_;
  mutable std::mutex mu_;
  ConflictStats stats_;
  std::uint64_t next_seq_ = 1;
};

// The three-way merge on its own: base/ours/theirs texts to the merged text,
// or nullopt when the merge conflicts. EINVAL for binary input (a NUL byte);
// errors from libgit2 are passed up with its message.
Result<std::optional<std::string>> merge_text(std::string_view base, std::string_view ours, std::string_view theirs);

}  // namespace symphony::pit
