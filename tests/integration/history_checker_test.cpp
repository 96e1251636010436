// The history checker must catch every kind of violation it claims to, or a
// passing mutual-exclusion test would prove nothing.
#include "tests/support/history_checker.hpp"

#include <gtest/gtest.h>

namespace baton::test {
namespace {

TEST(HistoryChecker, AcceptsAlternatingHistory) {
  HistoryReport report = check_history(
      "enter a 1 100\nexit a 1 110\nenter b 3 120\nexit b 3 130\nenter a 7 "
      "140\nexit a 7 150\n",
      {3, std::nullopt, 2});
  EXPECT_TRUE(report.ok()) << report.error;
  EXPECT_EQ(report.acquisitions, 3u);
  EXPECT_EQ(report.per_worker["a"], 2u);
  EXPECT_EQ(report.per_worker["b"], 1u);
  EXPECT_EQ(report.first_token, 1u);
  EXPECT_EQ(report.last_token, 7u);
  EXPECT_EQ(report.switches, 2u);
}

TEST(HistoryChecker, AcceptsEmptyHistory) {
  EXPECT_TRUE(check_history("").ok());
  EXPECT_FALSE(check_history("", {1, std::nullopt, std::nullopt}).ok());
}

TEST(HistoryChecker, RejectsOverlappingHolders) {
  HistoryReport report = check_history(
      "enter a 1 100\nenter b 2 105\nexit a 1 110\nexit b 2 120\n");
  EXPECT_EQ(report.error,
            "line 2: enter of worker b (token 2) while worker a (token 1) held "
            "the lock since "
            "line 1: two exclusive holders");
}

TEST(HistoryChecker, RejectsExitOfAnotherWorker) {
  HistoryReport report = check_history("enter a 1 100\nexit b 1 110\n");
  EXPECT_EQ(report.error,
            "line 2: exit of worker b (token 1) does not match the enter of "
            "worker a (token 1) "
            "on line 1");
}

TEST(HistoryChecker, RejectsExitWithAnotherToken) {
  HistoryReport report = check_history("enter a 1 100\nexit a 2 110\n");
  EXPECT_NE(
      report.error.find("line 2: exit of worker a (token 2) does not match"),
      std::string::npos)
      << report.error;
}

TEST(HistoryChecker, RejectsExitWithoutEnter) {
  HistoryReport report =
      check_history("enter a 1 100\nexit a 1 110\nexit a 1 120\n");
  EXPECT_EQ(report.error,
            "line 3: exit of worker a (token 1) while nobody held the lock");
}

TEST(HistoryChecker, RejectsTokensThatDoNotGrow) {
  HistoryReport equal = check_history(
      "enter a 5 100\nexit a 5 110\nenter b 5 120\nexit b 5 130\n");
  EXPECT_EQ(equal.error,
            "line 3: enter of worker b (token 5): token not greater than the "
            "previous 5");
  HistoryReport lower = check_history(
      "enter a 5 100\nexit a 5 110\nenter b 4 120\nexit b 4 130\n");
  EXPECT_FALSE(lower.ok());
}

TEST(HistoryChecker, RejectsTimeGoingBack) {
  HistoryReport report = check_history("enter a 1 100\nexit a 1 90\n");
  EXPECT_NE(
      report.error.find("line 2: exit of worker a (token 1) is stamped 90 ns"),
      std::string::npos)
      << report.error;
}

TEST(HistoryChecker, RejectsUnfinishedHolder) {
  HistoryReport report =
      check_history("enter a 1 100\nexit a 1 110\nenter b 2 120\n");
  EXPECT_EQ(report.error,
            "line 3: enter of worker b (token 2) has no exit: the history ends "
            "inside it");
}

TEST(HistoryChecker, RejectsTornAndMalformedLines) {
  EXPECT_EQ(check_history("enter a 1 100\nexit a 1 1").error,
            "line 2: truncated line (no newline): a torn write");
  EXPECT_NE(check_history("enter a 1\n")
                .error.find("line 1: malformed line 'enter a 1'"),
            std::string::npos);
  EXPECT_NE(check_history("enter a x 100\n").error.find("bad token 'x'"),
            std::string::npos);
  EXPECT_NE(
      check_history("leave a 1 100\n").error.find("unknown event 'leave'"),
      std::string::npos);
  // Two lines glued together by a non-atomic append.
  EXPECT_FALSE(check_history("enter a 1 100exit a 1 110\n").ok());
}

TEST(HistoryChecker, RejectsWrongCounts) {
  const char* log =
      "enter a 1 100\nexit a 1 110\nenter b 2 120\nexit b 2 130\n";
  EXPECT_TRUE(check_history(log, {2, 1, 2}).ok());
  EXPECT_EQ(check_history(log, {3, std::nullopt, std::nullopt}).error,
            "line 4: history has 2 acquisitions, expected 3");
  EXPECT_EQ(check_history(log, {std::nullopt, std::nullopt, 3}).error,
            "line 4: history has 2 workers, expected 3");
  EXPECT_EQ(check_history(log, {std::nullopt, 2, std::nullopt}).error,
            "line 4: worker a acquired 1 times, expected 2");
}

}  // namespace
}  // namespace baton::test
