// The record of every write-conflict decision: which version won and why.
// DecisionLog is the interface the resolver writes to; FileDecisionLog keeps
// it as append-only JSON lines, each flushed to stable storage (fsync)
// before append() returns, so a decision the caller acted on is never lost.
// Reading back tolerates damage: a torn or corrupt line is reported with
// "file:line" and skipped, never fatal. Format: docs/pit/arbiter.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace symphony::pit {

enum class ConflictPolicy : std::uint8_t { highest_quality, latest, keep_both, merge3 };
inline constexpr std::size_t kConflictPolicyCount = 4;
std::string_view to_string(ConflictPolicy policy);
Result<ConflictPolicy> parse_conflict_policy(std::string_view text);

// take_a / take_b: that version stays the latest, the other is discarded
// from the name's history (the store keeps it as an unreferenced version for
// audit). keep_both: `winner` is the primary, `alternative` is recorded as
// its alternative. merged: a new version holds the merged text.
enum class DecisionOutcome : std::uint8_t { take_a, take_b, keep_both, merged };
std::string_view to_string(DecisionOutcome outcome);
Result<DecisionOutcome> parse_decision_outcome(std::string_view text);

struct CandidateSummary {
  std::string ref;
  std::optional<double> quality;
  std::int64_t created_ms = 0;  // Unix milliseconds
  friend bool operator==(const CandidateSummary&, const CandidateSummary&) = default;
};

struct DecisionRecord {
  std::uint64_t seq = 0;       // per resolver run, for ordering within a file
  std::int64_t time_ms = 0;    // Unix milliseconds when decided
  std::string artifact;
  ConflictPolicy policy = ConflictPolicy::highest_quality;   // configured
  ConflictPolicy applied = ConflictPolicy::highest_quality;  // that decided (≠ policy after a fallback)
  DecisionOutcome outcome = DecisionOutcome::take_a;
  std::string winner;       // ref that stays latest / primary; empty for merged
  std::string alternative;  // keep_both: the other ref; else empty
  std::optional<std::string> base;  // base ref
  CandidateSummary a;
  CandidateSummary b;
  std::string merged_digest;  // "sha256:…" of the merged text (merged only)
  std::uint64_t merged_size = 0;
  bool fell_back = false;
  std::string reason;  // human-readable
  friend bool operator==(const DecisionRecord&, const DecisionRecord&) = default;
};

// One line of JSON, no newline.
std::string to_json_line(const DecisionRecord& record);
// EINVAL with what is wrong (not where; the reader adds file:line).
Result<DecisionRecord> parse_json_line(std::string_view line);

struct DecisionLogContents {
  std::vector<DecisionRecord> records;
  std::vector<Error> bad_lines;  // "path:line: what is wrong", file order
};

class DecisionLog {
 public:
  virtual ~DecisionLog() = default;
  // Durable when it returns success.
  virtual Result<void> append(const DecisionRecord& record) = 0;
  // Every readable record, and the lines that could not be read.
  virtual Result<DecisionLogContents> read_all() const = 0;
};

// The file calls FileDecisionLog makes, so tests can count fsyncs and
// inject failures. The default forwards to the kernel.
struct DecisionLogIo {
  virtual ~DecisionLogIo() = default;
  virtual ssize_t write(int fd, const void* data, std::size_t size);
  virtual int fsync(int fd);
};

class FileDecisionLog final : public DecisionLog {
 public:
  // Opens (creating it and flushing its directory if new) `path` for
  // appending. A torn last line from a crash is left for read_all() to
  // report, and the next record starts on a new line. `io` (optional) must
  // outlive the log.
  static Result<std::unique_ptr<FileDecisionLog>> open(std::filesystem::path path, DecisionLogIo* io = nullptr);

  Result<void> append(const DecisionRecord& record) override;
  Result<DecisionLogContents> read_all() const override;
  const std::filesystem::path& path() const { return path_; }

 private:
  FileDecisionLog(std::filesystem::path path, UniqueFd fd, DecisionLogIo& io, bool needs_newline);
  std::filesystem::path path_;
  UniqueFd fd_;
  DecisionLogIo& io_;
  mutable std::mutex mu_;
  bool needs_newline_;
};

// Keeps records in memory (tests, or a daemon run without a state dir).
class MemoryDecisionLog final : public DecisionLog {
 public:
  Result<void> append(const DecisionRecord& record) override;
  Result<DecisionLogContents> read_all() const override;

 private:
  mutable std::mutex mu_;
  std::vector<DecisionRecord> records_;
};

}  // namespace symphony::pit
