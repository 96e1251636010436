#include "protocol/path_name.hpp"

#include <gtest/gtest.h>

namespace baton::protocol {
namespace {

constexpr auto npos = std::string_view::npos;

TEST(PathName, AcceptsRelativePathsIncludingUtf8) {
  for (const char* path :
       {"a", "reports/today.csv", "a/b/c", ".hidden", "a..b", "a/.baton",
        "caf\xc3\xa9/men\xc3\xba", "\xe6\x97\xa5\xe6\x9c\xac.txt",
        "emoji-\xf0\x9f\x98\x80", "a b", "x\xef\xbf\xbd"}) {
    EXPECT_EQ(check_relative_path(path), "") << path;
  }
  EXPECT_EQ(check_relative_path(std::string(255, 'c')), "");
  std::string longest;
  while (longest.size() + 3 <= k_max_path) longest += "d/";
  longest += std::string(k_max_path - longest.size(), 'x');
  EXPECT_EQ(check_relative_path(longest), "");
}

TEST(PathName, RefusesEverythingElseWithAOneLineReason) {
  for (std::string path :
       {"", "/etc/passwd", "..", "../x", "a/..", "a/./b", "./a", "a//b", "a/",
        "x\ny", "x\ty", "x\x7fy", ".baton", ".baton/locks/x", ".baton-stage.x",
        "a/.baton-stage.x", ".baton-new.x"}) {
    std::string why = check_relative_path(path);
    EXPECT_FALSE(why.empty()) << path;
    EXPECT_EQ(why.find('\n'), npos) << why;
  }
  EXPECT_NE(check_relative_path(std::string(300, 'c')).find("255"),
            std::string::npos);
  EXPECT_NE(check_relative_path(std::string(1025, 'c')).find("1024"),
            std::string::npos);
}

// Bytes JSON cannot carry would reach the daemon as another name (U+FFFD
// in their place): refused, with the offset of the first bad byte.
TEST(PathName, RefusesNamesThatAreNotUtf8) {
  struct Case {
    std::string path;
    std::size_t bad;
  };
  for (const Case& c : {Case{"bad\xff\xfename", 3},
                        Case{"\x80", 0},          // a lone continuation byte
                        Case{"a/\xc3", 2},        // cut short at the end
                        Case{"\xc3(", 0},         // a lead without continuation
                        Case{"ok/\xc0\xaf", 3},   // overlong '/'
                        Case{"\xe0\x80\xaf", 0},  // overlong, three bytes
                        Case{"\xf0\x80\x80\xaf", 0},  // overlong, four bytes
                        Case{"\xed\xa0\x80", 0},      // a UTF-16 surrogate
                        Case{"\xf4\x90\x80\x80", 0},  // above U+10FFFF
                        Case{"\xf8\x88\x80\x80\x80", 0},  // five bytes
                        Case{"caf\xc3\xa9\xe9", 5}}) {    // Latin-1 after UTF-8
    EXPECT_EQ(find_invalid_utf8(c.path), c.bad) << c.path;
    std::string why = check_relative_path(c.path);
    EXPECT_NE(why.find("UTF-8"), npos) << c.path << ": " << why;
    EXPECT_NE(why.find("byte " + std::to_string(c.bad)), npos) << why;
  }
}

TEST(PathName, Utf8ValidatorAcceptsEveryRangeBoundary) {
  for (const char* text : {"", "ascii", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80",
                           "\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbf",
                           "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf"}) {
    EXPECT_EQ(find_invalid_utf8(text), npos) << text;
  }
}

}  // namespace
}  // namespace baton::protocol
