// A connection to the local batond sidecar: named locks that exclude across
// pods and nodes sharing one volume.
//
// All calls are synchronous. A Client is not thread-safe: use it from one
// thread at a time (one client per thread is cheap). Every call comes in two
// forms: one throws std::system_error, the other reports through an
// std::error_code& and never throws.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "baton/error.hpp"
#include "baton/lock.hpp"
#include "baton/publish.hpp"
#include "baton/queue.hpp"
#include "baton/status.hpp"

namespace baton {

// $BATON_SOCKET, or /run/baton/baton.sock.
std::string default_socket_path();

struct ClientOptions {
  std::string socket_path = default_socket_path();
  // How long connect() keeps retrying while the sidecar is starting.
  // Zero: one attempt.
  std::chrono::milliseconds connect_timeout{10000};
  // Bound on any request that does not wait for a lock (ping, status, ...).
  std::chrono::milliseconds request_timeout{30000};
};

// Reported while a lock request waits in the daemon's queue.
struct QueueInfo {
  std::string name;
  std::size_t position = 0;       // 1 = next in this daemon
  std::optional<Holder> holder;   // who holds it now, when known
};

struct LockOptions {
  LockMode mode = LockMode::exclusive;
  // How long to wait. nullopt: until granted. Zero: try once.
  std::optional<std::chrono::milliseconds> timeout;
  // Called (at most once) if the request has to wait.
  std::function<void(const QueueInfo&)> on_queued;
};

class Client {
 public:
  Client() noexcept;
  ~Client();  // closes the connection once no Lock refers to it
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;

  // Connects and reads the daemon's greeting, retrying a missing or refusing
  // socket until options.connect_timeout. Blocks.
  // Errors: daemon_unreachable, version_mismatch, protocol_error.
  void connect(const ClientOptions& options = {});
  void connect(const ClientOptions& options, std::error_code& ec) noexcept;
  bool connected() const noexcept;

  // Acquires NAME. Blocks until granted, the timeout runs out (timed_out),
  // or, with a zero timeout, at once (busy). The returned guard releases it.
  // Errors: busy, timed_out, invalid_name, already_held, limit_exceeded,
  // shutting_down, connection_lost, io_error.
  Lock lock(std::string_view name, const LockOptions& options = {});
  Lock lock(std::string_view name, const LockOptions& options,
            std::error_code& ec);

  // lock() with a zero timeout.
  Lock try_lock(std::string_view name, LockMode mode = LockMode::exclusive);
  Lock try_lock(std::string_view name, LockMode mode, std::error_code& ec);

  // Starts a new version of PATH (relative to the daemon's root). The daemon
  // creates a hidden staging file beside PATH and passes its descriptor.
  // Errors: invalid_path, path_outside_root, io_error, connection_lost.
  Publisher publish(std::string_view path, const PublishOptions& options = {});
  Publisher publish(std::string_view path, const PublishOptions& options,
                    std::error_code& ec);

  // Opens the current version of PATH for reading. Errors: not_found,
  // invalid_path, path_outside_root, io_error.
  OpenedFile open(std::string_view path);
  OpenedFile open(std::string_view path, std::error_code& ec);

  // Blocks until PATH exists (and is newer than options.newer_than), in any
  // pod; returns its version. Errors: timed_out, invalid_path, ...
  std::uint64_t wait(std::string_view path, const WaitOptions& options = {});
  std::uint64_t wait(std::string_view path, const WaitOptions& options,
                     std::error_code& ec);

  // Starts an item for QUEUE (a directory under the root, created on
  // first use). Errors: invalid_path, path_outside_root, io_error.
  PendingItem enqueue(std::string_view queue);
  PendingItem enqueue(std::string_view queue, std::error_code& ec);

  // Claims the oldest item of QUEUE, waiting up to TIMEOUT (nullopt: until
  // one comes; zero: no wait). Errors: timed_out, invalid_path, io_error.
  QueueItem claim(std::string_view queue,
                  std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  QueueItem claim(std::string_view queue, std::optional<std::chrono::milliseconds> timeout,
                  std::error_code& ec);

  // Round trip to the daemon. Blocks for at most request_timeout.
  void ping();
  void ping(std::error_code& ec);

  // Locks held and waited for here, and the holders other pods recorded.
  Status status();
  Status status(std::error_code& ec);

  const ServerInfo& server_info() const noexcept;

  // The one-line explanation of the last call's error: the daemon's ("lock
  // 'x' is held by another pod") or libbaton's own refusal (a path that is
  // not valid UTF-8). Cleared at the start of every call; empty if none.
  const std::string& last_error_message() const noexcept;

  // The socket, for poll(2): readable when an event (e.g. a lost lock) is
  // pending; then call process_events(). -1 when not connected.
  int native_handle() const noexcept;

  // Reads and dispatches pending events without blocking. Returns
  // connection_lost once the daemon has gone (all locks are then lost).
  std::error_code process_events();

  void close() noexcept;

 private:
  std::shared_ptr<detail::Connection> m_connection;
};

}  // namespace baton
