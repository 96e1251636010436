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

TEST(ParseCounter, AcceptsZeroToTwoToThe63MinusOne) {
  EXPECT_EQ(parse_counter("0", "invalid version").value, 0u);
  EXPECT_EQ(parse_counter("17", "invalid version").value, 17u);
  EXPECT_EQ(parse_counter("007", "invalid version").value, 7u);
  EXPECT_EQ(parse_counter("9223372036854775807", "invalid version").value,
            k_max_counter);
}

TEST(ParseCounter, RefusesWhatTheProtocolCannotCarryAsTooLarge) {
  for (std::string_view big :
       {"9223372036854775808", "18446744073709551615", "18446744073709551616",
        "99999999999999999999999"}) {
    auto parsed = parse_counter(big, "invalid version");
    EXPECT_FALSE(parsed) << big;
    EXPECT_NE(parsed.error.find("too large"), std::string::npos)
        << parsed.error;
  }
}

TEST(ParseCounter, RefusesAnythingButPlainDecimalsNamingTheValue) {
  for (std::string_view bad :
       {"", "-1", "+1", " 1", "1 ", "1.0", "0x10", "1e3", "v2", "one"}) {
    auto parsed = parse_counter(bad, "invalid token");
    EXPECT_FALSE(parsed) << bad;
    EXPECT_EQ(
        parsed.error.rfind("invalid token: '" + std::string(bad) + "'", 0), 0u)
        << parsed.error;
  }
  EXPECT_NE(parse_counter("-1", "invalid token").error.find("negative"),
            std::string::npos);
}

TEST(ParseMode, AcceptsOctalPermissionsWithOrWithoutALeadingZero) {
  EXPECT_EQ(parse_mode("644", "invalid mode").value, 0644u);
  EXPECT_EQ(parse_mode("0644", "invalid mode").value, 0644u);
  EXPECT_EQ(parse_mode("0600", "invalid mode").value, 0600u);
  EXPECT_EQ(parse_mode("0", "invalid mode").value, 0u);
  EXPECT_EQ(parse_mode("777", "invalid mode").value, 0777u);
  EXPECT_EQ(parse_mode("00000640", "invalid mode").value, 0640u);
}

TEST(ParseMode, RefusesSetUidSetGidAndStickyBits) {
  for (std::string_view special :
       {"4755", "2755", "1777", "07777", "10000", "77777777777777777777777"}) {
    auto parsed = parse_mode(special, "invalid mode");
    EXPECT_FALSE(parsed) << special;
    EXPECT_NE(parsed.error.find("0 to 0777"), std::string::npos)
        << parsed.error;
  }
}

TEST(ParseMode, RefusesNonOctalNamingTheValue) {
  for (std::string_view bad : {"", "8", "0648", "0x1a4", "-644", "+644", " 644",
                               "644 ", "u+rw", "rw-r--r--"}) {
    auto parsed = parse_mode(bad, "invalid mode");
    EXPECT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error.rfind("invalid mode: '" + std::string(bad) + "'", 0),
              0u)
        << parsed.error;
    EXPECT_NE(parsed.error.find("octal"), std::string::npos) << parsed.error;
  }
}

TEST(ParsePublishSpec, SplitsAtTheFirstEqualsSign) {
  auto parsed =
      parse_publish_spec("out.csv=reports/today.csv", "invalid --publish");
  ASSERT_TRUE(parsed) << parsed.error;
  EXPECT_EQ(parsed.value->local, "out.csv");
  EXPECT_EQ(parsed.value->dest, "reports/today.csv");
  // Partitioned paths on the shared volume keep their '='.
  parsed = parse_publish_spec("part.csv=sales/day=2026-11-23/part.csv", "x");
  ASSERT_TRUE(parsed) << parsed.error;
  EXPECT_EQ(parsed.value->local, "part.csv");
  EXPECT_EQ(parsed.value->dest, "sales/day=2026-11-23/part.csv");
}

TEST(ParsePublishSpec, RefusesAMissingSideNamingTheValue) {
  for (std::string_view bad : {"", "=", "out.csv", "out.csv=", "=reports/x"}) {
    auto parsed = parse_publish_spec(bad, "invalid --publish");
    EXPECT_FALSE(parsed) << bad;
    EXPECT_NE(
        parsed.error.find("invalid --publish: '" + std::string(bad) + "'"),
        std::string::npos)
        << parsed.error;
  }
}

TEST(ParsePublishSpec, EchoesControlCharactersAsQuestionMarks) {
  auto parsed = parse_publish_spec("a\nb", "invalid --publish");
  EXPECT_FALSE(parsed);
  EXPECT_EQ(parsed.error.find('\n'), std::string::npos) << parsed.error;
  EXPECT_NE(parsed.error.find("'a?b'"), std::string::npos) << parsed.error;
}

}  // namespace
}  // namespace baton::cli
