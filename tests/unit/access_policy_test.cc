// Unit tests of the connection allow-list (ipc/access_policy.h): numeric and
// named users and groups, names that do not resolve (reported, never
// granting access), and membership through supplementary groups.
#include "ipc/access_policy.h"

#include <gmock/gmock.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>

namespace symphony::ipc {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

PeerCredentials peer(std::uint32_t uid, std::uint32_t gid, std::vector<std::uint32_t> groups = {}) {
  PeerCredentials p;
  p.uid = uid;
  p.gid = gid;
  p.pid = 4242;
  p.groups = std::move(groups);
  return p;
}

TEST(AccessPolicy, RootAndTheDaemonsOwnUserAreAlwaysAllowed) {
  AccessPolicy p = AccessPolicy::make(1000, {}, {});
  EXPECT_THAT(p.uids(), ElementsAre(0u, 1000u));
  EXPECT_THAT(p.gids(), IsEmpty());
  EXPECT_TRUE(p.allows(peer(0, 0)));
  EXPECT_TRUE(p.allows(peer(1000, 1000)));
  EXPECT_FALSE(p.allows(peer(1001, 1001)));
}

TEST(AccessPolicy, ADaemonRunningAsRootListsRootOnce) {
  AccessPolicy p = AccessPolicy::make(0, {"0", "root"}, {});
  EXPECT_THAT(p.uids(), ElementsAre(0u));
  EXPECT_THAT(p.unresolved(), IsEmpty());
}

TEST(AccessPolicy, NumericUsersAndGroups) {
  AccessPolicy p = AccessPolicy::make(500, {"1001", "42", "1001"}, {"100", "2000"});
  EXPECT_THAT(p.uids(), ElementsAre(0u, 500u, 1001u, 42u));
  EXPECT_THAT(p.gids(), ElementsAre(100u, 2000u));
  EXPECT_THAT(p.unresolved(), IsEmpty());

  EXPECT_TRUE(p.allows(peer(42, 7)));
  EXPECT_TRUE(p.allows(peer(7, 2000)));   // primary group
  EXPECT_FALSE(p.allows(peer(7, 7)));
  EXPECT_FALSE(p.allows(peer(43, 101)));
}

TEST(AccessPolicy, NamesResolveThroughTheUserAndGroupDatabases) {
  AccessPolicy p = AccessPolicy::make(1000, {"root"}, {"root"});
  EXPECT_THAT(p.uids(), ElementsAre(0u, 1000u));
  EXPECT_THAT(p.gids(), ElementsAre(0u));
  EXPECT_THAT(p.unresolved(), IsEmpty());
  EXPECT_TRUE(p.allows(peer(5000, 0)));
}

TEST(AccessPolicy, AnyUserNameOnThisSystemResolvesToItsUid) {
  passwd* nobody = ::getpwnam("nobody");
  if (nobody == nullptr) GTEST_SKIP() << "no user 'nobody' on this system";
  std::uint32_t uid = nobody->pw_uid;
  AccessPolicy p = AccessPolicy::make(1000, {"nobody"}, {});
  EXPECT_THAT(p.uids(), ElementsAre(0u, 1000u, uid));
  EXPECT_TRUE(p.allows(peer(uid, uid)));
}

TEST(AccessPolicy, UnresolvedNamesAreReportedAndGrantNothing) {
  AccessPolicy p = AccessPolicy::make(1000, {"no-such-user-symphony", "root"},
                                      {"no-such-group-symphony"});
  EXPECT_THAT(p.unresolved(),
              ElementsAre("user no-such-user-symphony", "group no-such-group-symphony"));
  EXPECT_THAT(p.uids(), ElementsAre(0u, 1000u));
  EXPECT_THAT(p.gids(), IsEmpty());
  EXPECT_FALSE(p.allows(peer(1001, 1001, {1001})));
}

TEST(AccessPolicy, NumbersThatAreNotWholeIdsAreTreatedAsNames) {
  AccessPolicy p = AccessPolicy::make(1000, {"12abc", "-1", "4294967296", " 5"}, {"0x10"});
  EXPECT_THAT(p.unresolved(), ElementsAre("user 12abc", "user -1", "user 4294967296", "user  5",
                                          "group 0x10"));
  EXPECT_THAT(p.uids(), ElementsAre(0u, 1000u));
  EXPECT_FALSE(p.allows(peer(5, 5)));
}

TEST(AccessPolicy, SupplementaryGroupsGrantAccess) {
  AccessPolicy p = AccessPolicy::make(1000, {}, {"2000"});
  EXPECT_TRUE(p.allows(peer(3000, 3000, {10, 2000, 27})));
  EXPECT_FALSE(p.allows(peer(3000, 3000, {10, 27})));
  EXPECT_FALSE(p.allows(peer(3000, 3000)));
}

TEST(AccessPolicy, UnknownCredentialsAreRefused) {
  // What the transport reports when SO_PEERCRED fails.
  auto unknown = static_cast<std::uint32_t>(-1);
  AccessPolicy p = AccessPolicy::make(1000, {"1001"}, {"100"});
  EXPECT_FALSE(p.allows(peer(unknown, unknown)));
}

TEST(PeerCredentials, DescribeNamesUidGidAndPid) {
  EXPECT_EQ(describe(peer(1000, 100)), "uid 1000 gid 100 pid 4242");
}

}  // namespace
}  // namespace symphony::ipc
