// Unit tests of logging (base/log.h): the journal record built for a message
// (priority mapping, identifier, code location, structured fields in scope),
// log::Fields scoping, level names and journal-stream detection.
#include "base/log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace symphony::log {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Not;

spdlog::details::log_msg make_msg(spdlog::level::level_enum level, std::string_view text,
                                  spdlog::source_loc where = {}) {
  return spdlog::details::log_msg(where, "test", level,
                                  spdlog::string_view_t(text.data(), text.size()));
}

// The record's fields after MESSAGE, PRIORITY, SYSLOG_IDENTIFIER (and no CODE_*).
std::vector<std::string> scoped_part(const std::vector<std::string>& record) {
  return {record.begin() + 3, record.end()};
}

TEST(JournalRecord, CarriesMessagePriorityAndIdentifierFirst) {
  auto record = journal_record("symphonyd", make_msg(spdlog::level::warn, "pit 3 exited"));
  EXPECT_THAT(record, ElementsAre("MESSAGE=pit 3 exited", "PRIORITY=4",
                                  "SYSLOG_IDENTIFIER=symphonyd"));
}

TEST(JournalRecord, MapsEveryLevelToItsSyslogPriority) {
  struct Case {
    spdlog::level::level_enum level;
    int priority;
  };
  for (Case c : {Case{spdlog::level::trace, 7}, Case{spdlog::level::debug, 7},
                 Case{spdlog::level::info, 6}, Case{spdlog::level::warn, 4},
                 Case{spdlog::level::err, 3}, Case{spdlog::level::critical, 2}}) {
    EXPECT_EQ(syslog_priority(c.level), c.priority) << spdlog::level::to_string_view(c.level).data();
    auto record = journal_record("x", make_msg(c.level, "m"));
    ASSERT_GE(record.size(), 2u);
    EXPECT_EQ(record[1], "PRIORITY=" + std::to_string(c.priority));
  }
}

TEST(JournalRecord, AddsCodeLocationWhenKnown) {
  auto record = journal_record(
      "symphonyd", make_msg(spdlog::level::info, "hi", spdlog::source_loc{"pit.cc", 42, "spawn"}));
  EXPECT_THAT(record, ElementsAre("MESSAGE=hi", "PRIORITY=6", "SYSLOG_IDENTIFIER=symphonyd",
                                  "CODE_FILE=pit.cc", "CODE_LINE=42", "CODE_FUNC=spawn"));
}

TEST(JournalRecord, KeepsNewlinesAndEqualsSignsInTheMessage) {
  auto record = journal_record("x", make_msg(spdlog::level::info, "a=b\nsecond line"));
  EXPECT_EQ(record[0], "MESSAGE=a=b\nsecond line");
}

TEST(Fields, AppearInTheRecordWhileInScope) {
  ASSERT_THAT(current_fields(), IsEmpty());
  {
    Fields f{{"PEER_UID", "1000"}, {"PEER_PID", "4242"}};
    auto record = journal_record("symphonyd", make_msg(spdlog::level::info, "hello"));
    EXPECT_THAT(scoped_part(record), ElementsAre("PEER_UID=1000", "PEER_PID=4242"));
  }
  auto record = journal_record("symphonyd", make_msg(spdlog::level::info, "hello"));
  EXPECT_THAT(record, Not(Contains("PEER_UID=1000")));
  EXPECT_EQ(record.size(), 3u);
  EXPECT_THAT(current_fields(), IsEmpty());
}

TEST(Fields, NestedScopesAppendInnerFieldsLastAndUnwindInOrder) {
  Fields outer{{"PIT_ID", "3"}};
  {
    Fields inner{{"PEER_UID", "1000"}};
    EXPECT_THAT(current_fields(), ElementsAre("PIT_ID=3", "PEER_UID=1000"));
    {
      Fields innermost{{"REQUEST", "pit.start"}};
      auto record = journal_record("d", make_msg(spdlog::level::err, "failed"));
      EXPECT_THAT(scoped_part(record),
                  ElementsAre("PIT_ID=3", "PEER_UID=1000", "REQUEST=pit.start"));
    }
    EXPECT_THAT(current_fields(), ElementsAre("PIT_ID=3", "PEER_UID=1000"));
  }
  auto record = journal_record("d", make_msg(spdlog::level::err, "failed"));
  EXPECT_THAT(scoped_part(record), ElementsAre("PIT_ID=3"));
}

TEST(Fields, AreLocalToTheirThread) {
  Fields mine{{"PIT_ID", "7"}};
  std::vector<std::string> seen_by_other;
  std::thread other([&] { seen_by_other = current_fields(); });
  other.join();
  EXPECT_THAT(seen_by_other, IsEmpty());
  EXPECT_THAT(current_fields(), ElementsAre("PIT_ID=7"));
}

TEST(ParseLevel, AcceptsEveryDocumentedName) {
  struct Case {
    const char* name;
    spdlog::level::level_enum level;
  };
  for (Case c : {Case{"trace", spdlog::level::trace}, Case{"debug", spdlog::level::debug},
                 Case{"info", spdlog::level::info}, Case{"warning", spdlog::level::warn},
                 Case{"warn", spdlog::level::warn}, Case{"error", spdlog::level::err},
                 Case{"critical", spdlog::level::critical}, Case{"off", spdlog::level::off}}) {
    auto r = parse_level(c.name);
    ASSERT_TRUE(r) << c.name;
    EXPECT_EQ(*r, c.level) << c.name;
  }
}

TEST(ParseLevel, RejectsUnknownNamesAndListsTheValidOnes) {
  for (const char* bad : {"verbose", "INFO", "", "err"}) {
    auto r = parse_level(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), EINVAL);
    EXPECT_EQ(r.error().message(), std::string("unknown log level '") + bad +
                                       "' (expected trace, debug, info, warning, error, critical "
                                       "or off)");
  }
}

// Sets JOURNAL_STREAM for the test and restores the previous value after.
class JournalStreamEnv {
 public:
  JournalStreamEnv() {
    if (const char* v = ::getenv("JOURNAL_STREAM")) saved_ = v;
  }
  ~JournalStreamEnv() {
    if (saved_) {
      ::setenv("JOURNAL_STREAM", saved_->c_str(), 1);
    } else {
      ::unsetenv("JOURNAL_STREAM");
    }
  }
  void set(const std::string& value) { ::setenv("JOURNAL_STREAM", value.c_str(), 1); }
  void unset() { ::unsetenv("JOURNAL_STREAM"); }

 private:
  std::optional<std::string> saved_;
};

TEST(StderrIsJournal, MatchesOnlyStderrsDeviceAndInode) {
  struct stat st {};
  ASSERT_EQ(::fstat(STDERR_FILENO, &st), 0);
  JournalStreamEnv env;

  env.set(std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino));
  EXPECT_TRUE(stderr_is_journal());

  env.set(std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1));
  EXPECT_FALSE(stderr_is_journal());

  env.set("garbage");
  EXPECT_FALSE(stderr_is_journal());

  env.unset();
  EXPECT_FALSE(stderr_is_journal());
}

TEST(Init, ConsoleTargetInstallsTheDefaultLoggerAtTheRequestedLevel) {
  auto previous = spdlog::default_logger();
  Target target = init({.identifier = "log-test", .level = spdlog::level::debug,
                        .target = Target::console});
  EXPECT_EQ(target, Target::console);
  EXPECT_EQ(spdlog::default_logger()->name(), "log-test");
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::debug);
  spdlog::set_default_logger(previous);
}

}  // namespace
}  // namespace symphony::log
