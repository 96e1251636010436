#include "daemon/token_allocator.hpp"

#include <gtest/gtest.h>

namespace baton::daemon {
namespace {

// Plays one exclusive acquisition against the shared record, as the lock
// table does: observe, reserve durably if needed, take.
std::uint64_t acquire(TokenAllocator& tokens, TokenRecord& file) {
  tokens.observe(file);
  if (tokens.needs_reservation()) {
    file = tokens.next_reservation();
    tokens.reserved(file);
  }
  return tokens.take();
}

TEST(TokenAllocator, StartsAtOneAndReservesBeforeTheFirstToken) {
  TokenAllocator tokens(0xa);
  TokenRecord file;
  tokens.observe(file);
  EXPECT_TRUE(tokens.needs_reservation());
  EXPECT_EQ(acquire(tokens, file), 1u);
  EXPECT_EQ(file.owner, 0xau);
  EXPECT_GE(file.reserved_upto, 1u);
}

TEST(TokenAllocator, ReusesItsOwnBlockWithoutWriting) {
  TokenAllocator tokens(0xa);
  TokenRecord file;
  acquire(tokens, file);
  TokenRecord written = file;
  for (std::uint64_t expected = 2; expected <= TokenAllocator::k_min_block; ++expected) {
    tokens.observe(file);
    EXPECT_FALSE(tokens.needs_reservation());
    EXPECT_EQ(tokens.take(), expected);
  }
  EXPECT_EQ(file.reserved_upto, written.reserved_upto);
}

TEST(TokenAllocator, StrictlyIncreasesAcrossDaemonsAndRestarts) {
  TokenRecord file;
  TokenAllocator a(1), b(2);
  std::uint64_t last = 0;
  for (int round = 0; round < 200; ++round) {
    // Interleave irregularly; a "restart" is a fresh allocator, new id.
    TokenAllocator restarted(1000 + static_cast<std::uint64_t>(round));
    TokenAllocator& who = round % 7 == 3 ? restarted : (round % 3 ? a : b);
    int grants = 1 + round % 5;
    for (int i = 0; i < grants; ++i) {
      std::uint64_t token = acquire(who, file);
      ASSERT_GT(token, last) << "round " << round;
      ASSERT_LE(token, file.reserved_upto);
      last = token;
    }
  }
}

TEST(TokenAllocator, NeverReusesABlockAnotherDaemonTookOver) {
  TokenRecord file;
  TokenAllocator a(1), b(2);
  std::uint64_t from_a = acquire(a, file);
  std::uint64_t from_b = acquire(b, file);  // b reserves above a's block
  std::uint64_t again_a = acquire(a, file);  // a must not resume its old block
  EXPECT_GT(again_a, from_b);
  EXPECT_GT(from_b, from_a);
}

TEST(TokenRecordFormat, RoundTripsAndToleratesJunk) {
  TokenRecord record{123456789012345ull, 0xdeadbeefcafef00dull};
  std::string text = format_token_record(record);
  EXPECT_EQ(text.size(), 64u);
  EXPECT_EQ(text.back(), '\n');
  TokenRecord back = parse_token_record(text);
  EXPECT_EQ(back.reserved_upto, record.reserved_upto);
  EXPECT_EQ(back.owner, record.owner);
  EXPECT_EQ(parse_token_record("").reserved_upto, 0u);
  EXPECT_EQ(parse_token_record("garbage 1 2 3").owner, 0u);
}

}  // namespace
}  // namespace baton::daemon
