// A held lock: an RAII guard that releases the lock when it goes out of
// scope. It carries the fencing token and tells its owner when the lock was
// lost. Obtained from baton::Client::lock() and try_lock().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace baton {

enum class LockMode { exclusive, shared };

namespace detail {
class Connection;
struct LockState;
}  // namespace detail

// Empty when NAME is a valid lock name (1-200 characters of [A-Za-z0-9._-]
// and '/', no empty, "." or ".." component), else one line saying why not.
std::string check_lock_name(std::string_view name);

class Lock {
 public:
  // An empty guard that owns nothing.
  Lock() noexcept;
  ~Lock();  // releases the lock if still held; never throws, never blocks
  Lock(Lock&&) noexcept;
  Lock& operator=(Lock&&) noexcept;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  // True while this guard owns a lock that was not released. A lost lock is
  // still "owned" until released: check lost() for that.
  bool owns_lock() const noexcept;
  explicit operator bool() const noexcept { return owns_lock(); }

  const std::string& name() const noexcept;
  LockMode mode() const noexcept;

  // The fencing token of this hold: strictly greater than every token issued
  // before for this name, in any pod. Exclusive holds only; 0 for shared.
  std::uint64_t token() const noexcept;

  // How long the daemon queued the request before granting it.
  std::chrono::microseconds waited() const noexcept;

  // True once the daemon reported the lock lost or the connection closed,
  // or said it is revoking the lock (it is stopping: errc::lock_lost, and
  // lost_message() says when). Then stop using it and release() it: the
  // daemon keeps it from other pods until then or its grace ends.
  // Reads pending events from the socket without blocking, so a job can poll
  // it between units of work. Not thread-safe with other calls on the client.
  bool lost();
  // Why the lock was lost (errc::lock_lost or errc::connection_lost), or an
  // empty code while it is not.
  std::error_code lost_reason() const noexcept;
  // The daemon's one-line explanation of the loss ("lock file ...:
  // Input/output error"), empty when it gave none.
  const std::string& lost_message() const noexcept;

  // Called once, from whichever call on the client notices the loss
  // (lost(), Client::process_events(), or any request). Replaces an earlier
  // callback. Called at once if the lock is already lost.
  void on_lost(std::function<void(std::error_code)> callback);

  // Releases the lock. Does not wait for the daemon's reply: the release is
  // ordered before any later request on the same client. Idempotent.
  void release() noexcept;

 private:
  friend class Client;
  Lock(std::shared_ptr<detail::Connection> connection,
       std::shared_ptr<detail::LockState> state) noexcept;

  std::shared_ptr<detail::Connection> m_connection;
  std::shared_ptr<detail::LockState> m_state;
};

}  // namespace baton
