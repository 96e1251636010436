#include "daemon/token_allocator.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace baton::daemon {
namespace {

// Plays one exclusive acquisition against the shared record, as the lock
// table does: observe, reserve durably if needed, take. NOW is the injected
// clock (microseconds since the epoch).
std::uint64_t acquire(TokenAllocator& tokens, TokenRecord& file, std::uint64_t now = 0) {
  tokens.observe(file);
  if (tokens.needs_reservation()) {
    file = tokens.next_reservation(now);
    tokens.reserved(file);
  }
  return tokens.take();
}

TEST(TokenAllocator, ReservesBeforeTheFirstToken) {
  TokenAllocator tokens(0xa);
  TokenRecord file;
  tokens.observe(file);
  EXPECT_TRUE(tokens.needs_reservation());
  std::uint64_t first = acquire(tokens, file);
  EXPECT_GE(first, 1u);
  EXPECT_EQ(file.owner, 0xau);
  EXPECT_GE(file.reserved_upto, first);
}

TEST(TokenAllocator, ABlockStartsAtTheClockWhenTheRecordIsBehindIt) {
  TokenAllocator tokens(0xa);
  TokenRecord file{1000, 0xb};
  EXPECT_EQ(acquire(tokens, file, 5'000'000), 5'000'000u);
  EXPECT_GE(file.reserved_upto, 5'000'000u);
  EXPECT_LE(file.reserved_upto, 5'000'000u + TokenAllocator::k_max_block - 1);
}

TEST(TokenAllocator, ABlockStartsAboveTheRecordWhenTheClockIsBehindIt) {
  TokenAllocator tokens(0xa);
  TokenRecord file{9'000'000, 0xb};  // written by a node whose clock is ahead
  EXPECT_EQ(acquire(tokens, file, 5'000'000), 9'000'001u);
}

// The lock file removed (or replaced, or restored from an old backup) under
// a holder: the record reads as empty or old, and a new daemon's tokens come
// from the clock, above the stale holder's.
TEST(TokenAllocator, ALostRecordDoesNotResetTokens) {
  TokenRecord file;
  TokenAllocator a(1);
  std::uint64_t clock = 1'700'000'000'000'000;
  std::uint64_t stale = 0;
  for (int i = 0; i < 50; ++i) stale = acquire(a, file, clock += 10);
  TokenRecord backup{file.reserved_upto - 200, 1};
  for (TokenRecord lost : {TokenRecord{}, backup}) {
    TokenAllocator b(2);
    clock += TokenAllocator::k_max_block;  // a block's span later
    std::uint64_t fresh = acquire(b, lost, clock);
    EXPECT_GT(fresh, stale);
  }
  // The same daemon never goes back either, even with its clock behind.
  TokenRecord wiped;
  EXPECT_GT(acquire(a, wiped, 1), stale);
}

// Grants faster than the clock: tokens may get ahead of it, but a new block
// never ends more than k_max_block above the reserver's clock unless the
// record was already there (then it takes the smallest block).
TEST(TokenAllocator, BlocksStayWithinMaxBlockOfTheClock) {
  TokenRecord file;
  TokenAllocator a(1);
  const std::uint64_t clock = 1'700'000'000'000'000;
  std::uint64_t last = 0;
  for (int i = 0; i < 20000; ++i) {
    std::uint64_t before = file.reserved_upto;
    std::uint64_t token = acquire(a, file, clock);  // the clock stands still
    ASSERT_GT(token, last);
    last = token;
    if (file.reserved_upto != before) {
      ASSERT_LE(file.reserved_upto, std::max(clock + TokenAllocator::k_max_block - 1,
                                             before + TokenAllocator::k_min_block));
    }
  }
}

TEST(TokenAllocator, ClockGoingBackDoesNotMakeTokensGoBack) {
  TokenRecord file;
  TokenAllocator a(1), b(2);
  std::uint64_t last = 0;
  std::uint64_t clocks[] = {5000, 9000, 100, 7000, 7000, 1, 20000, 3};
  for (int round = 0; round < 64; ++round) {
    std::uint64_t token = acquire(round % 2 ? a : b, file, clocks[round % 8]);
    ASSERT_GT(token, last) << "round " << round;
    last = token;
  }
}

TEST(TokenAllocator, ReusesItsOwnBlockWithoutWriting) {
  TokenAllocator tokens(0xa);
  TokenRecord file;
  acquire(tokens, file);
  TokenRecord written = file;
  std::uint64_t expected = file.reserved_upto - TokenAllocator::k_min_block + 2;
  for (; expected <= file.reserved_upto; ++expected) {
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
      std::uint64_t token = acquire(who, file, static_cast<std::uint64_t>(round) * 7);
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
