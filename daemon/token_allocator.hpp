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
// repeat or go back, even after a partition (the block was durable on the
// server before any token of it was used).
#pragma once

#include <algorithm>
#include <cstdint>

#include "daemon/lock_file.hpp"

namespace baton::daemon {

class TokenAllocator {
 public:
  static constexpr std::uint64_t k_min_block = 16;
  static constexpr std::uint64_t k_max_block = 4096;

  explicit TokenAllocator(std::uint64_t instance_id) : m_instance(instance_id) {}

  // The record found in the file after taking the file lock exclusively.
  void observe(const TokenRecord& record) {
    if (record.owner == m_instance && record.reserved_upto == m_reserved) return;
    m_next = record.reserved_upto + 1;
    m_reserved = record.reserved_upto;
    m_block = k_min_block;  // the lock moves between pods: keep gaps small
  }

  // True when take() needs a new block written (durably) first.
  bool needs_reservation() const { return m_next > m_reserved; }

  TokenRecord next_reservation() const {
    return {m_next - 1 + m_block, m_instance};
  }

  // The reservation is durable now.
  void reserved(const TokenRecord& record) {
    m_reserved = record.reserved_upto;
    m_block = std::min(m_block * 2, k_max_block);
  }

  std::uint64_t take() { return m_next++; }

 private:
  std::uint64_t m_instance;
  std::uint64_t m_next = 1;
  std::uint64_t m_reserved = 0;
  std::uint64_t m_block = k_min_block;
};

}  // namespace baton::daemon
