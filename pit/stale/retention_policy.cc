// Policy arithmetic and the config glue for [pit.retention.<kind>] tables.
#include "pit/stale/retention_policy.h"

#include <algorithm>

namespace symphony::pit::stale {
namespace {

constexpr std::string_view kRetention = "pit.retention";
constexpr std::int64_t kMaxDays = 36500;  // a century: far enough, and no overflow in sums

}  // namespace

std::string_view to_string(Stage stage) {
  switch (stage) {
    case Stage::active: return "active";
    case Stage::archived: return "archived";
    case Stage::remote: return "remote";
    case Stage::deleted: return "deleted";
  }
  return "?";
}

Stage stage_for(const RetentionPolicy& p, std::chrono::system_clock::duration age,
                HaveRemote remote) {
  using std::chrono::days;
  const auto archive_at = p.active_days;
  const auto remote_at = archive_at + p.archive_days;
  const auto delete_at = remote_at + p.remote_days;
  // The tier a version rests in once its periods are over, when kept forever.
  auto last = [&] {
    if (p.remote_days > days{0} && remote == HaveRemote::yes) return Stage::remote;
    if (p.archive_days > days{0} || p.remote_days > days{0}) return Stage::archived;
    return Stage::active;
  };
  if (age >= delete_at) return p.keep_forever ? last() : Stage::deleted;
  if (age >= remote_at) return remote == HaveRemote::yes ? Stage::remote : Stage::archived;
  if (age >= archive_at) return Stage::archived;
  return Stage::active;
}

const RetentionPolicy& policy_for(std::span<const RetentionPolicy> policies, std::string_view kind) {
  static const RetentionPolicy builtin;
  const RetentionPolicy* fallback = &builtin;
  for (const auto& p : policies) {
    if (p.kind == kind) return p;
    if (p.kind == "default") fallback = &p;
  }
  return *fallback;
}

void add_stale_keys(config::Schema& schema) {
  using config::Type;
  RetentionPolicy d;
  schema.add({.key = "pit.retention.*.active_days",
              .type = Type::integer,
              .default_value = std::int64_t{d.active_days.count()},
              .min = 0,
              .max = kMaxDays,
              .doc = "Days after creation a version of this artifact kind stays in the active "
                     "store (kinds without a table use [pit.retention.default])."});
  schema.add({.key = "pit.retention.*.archive_days",
              .type = Type::integer,
              .default_value = std::int64_t{d.archive_days.count()},
              .min = 0,
              .max = kMaxDays,
              .doc = "Days it then stays zstd-compressed in the archive directory (0 skips the "
                     "archive)."});
  schema.add({.key = "pit.retention.*.remote_days",
              .type = Type::integer,
              .default_value = std::int64_t{d.remote_days.count()},
              .min = 0,
              .max = kMaxDays,
              .doc = "Days it then stays in the remote tier (0 skips it) before it is deleted."});
  schema.add({.key = "pit.retention.*.keep_forever",
              .type = Type::boolean,
              .default_value = d.keep_forever,
              .doc = "Never delete: keep versions in their last tier once the periods are over."});
  schema.add({.key = "pit.stale.archive_dir",
              .type = Type::string,
              .default_value = std::string(),
              .doc = "Directory of the archive tier (empty: pit/archive under the state "
                     "directory)."});
  schema.add({.key = "pit.stale.remote_dir",
              .type = Type::string,
              .default_value = std::string(),
              .doc = "Directory of the remote tier, e.g. a network mount (empty: no remote "
                     "tier)."});
  schema.add({.key = "pit.stale.leftover_min_age_s",
              .type = Type::integer,
              .default_value = std::int64_t{3600},
              .min = 60,
              .max = 30 * 24 * 3600,
              .doc = "Temporary files of a dead process are removed once this old."});
  schema.add({.key = "pit.stale.slice_items",
              .type = Type::integer,
              .default_value = std::int64_t{64},
              .min = 1,
              .max = 100000,
              .doc = "Most versions one slice of stale-manager work moves."});
  schema.add({.key = "pit.stale.slice_ms",
              .type = Type::integer,
              .default_value = std::int64_t{20},
              .min = 1,
              .max = 60000,
              .doc = "Longest one slice of stale-manager work runs, in milliseconds."});
}

Result<std::vector<RetentionPolicy>> retention_policies(const config::Config& config) {
  std::vector<std::string> kinds = config.instances(kRetention);
  kinds.erase(std::remove(kinds.begin(), kinds.end(), "default"), kinds.end());
  kinds.insert(kinds.begin(), "default");

  std::vector<RetentionPolicy> out;
  for (const std::string& kind : kinds) {
    std::string base = std::string(kRetention) + "." + kind + ".";
    // A key this kind's table leaves out comes from [pit.retention.default].
    auto pick = [&](const char* field) {
      std::string key = base + field;
      if (kind != "default" && config.origin(key).source == "default") {
        return std::string(kRetention) + ".default." + field;
      }
      return key;
    };
    RetentionPolicy p;
    p.kind = kind;
    p.active_days = std::chrono::days{config.get_int(pick("active_days"))};
    p.archive_days = std::chrono::days{config.get_int(pick("archive_days"))};
    p.remote_days = std::chrono::days{config.get_int(pick("remote_days"))};
    p.keep_forever = config.get_bool(pick("keep_forever"));
    out.push_back(std::move(p));
  }
  return out;
}

StaleSettings stale_settings(const config::Config& config) {
  StaleSettings s;
  s.archive_dir = config.get_string("pit.stale.archive_dir");
  s.remote_dir = config.get_string("pit.stale.remote_dir");
  s.leftover_min_age = std::chrono::seconds{config.get_int("pit.stale.leftover_min_age_s")};
  s.slice_items = static_cast<std::size_t>(config.get_int("pit.stale.slice_items"));
  s.slice_time = std::chrono::milliseconds{config.get_int("pit.stale.slice_ms")};
  return s;
}

}  // namespace symphony::pit::stale
