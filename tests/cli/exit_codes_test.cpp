#include "cli/exit_codes.hpp"

#include <gtest/gtest.h>

#include <cerrno>

#include "baton/error.hpp"

namespace baton::cli {
namespace {

int code(errc e) { return exit_code_for(make_error_code(e)); }

TEST(ExitCodes, AreDistinctPerOutcome) {
  const int codes[] = {
      k_exit_usage,          k_exit_no_input,       k_exit_unavailable,
      k_exit_internal,       k_exit_already_exists, k_exit_lock_lost,
      k_exit_busy,           k_exit_stale_token,    k_exit_permission,
      k_exit_cannot_execute, k_exit_not_found};
  for (std::size_t i = 0; i < std::size(codes); ++i)
    for (std::size_t j = i + 1; j < std::size(codes); ++j)
      EXPECT_NE(codes[i], codes[j]);
}

TEST(ExitCodes, MapDaemonErrorsAsTheManPageSays) {
  EXPECT_EQ(exit_code_for({}), 0);
  EXPECT_EQ(code(errc::busy), 75);
  EXPECT_EQ(code(errc::timed_out), 75);
  EXPECT_EQ(code(errc::shutting_down), 75);
  EXPECT_EQ(code(errc::daemon_unreachable), 69);
  EXPECT_EQ(code(errc::connection_lost), 69);
  EXPECT_EQ(code(errc::limit_exceeded), 69);
  EXPECT_EQ(code(errc::invalid_name), 64);
  EXPECT_EQ(code(errc::invalid_argument), 64);
  EXPECT_EQ(code(errc::permission_denied), 77);
  EXPECT_EQ(code(errc::protocol_error), 70);
  EXPECT_EQ(code(errc::version_mismatch), 70);
  EXPECT_EQ(code(errc::internal_error), 70);
  EXPECT_EQ(code(errc::io_error), 70);
  EXPECT_EQ(code(errc::lock_lost), 74);
}

TEST(ExitCodes, MapHandoffErrorsAsTheManPageSays) {
  EXPECT_EQ(code(errc::invalid_path), 64);
  EXPECT_EQ(code(errc::path_outside_root), 64);
  EXPECT_EQ(code(errc::not_found), 66);
  EXPECT_EQ(code(errc::already_exists), 73);
  EXPECT_EQ(code(errc::stale_token), 76);
}

TEST(ExitCodes, StayBelowTheSignalRangeAndApartFromTheShells) {
  for (int c : {k_exit_usage, k_exit_no_input, k_exit_unavailable,
                k_exit_internal, k_exit_already_exists, k_exit_lock_lost,
                k_exit_busy, k_exit_stale_token, k_exit_permission}) {
    EXPECT_GT(c, 1);
    EXPECT_LT(c, k_exit_cannot_execute);
  }
}

TEST(ExitCodes, MapSystemErrors) {
  EXPECT_EQ(exit_code_for({EACCES, std::system_category()}), 77);
  EXPECT_EQ(exit_code_for({EMFILE, std::system_category()}), 70);
}

}  // namespace
}  // namespace baton::cli
