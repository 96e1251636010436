#include "cli/options.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace baton::cli {
namespace {

using std::chrono::milliseconds;

milliseconds seconds_of(std::string_view text) {
  auto parsed = parse_seconds(text, "invalid timeout");
  EXPECT_TRUE(parsed) << text << ": " << parsed.error;
  EXPECT_TRUE(parsed.error.empty());
  return parsed.value.value_or(milliseconds(-1));
}

std::string seconds_error(std::string_view text) {
  auto parsed = parse_seconds(text, "invalid timeout");
  EXPECT_FALSE(parsed) << text;
  return parsed.error;
}

TEST(ParseSeconds, AcceptsWholeSeconds) {
  EXPECT_EQ(seconds_of("0"), milliseconds(0));
  EXPECT_EQ(seconds_of("10"), milliseconds(10000));
  EXPECT_EQ(seconds_of("007"), milliseconds(7000));
}

TEST(ParseSeconds, AcceptsFractions) {
  EXPECT_EQ(seconds_of("0.5"), milliseconds(500));
  EXPECT_EQ(seconds_of("1.25"), milliseconds(1250));
  EXPECT_EQ(seconds_of(".25"), milliseconds(250));
  EXPECT_EQ(seconds_of("2."), milliseconds(2000));
  EXPECT_EQ(seconds_of("0.000"), milliseconds(0));
}

TEST(ParseSeconds, RoundsSubMillisecondsUpSoAWaitNeverBecomesTryOnce) {
  EXPECT_EQ(seconds_of("0.0001"), milliseconds(1));
  EXPECT_EQ(seconds_of("1.0005"), milliseconds(1001));
  EXPECT_EQ(seconds_of("0.1230000"), milliseconds(123));
}

TEST(ParseSeconds, RefusesNegativesAndSaysSo) {
  std::string error = seconds_error("-1");
  EXPECT_NE(error.find("'-1'"), std::string::npos) << error;
  EXPECT_NE(error.find("negative"), std::string::npos) << error;
  EXPECT_FALSE(parse_seconds("-0.5", "invalid timeout"));
}

TEST(ParseSeconds, RefusesAnythingButPlainDecimals) {
  for (std::string_view bad : {"", ".", "1x", "x1", " 1", "1 ", "+1", "1e3",
                               "inf", "nan", "1.2.3", "0x10", "1,5", "5s"}) {
    std::string error = seconds_error(bad);
    EXPECT_NE(error.find("'" + std::string(bad) + "'"), std::string::npos)
        << error;
  }
}

TEST(ParseSeconds, ErrorNamesTheOptionAndTheBadValue) {
  auto parsed = parse_seconds("soon", "invalid connect timeout");
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error.rfind("invalid connect timeout: 'soon'", 0), 0u)
      << parsed.error;
}

TEST(ParseSeconds, RefusesValuesTooLargeForADeadline) {
  EXPECT_EQ(seconds_of("1000000000"), milliseconds(1'000'000'000'000));
  EXPECT_NE(seconds_error("1000000001").find("too large"), std::string::npos);
  EXPECT_NE(seconds_error("1000000000.5").find("too large"), std::string::npos);
  EXPECT_NE(seconds_error("99999999999999999999999").find("too large"),
            std::string::npos);
}

TEST(ParseExitCode, AcceptsZeroTo255) {
  EXPECT_EQ(parse_exit_code("0", "invalid exit code").value, 0);
  EXPECT_EQ(parse_exit_code("75", "invalid exit code").value, 75);
  EXPECT_EQ(parse_exit_code("255", "invalid exit code").value, 255);
}

TEST(ParseExitCode, RefusesOutOfRangeNegativeAndNonNumbersNamingThem) {
  for (std::string_view bad : {"256", "-1", "", "1x", "3.0", "0255", " 1"}) {
    auto parsed = parse_exit_code(bad, "invalid conflict exit code");
    EXPECT_FALSE(parsed) << bad;
    EXPECT_NE(parsed.error.find("invalid conflict exit code: '" +
                                std::string(bad) + "'"),
              std::string::npos)
        << parsed.error;
    EXPECT_NE(parsed.error.find("0 to 255"), std::string::npos);
  }
}

}  // namespace
}  // namespace baton::cli
