// Fencing tokens that grow strictly across every daemon on the volume and
// across restarts, without an fsync per grant.
//
// The token record in the lock file says "every token up to R is taken, by
// daemon instance O". Whoever holds the file lock exclusively and finds
// someone else's record reserves a block above R and makes that durable
// before handing out the first token of it; until its block runs out, or
// another daemon writes a record, it hands out tokens from memory. A daemon
// that restarts gets a new instance id, so it never trusts an old block.
// Tokens therefore skip numbers when the lock moves between pods; they never
// repeat or go back while the record is intact (the block was durable on the
// server before any token of it was used).
//
// A hybrid-clock floor covers the record being lost: a block starts at
// max(R + 1, wall clock in microseconds since the epoch) and ends no more
// than k_max_block microseconds above the reserver's clock (unless the record
// itself was already further ahead). So after the lock file is removed or
// replaced, or .baton/ is restored from an old backup, new tokens are still
// above every token issued more than k_max_block us + the clock skew between
// nodes earlier. See docs/semantics.md, "Fencing tokens".
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "daemon/lock_file.hpp"

namespace baton::daemon {

class TokenAllocator {
 public:
  static constexpr std::uint64_t k_min_block = 16;
  static constexpr std::uint64_t k_max_block =
      4096;  // tokens, and microseconds

  explicit TokenAllocator(std::uint64_t instance_id)
      : m_instance(instance_id) {}

  // Microseconds since the epoch: below 2^53 (exact as a JSON double) until
  // the year 2255.
  static std::uint64_t wall_clock_us() {
    auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch)
                  .count();
    return us > 0 ? static_cast<std::uint64_t>(us) : 0;
  }

  // The record found in the file after taking the file lock exclusively.
  void observe(const TokenRecord& record) {
    if (record.owner == m_instance && record.reserved_upto == m_reserved)
      return;
    // Someone else's record, or ours rewritten (the file was removed,
    // replaced or restored): never below what this allocator handed out.
    m_next = std::max(m_next, record.reserved_upto + 1);
    m_reserved = record.reserved_upto;
    m_block = k_min_block;  // the lock moves between pods: keep gaps small
  }

  // True when take() needs a new block written (durably) first.
  bool needs_reservation() const { return m_next > m_reserved; }

  // The record to write for the next block, on a clock reading NOW_US: it
  // starts at max(next, now) and ends at most k_max_block above now.
  TokenRecord next_reservation(std::uint64_t now_us) {
    m_pending_start = std::max(m_next, now_us);
    std::uint64_t end = m_pending_start + m_block - 1;
    const std::uint64_t ahead_cap = now_us + k_max_block - 1;
    if (end > ahead_cap)
      end = std::max(ahead_cap, m_pending_start + k_min_block - 1);
    return {end, m_instance};
  }

  // The reservation is durable now: tokens come from it.
  void reserved(const TokenRecord& record) {
    m_next = std::max(m_next, m_pending_start);
    m_reserved = record.reserved_upto;
    m_block = std::min(m_block * 2, k_max_block);
  }

  std::uint64_t take() { return m_next++; }

 private:
  std::uint64_t m_instance;
  std::uint64_t m_next = 1;
  std::uint64_t m_reserved = 0;
  std::uint64_t m_pending_start = 1;
  std::uint64_t m_block = k_min_block;
};

}  // namespace baton::daemon
