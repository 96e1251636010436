// Tells waiters that a published file may have changed. inotify on the
// version records sees every publish made through this node's kernel at
// once; it cannot see other nodes (NFS, CephFS), so waiters also re-check on
// a polling interval.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

namespace baton::daemon {

class ChangeNotifier {
 public:
  // Watches WATCH_DIR; without inotify (ENOSYS, limits) it only polls.
  ChangeNotifier(boost::asio::any_io_executor executor, const std::string& watch_dir,
                 std::chrono::milliseconds poll_interval);

  // Counts the changes seen. A waiter takes it before it checks, and passes
  // it to wait_for_change: a change that came while it checked (on the pool)
  // then wakes it at once instead of being lost.
  std::uint64_t generation() const noexcept { return m_generation; }

  // Returns after a change was seen (or had been since SEEN), the poll
  // interval passed, or DEADLINE.
  boost::asio::awaitable<void> wait_for_change(
      std::optional<std::chrono::steady_clock::time_point> deadline,
      std::optional<std::uint64_t> seen = std::nullopt);

  // Also wakes waiters on changes in DIR (e.g. a queue's new/). Idempotent;
  // true when DIR was not watched before (what changed until now is unseen).
  bool watch(const std::string& dir);

  // Starts reading inotify events; call once on the loop.
  boost::asio::awaitable<void> run();
  void stop();

 private:
  boost::asio::posix::stream_descriptor m_inotify;
  boost::asio::steady_timer m_changed;  // cancelled to wake every waiter
  std::chrono::milliseconds m_poll_interval;
  std::set<std::string> m_watched;
  std::uint64_t m_generation = 0;
};

}  // namespace baton::daemon
