#include "protocol/lock_name.hpp"

#include <gtest/gtest.h>

namespace baton::protocol {
namespace {

TEST(LockName, AcceptsTheGrammar) {
  for (const char* name : {"a", "nightly/backup", "A.b_c-9", "x/y/z", ".hidden", "a..b",
                           "...", "_"}) {
    EXPECT_EQ(check_lock_name(name), "") << name;
  }
  EXPECT_EQ(check_lock_name(std::string(200, 'n')), "");
}

TEST(LockName, RefusesEverythingElseWithAReason) {
  for (const char* name : {"", "/a", "a/", "a//b", ".", "..", "a/../b", "./a", "a b",
                           "a\nb", "caf\xc3\xa9", "a:b", "a\\b", "a+b", "*"}) {
    std::string why = check_lock_name(name);
    EXPECT_FALSE(why.empty()) << name;
    EXPECT_EQ(why.find('\n'), std::string::npos) << why;
  }
  EXPECT_NE(check_lock_name(std::string(201, 'n')).find("200"), std::string::npos);
}

TEST(LockName, MapsToOneFlatFileAndBack) {
  EXPECT_EQ(lock_file_name("nightly/backup"), "nightly+backup.lock");
  EXPECT_EQ(lock_file_name("a"), "a.lock");
  // "a.lock/b" and "a" must not collide, as they would in nested directories.
  EXPECT_NE(lock_file_name("a.lock/b"), lock_file_name("a"));
  for (const char* name : {"a", "x/y/z", "a.lock/b", ".h"})
    EXPECT_EQ(lock_name_from_file(lock_file_name(name)), name);
  EXPECT_EQ(lock_name_from_file(".selfcheck-1-2"), "");
  EXPECT_EQ(lock_name_from_file("+a.lock"), "");
  EXPECT_EQ(lock_name_from_file(".lock"), "");
}

}  // namespace
}  // namespace baton::protocol
