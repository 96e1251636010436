// Bounded polling: the way tests wait for a condition instead of sleeping.
#pragma once

#include <chrono>
#include <thread>

namespace baton::test {

// Calls PREDICATE until it returns true or TIMEOUT passes, every INTERVAL.
// Returns whether it became true (it is tried once more at the deadline).
template <typename Predicate>
bool wait_until(
    Predicate&& predicate, std::chrono::milliseconds timeout,
    std::chrono::milliseconds interval = std::chrono::milliseconds(2)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (predicate()) return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return static_cast<bool>(predicate());
    std::this_thread::sleep_for(interval);
  }
}

}  // namespace baton::test
