// One client connection: a coroutine that reads requests, one writer that
// drains a queue so no two messages interleave, and the locks held through
// the connection, all released when it closes for any reason.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "daemon/lock_table.hpp"
#include "protocol/messages.hpp"

namespace baton::daemon {

struct SessionLimits {
  std::size_t max_message_bytes = 64 * 1024;
  std::size_t max_locks = 64;
  std::size_t max_send_queue_bytes = 1024 * 1024;
};

// What a session needs from the daemon around it.
class SessionHost {
 public:
  virtual LockTable& locks() = 0;
  virtual const SessionLimits& session_limits() const = 0;
  virtual const std::string& greeting() const = 0;
  virtual nlohmann::json server_status() const = 0;
  // The session asked for a lock for the first time (not just ping/status).
  virtual void session_used_locks() = 0;

 protected:
  ~SessionHost() = default;
};

class Session final : public LockClient, public std::enable_shared_from_this<Session> {
 public:
  using Socket = boost::asio::local::stream_protocol::socket;

  Session(Socket socket, ClientInfo client, SessionHost& host);

  // Serves the connection until it closes; releases everything after.
  boost::asio::awaitable<void> run();

  // Sends what is queued, then closes (shutdown, refused clients).
  void close_after_flush();
  bool used_locks() const noexcept { return m_used_locks; }

  const ClientInfo& client_info() const override { return m_client; }
  void lock_lost(const std::string& name, std::uint64_t token,
                 const std::string& why) override;

 private:
  boost::asio::awaitable<void> read_requests();
  boost::asio::awaitable<void> write_replies();
  void handle(protocol::Request request);
  boost::asio::awaitable<void> handle_lock(std::uint64_t id, protocol::LockRequest request);
  boost::asio::awaitable<void> handle_status(std::uint64_t id);
  void send(std::string line);
  void close();

  Socket m_socket;
  ClientInfo m_client;
  SessionHost& m_host;
  std::string m_input;
  std::deque<std::string> m_outbox;
  std::size_t m_outbox_bytes = 0;
  boost::asio::steady_timer m_outbox_ready;
  bool m_closing = false;    // no more reading; writer flushes, then closes
  bool m_used_locks = false;
  std::set<std::string, std::less<>> m_names;  // held or requested here
  std::set<std::string, std::less<>> m_lost;   // lost, not yet unlocked
};

}  // namespace baton::daemon
