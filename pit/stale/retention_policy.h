// Retention policies: how long a version of each artifact kind stays in each
// tier. Ages are measured from the version's creation, and the periods add
// up: a version is active for active_days, then archived for archive_days,
// then remote for remote_days, then deleted — unless keep_forever, in which
// case it stays in its last tier. A period of 0 skips that tier. Policies
// come from the daemon's config as one table per kind under
// [pit.retention.<kind>]; a kind without a table uses "default", and a key a
// kind's table leaves out is taken from the "default" table.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/config.h"
#include "base/result.h"

namespace symphony::pit::stale {

struct RetentionPolicy {
  std::string kind = "default";
  std::chrono::days active_days{30};
  std::chrono::days archive_days{90};   // 0: no archive period
  std::chrono::days remote_days{365};   // 0: no remote period
  bool keep_forever = false;            // never delete; stay in the last tier
  friend bool operator==(const RetentionPolicy&, const RetentionPolicy&) = default;
};

// Where a version is in its life; each step moves it right, never left.
enum class Stage { active, archived, remote, deleted };
std::string_view to_string(Stage stage);

// Whether the deployment has a remote tier: without one, a version stays
// archived through its remote period (a missing tier never shortens how long
// bytes are kept).
enum class HaveRemote : bool { no = false, yes = true };

// The stage a version of age `age` belongs in under `policy`.
Stage stage_for(const RetentionPolicy& policy, std::chrono::system_clock::duration age,
                HaveRemote remote);

// The policy for `kind`: its own, else the one of kind "default", else the
// built-in default (RetentionPolicy{}). `policies` is what
// retention_policies() returned.
const RetentionPolicy& policy_for(std::span<const RetentionPolicy> policies, std::string_view kind);

// Adds the stale manager's keys to the daemon's schema:
//   pit.retention.*.{active_days,archive_days,remote_days,keep_forever}
//   pit.stale.{archive_dir,remote_dir,leftover_min_age_s,slice_items,slice_ms}
void add_stale_keys(config::Schema& schema);

// One policy per kind the config names under [pit.retention.<kind>], plus
// "default" always (first, then by kind name). Type and range errors are
// reported by the config merge itself (file, line, key), so with a config
// built on a schema that add_stale_keys() filled this does not fail today;
// the Result leaves room for checks across keys.
Result<std::vector<RetentionPolicy>> retention_policies(const config::Config& config);

// The rest of the stale manager's settings, as the config holds them.
struct StaleSettings {
  std::string archive_dir;  // "" = the daemon's choice (<state_dir>/pit/archive)
  std::string remote_dir;   // "" = no remote tier
  std::chrono::seconds leftover_min_age{3600};
  std::size_t slice_items = 64;
  std::chrono::milliseconds slice_time{20};
  friend bool operator==(const StaleSettings&, const StaleSettings&) = default;
};
StaleSettings stale_settings(const config::Config& config);

}  // namespace symphony::pit::stale
