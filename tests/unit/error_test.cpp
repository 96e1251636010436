#include "baton/error.hpp"

#include <gtest/gtest.h>

namespace baton {
namespace {

TEST(ErrorCategory, EveryValueHasAMessageANameAndAKind) {
  for (int value = static_cast<int>(errc::busy);
       value <= static_cast<int>(errc::cancelled); ++value) {
    auto e = static_cast<errc>(value);
    std::error_code ec = e;
    EXPECT_EQ(&ec.category(), &error_category());
    EXPECT_NE(ec.message().find("unknown"), 0u) << value;
    EXPECT_FALSE(ec.message().empty()) << value;
    std::string_view name = error_name(e);
    errc back{};
    ASSERT_TRUE(errc_from_name(name, back)) << name;
    EXPECT_EQ(back, e);
  }
}

TEST(ErrorCategory, UnknownValuesSayUnknown) {
  std::error_code ec(999, error_category());
  EXPECT_NE(ec.message().find("unknown"), std::string::npos);
  errc ignored{};
  EXPECT_FALSE(errc_from_name("no_such_error", ignored));
}

TEST(ErrorCategory, KindsTellTheCallerWhatToDo) {
  EXPECT_EQ(kind_of(errc::busy), error_kind::transient);
  EXPECT_EQ(kind_of(errc::timed_out), error_kind::transient);
  EXPECT_EQ(kind_of(errc::invalid_name), error_kind::permanent);
  EXPECT_EQ(kind_of(errc::permission_denied), error_kind::permission);
  EXPECT_EQ(kind_of(std::make_error_code(std::errc::permission_denied)),
            error_kind::permission);
}

}  // namespace
}  // namespace baton
