// Retention policies: parsing [pit.retention.<kind>] tables (inheritance from
// "default", errors with file:line:key) and the age → stage arithmetic.
#include "pit/stale/retention_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace symphony::pit::stale {
namespace {

using std::chrono::days;
using std::chrono::hours;
using ::testing::HasSubstr;

config::Schema stale_schema() {
  config::Schema schema;
  add_stale_keys(schema);
  return schema;
}

class RetentionConfig : public ::testing::Test {
 protected:
  config::Schema schema_ = stale_schema();
  config::Config config_{schema_};
};

TEST_F(RetentionConfig, TablesPerKindInheritUnsetKeysFromDefault) {
  auto r = config_.merge_text(
      "[pit.retention.default]\n"
      "active_days = 30\n"
      "archive_days = 90\n"
      "remote_days = 365\n"
      "[pit.retention.report]\n"
      "active_days = 7\n"
      "[pit.retention.model]\n"
      "keep_forever = true\n"
      "remote_days = 0\n",
      "symphonyd.toml");
  ASSERT_TRUE(r) << r.error().message();
  auto policies = retention_policies(config_);
  ASSERT_TRUE(policies) << policies.error().message();
  ASSERT_EQ(policies->size(), 3u);
  EXPECT_EQ((*policies)[0], (RetentionPolicy{"default", days{30}, days{90}, days{365}, false}));
  EXPECT_EQ((*policies)[1], (RetentionPolicy{"model", days{30}, days{90}, days{0}, true}));
  EXPECT_EQ((*policies)[2], (RetentionPolicy{"report", days{7}, days{90}, days{365}, false}));
  EXPECT_EQ(policy_for(*policies, "report").active_days, days{7});
  // A kind without a table gets the default policy.
  EXPECT_EQ(policy_for(*policies, "log").kind, "default");
}

TEST_F(RetentionConfig, DefaultKindInheritsFromTheSchemaDefaults) {
  ASSERT_TRUE(config_.merge_text("[pit.retention.default]\narchive_days = 10\n", "a.toml"));
  ASSERT_TRUE(config_.merge_text("[pit.retention.report]\nactive_days = 1\n", "b.toml"));
  auto policies = retention_policies(config_);
  ASSERT_TRUE(policies);
  // report's archive_days comes from the configured default, not the schema's.
  EXPECT_EQ(policy_for(*policies, "report").archive_days, days{10});
  EXPECT_EQ(policy_for(*policies, "default").active_days, RetentionPolicy{}.active_days);
}

TEST_F(RetentionConfig, NoTablesGivesTheBuiltInDefault) {
  auto policies = retention_policies(config_);
  ASSERT_TRUE(policies);
  ASSERT_EQ(policies->size(), 1u);
  EXPECT_EQ((*policies)[0], RetentionPolicy{});
  EXPECT_EQ(stale_settings(config_).slice_items, 64u);
}

TEST_F(RetentionConfig, WrongTypeNamesFileLineAndKey) {
  auto r = config_.merge_text("[pit.retention.report]\nactive_days = \"a week\"\n", "/etc/symphony/s.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EINVAL);
  EXPECT_EQ(r.error().message(),
            "/etc/symphony/s.toml:2: pit.retention.report.active_days: expected integer, got string");
  auto b = config_.merge_text("[pit.retention.report]\nkeep_forever = 1\n", "b.toml");
  ASSERT_FALSE(b);
  EXPECT_THAT(b.error().message(), HasSubstr("b.toml:2: pit.retention.report.keep_forever: expected boolean"));
}

TEST_F(RetentionConfig, NegativeDaysNameFileLineAndKey) {
  auto r = config_.merge_text("[pit.retention.default]\nactive_days = 3\n\nremote_days = -1\n", "main.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "main.toml:4: pit.retention.default.remote_days: value -1 out of range 0..36500");
  // Nothing of the bad file applied.
  EXPECT_TRUE(config_.instances("pit.retention").empty());
}

TEST_F(RetentionConfig, UnknownPolicyKeyIsRefused) {
  auto r = config_.merge_text("[pit.retention.report]\ndelete_after = 3\n", "main.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "main.toml:2: unknown key 'pit.retention.report.delete_after'");
}

TEST_F(RetentionConfig, RenderedDefaultsShowTheDefaultTable) {
  std::string text = schema_.render_defaults();
  EXPECT_THAT(text, HasSubstr("[pit.retention.default]\n"));
  EXPECT_THAT(text, HasSubstr("#active_days = 30\n"));
  EXPECT_THAT(text, HasSubstr("[pit.stale]\n"));
}

TEST(StageFor, WalksTheTiersAsTheVersionAges) {
  RetentionPolicy p{"default", days{30}, days{90}, days{365}, false};
  EXPECT_EQ(stage_for(p, days{0}, HaveRemote::yes), Stage::active);
  EXPECT_EQ(stage_for(p, days{30} - hours{1}, HaveRemote::yes), Stage::active);
  EXPECT_EQ(stage_for(p, days{30}, HaveRemote::yes), Stage::archived);
  EXPECT_EQ(stage_for(p, days{120}, HaveRemote::yes), Stage::remote);
  EXPECT_EQ(stage_for(p, days{485} - hours{1}, HaveRemote::yes), Stage::remote);
  EXPECT_EQ(stage_for(p, days{485}, HaveRemote::yes), Stage::deleted);
}

TEST(StageFor, ZeroDaysSkipATier) {
  RetentionPolicy no_archive{"x", days{7}, days{0}, days{30}, false};
  EXPECT_EQ(stage_for(no_archive, days{8}, HaveRemote::yes), Stage::remote);
  RetentionPolicy no_remote{"x", days{7}, days{10}, days{0}, false};
  EXPECT_EQ(stage_for(no_remote, days{16}, HaveRemote::yes), Stage::archived);
  EXPECT_EQ(stage_for(no_remote, days{17}, HaveRemote::yes), Stage::deleted);
  RetentionPolicy straight{"x", days{0}, days{0}, days{0}, false};
  EXPECT_EQ(stage_for(straight, days{0}, HaveRemote::yes), Stage::deleted);
}

TEST(StageFor, KeepForeverStaysInTheLastTier) {
  RetentionPolicy p{"x", days{1}, days{1}, days{1}, true};
  EXPECT_EQ(stage_for(p, days{1000}, HaveRemote::yes), Stage::remote);
  EXPECT_EQ(stage_for(p, days{1000}, HaveRemote::no), Stage::archived);
  RetentionPolicy active_forever{"x", days{1}, days{0}, days{0}, true};
  EXPECT_EQ(stage_for(active_forever, days{1000}, HaveRemote::yes), Stage::active);
}

TEST(StageFor, WithoutARemoteTierTheArchiveHoldsTheRemotePeriod) {
  RetentionPolicy p{"x", days{1}, days{1}, days{10}, false};
  EXPECT_EQ(stage_for(p, days{5}, HaveRemote::no), Stage::archived);
  EXPECT_EQ(stage_for(p, days{12}, HaveRemote::no), Stage::deleted);
}

}  // namespace
}  // namespace symphony::pit::stale
