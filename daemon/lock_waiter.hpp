// A blocking F_OFD_SETLKW on its own thread, so that a daemon in another pod
// releasing the lock wakes us within microseconds (no polling interval),
// while the event loop goes on. Cancelled by a signal that interrupts the
// system call; if the call is stuck in the kernel beyond signals (a dead
// NFSv3 lock manager), the thread is abandoned, never waited for forever.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <system_error>
#include <thread>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "daemon/lock_file.hpp"

namespace baton::daemon {

// Installs the (empty) handler of the signal that interrupts waits. Call once
// at start-up, before any LockWaiter exists.
void install_wait_interrupt_handler();

class LockWaiter : public std::enable_shared_from_this<LockWaiter> {
 public:
  // Called on EXECUTOR with the outcome: empty when the lock is now held
  // through FILE, std::errc::operation_canceled after cancel(), else the
  // error from the lock call.
  using Done = std::function<void(std::error_code)>;

  // Starts waiting for FILE in MODE. POLITE: first give another pod's waiter
  // a moment to take the lock we just released (fairness across pods).
  static std::shared_ptr<LockWaiter> start(boost::asio::any_io_executor executor,
                                           std::shared_ptr<LockFile> file,
                                           LockMode mode, bool polite, Done done);
  ~LockWaiter();

  LockMode mode() const noexcept { return m_mode; }

  // Waits whose thread has not finished its lock call: at shutdown, more
  // than zero means one may be stuck in the kernel and must not be joined.
  static std::size_t running() noexcept;

  // Asks the wait to stop. Done is still called once (with the lock held if
  // the wait won the race, and then the caller must unlock).
  void cancel();

 private:
  LockWaiter(boost::asio::any_io_executor executor, std::shared_ptr<LockFile> file,
             LockMode mode, Done done);
  void run(bool polite);
  void interrupt_until_done();

  boost::asio::any_io_executor m_executor;
  std::shared_ptr<LockFile> m_file;
  LockMode m_mode;
  Done m_done;
  std::atomic<bool> m_cancelled{false};
  std::atomic<bool> m_finished{false};
  boost::asio::steady_timer m_interrupt_timer;
  std::thread m_thread;
};

}  // namespace baton::daemon
