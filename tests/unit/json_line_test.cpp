#include "protocol/json_line.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace baton::protocol {
namespace {

// Whatever JsonLine writes must read back as nlohmann would have written it.
nlohmann::json parsed(std::string line) {
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line only";
  return nlohmann::json::parse(line);
}

TEST(JsonLine, WritesScalarsOfEveryKind) {
  auto object = parsed(JsonLine()
                           .number("id", std::uint64_t{9007199254740991})
                           .boolean("ok", true)
                           .boolean("no", false)
                           .number("signed", std::int64_t{-5})
                           .string("name", "a/b")
                           .raw("holder", R"({"pid":4})")
                           .finish());
  EXPECT_EQ(object["id"].get<std::uint64_t>(), 9007199254740991u);
  EXPECT_EQ(object["ok"], true);
  EXPECT_EQ(object["no"], false);
  EXPECT_EQ(object["signed"], -5);
  EXPECT_EQ(object["name"], "a/b");
  EXPECT_EQ(object["holder"]["pid"], 4);
}

TEST(JsonLine, EscapesEveryByteThatCannotStandInAString) {
  std::string nasty = "q\"b\\s/\n\r\t\b\f";
  for (char c = 1; c < 0x20; ++c) nasty += c;
  nasty += '\x7f';
  auto object = parsed(JsonLine().string("s", nasty).finish());
  EXPECT_EQ(object["s"].get<std::string>(), nasty);
}

TEST(JsonLine, KeepsValidUtf8AndReplacesInvalidLikeEncodeLine) {
  EXPECT_EQ(parsed(JsonLine().string("s", "caf\xc3\xa9").finish())["s"], "caf\xc3\xa9");
  EXPECT_EQ(parsed(JsonLine().string("s", "a\xff").finish())["s"], "a\xef\xbf\xbd");
}

TEST(JsonLine, WritesAnEmptyObject) { EXPECT_EQ(JsonLine().finish(), "{}\n"); }

}  // namespace
}  // namespace baton::protocol
