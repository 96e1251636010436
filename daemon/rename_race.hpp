// A file replaced by a rename (from this node or another) between the lookup
// of its name and the use of what the lookup found. NFS and GlusterFS answer
// ESTALE there (the handle names an inode that is gone), and GlusterFS also
// ENOENT for a name it had just resolved: 138 of 150 `baton cat` on one
// GlusterFS mount hit it while another mount published. It is a race to
// retry, never the caller's mistake: one helper decides what counts, and
// one bound holds for every retry (docs/handoff.md, "Reads that race a
// rename").
#pragma once

#include <cerrno>
#include <chrono>
#include <system_error>
#include <thread>

namespace baton::daemon {

// ESTALE anywhere; ENOENT only when the name was found just before
// (NAME_WAS_FOUND), else it is a plain "does not exist".
inline bool replaced_under_us(int error, bool name_was_found) {
  return error == ESTALE || (name_was_found && error == ENOENT);
}
inline bool replaced_under_us(const std::error_code& ec, bool name_was_found) {
  return (ec.category() == std::system_category() ||
          ec.category() == std::generic_category()) &&
         replaced_under_us(ec.value(), name_was_found);
}

// The bound on retrying a rename race: k_max_tries tries or k_max_time,
// whichever comes first. The first retries are immediate (a publish's
// rename is one round trip), then a backoff doubling from 1 ms to 50 ms,
// so that a writer publishing in a loop cannot starve a reader for long.
// Blocks (sleeps): call off the event loop.
class RenameRaceRetry {
 public:
  static constexpr int k_max_tries = 50;
  static constexpr std::chrono::milliseconds k_max_time{2000};

  // Whether to try again; sleeps the backoff first. False once the bound is
  // reached.
  bool again() {
    using namespace std::chrono;
    if (++m_tries >= k_max_tries || steady_clock::now() - m_start >= k_max_time)
      return false;
    if (m_tries > 3) {
      std::this_thread::sleep_for(m_backoff);
      m_backoff = std::min(m_backoff * 2, milliseconds(50));
    }
    return true;
  }
  int tries() const noexcept { return m_tries; }

 private:
  std::chrono::steady_clock::time_point m_start =
      std::chrono::steady_clock::now();
  std::chrono::milliseconds m_backoff{1};
  int m_tries = 0;
};

}  // namespace baton::daemon
