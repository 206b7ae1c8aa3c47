// Unit tests of the error model (base/result.h): how an Error reads to a user
// (context, errno text, wrap chains) and how Result<T> / Result<void> carry a
// value or an error.
#include "base/result.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

namespace symphony {
namespace {

std::string strerror_of(int code) { return std::strerror(code); }

TEST(Error, MessageAppendsStrerrorOfItsErrno) {
  Error e(ENOENT, "open /etc/symphony/symphonyd.toml");
  EXPECT_EQ(e.code(), ENOENT);
  EXPECT_EQ(e.context(), "open /etc/symphony/symphonyd.toml");
  EXPECT_EQ(e.message(), "open /etc/symphony/symphonyd.toml: " + strerror_of(ENOENT));
}

TEST(Error, MessageIsJustTheContextWhenCodeIsZero) {
  Error e(0, "the daemon answered nothing");
  EXPECT_EQ(e.message(), "the daemon answered nothing");
}

TEST(Error, FromErrnoCapturesTheCurrentErrno) {
  errno = EACCES;
  Error e = Error::from_errno("bind /run/symphony/symphonyd.sock");
  EXPECT_EQ(e.code(), EACCES);
  EXPECT_EQ(e.message(), "bind /run/symphony/symphonyd.sock: " + strerror_of(EACCES));
}

TEST(Error, InvalidIsEinvalWithoutStrerrorSuffix) {
  Error e = Error::invalid("symphonyd.toml:3: unknown key 'ipc.sokcet'");
  EXPECT_EQ(e.code(), EINVAL);
  EXPECT_EQ(e.message(), "symphonyd.toml:3: unknown key 'ipc.sokcet'");
  EXPECT_EQ(e.message().find(strerror_of(EINVAL)), std::string::npos);
}

TEST(Error, WrapBuildsAnOuterToInnerChainBeforeTheErrnoText) {
  Error e(EPERM, "mount /proc");
  e.wrap("set up pid namespace").wrap("start pit 3");
  EXPECT_EQ(e.context(), "start pit 3: set up pid namespace: mount /proc");
  EXPECT_EQ(e.message(), "start pit 3: set up pid namespace: mount /proc: " + strerror_of(EPERM));
  EXPECT_EQ(e.code(), EPERM);
}

TEST(Error, WrapOnATemporaryKeepsAValidationErrorFreeOfStrerror) {
  Error e = Error::invalid("value 5 out of range 10..20").wrap("load config");
  EXPECT_EQ(e.message(), "load config: value 5 out of range 10..20");
  EXPECT_EQ(e.code(), EINVAL);
}

TEST(Result, HoldsAValue) {
  Result<int> r = 42;
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r.value(), 42);
  EXPECT_EQ(*r, 42);
  EXPECT_EQ(r.value_or(7), 42);
}

TEST(Result, HoldsAnError) {
  Result<int> r = Error(ENOSPC, "write journal");
  ASSERT_FALSE(r.has_value());
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.error().code(), ENOSPC);
  EXPECT_EQ(r.value_or(7), 7);
}

TEST(Result, ErrorCanBeWrappedAndPassedUp) {
  auto inner = []() -> Result<std::string> { return Error(ECONNREFUSED, "connect /run/x.sock"); };
  auto outer = [&]() -> Result<std::size_t> {
    auto r = inner();
    if (!r) return std::move(r).error().wrap("symphonyctl status");
    return r->size();
  };
  Result<std::size_t> r = outer();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "symphonyctl status: connect /run/x.sock: " + strerror_of(ECONNREFUSED));
}

TEST(Result, MovesOutAMoveOnlyValue) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(5);
  ASSERT_TRUE(r);
  EXPECT_EQ(**r, 5);
  std::unique_ptr<int> taken = std::move(r).value();
  ASSERT_NE(taken, nullptr);
  EXPECT_EQ(*taken, 5);
}

TEST(Result, ArrowReachesMembers) {
  Result<std::string> r = std::string("symphony");
  EXPECT_EQ(r->size(), 8u);
}

TEST(ResultVoid, DefaultAndOkAreSuccess) {
  Result<void> a;
  EXPECT_TRUE(a.has_value());
  EXPECT_TRUE(static_cast<bool>(ok()));
}

TEST(ResultVoid, HoldsAnError) {
  Result<void> r = Error(EBUSY, "umount /sys/fs/cgroup/symphony");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EBUSY);
  EXPECT_EQ(r.error().message(), "umount /sys/fs/cgroup/symphony: " + strerror_of(EBUSY));
}

}  // namespace
}  // namespace symphony
