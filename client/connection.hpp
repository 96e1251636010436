// One connection to batond: framing, request/reply matching with deadlines,
// and dispatch of events to the locks they concern. Shared by the Client and
// every Lock it handed out, so the socket lives as long as either.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "baton/client.hpp"
#include "protocol/messages.hpp"

namespace baton::detail {

using Clock = std::chrono::steady_clock;

struct LockState {
  std::string name;
  LockMode mode = LockMode::exclusive;
  std::uint64_t token = 0;
  std::chrono::microseconds waited{0};
  bool released = false;
  std::error_code lost;
  std::string lost_message;
  // Lost for the holder (the daemon is revoking it) but still held by the
  // daemon until released or the revocation deadline: release() unlocks.
  bool revoking = false;
  std::function<void(std::error_code)> on_lost;

  void mark_lost(std::error_code reason, std::string message = {});
};

// A claimed queue item, as the connection knows it: told when the daemon
// reports the claim lost (claim_lost) or the connection closes.
struct ClaimState {
  std::uint64_t claim = 0;
  std::error_code lost;
  std::string lost_message;
};

class Connection {
 public:
  ~Connection();

  // Connects and reads the greeting, retrying until the connect timeout.
  static std::shared_ptr<Connection> open(const ClientOptions& options,
                                          std::error_code& ec);

  const ServerInfo& server_info() const noexcept { return m_server; }
  const ClientOptions& options() const noexcept { return m_options; }
  std::string& last_error_message() noexcept { return m_last_error; }
  int fd() const noexcept { return m_fd; }

  // Sends REQUEST and blocks until its reply or DEADLINE (nullopt: none).
  // An error reply comes back as EC (its message in last_error_message()).
  // Events and stray replies met on the way are dispatched. ON_INTERIM sees
  // any interim message for this request.
  std::optional<nlohmann::json> call(
      protocol::RequestBody body, std::optional<Clock::time_point> deadline,
      std::error_code& ec,
      const std::function<void(const nlohmann::json&)>& on_interim = {});

  // Sends REQUEST without waiting for its reply (which is dropped later).
  void send_only(protocol::RequestBody body, std::error_code& ec);

  // The next descriptor the daemon passed (SCM_RIGHTS), owned by the
  // caller; -1 if none came. Replies marked "fd":true carry one each.
  int take_fd();

  // Dispatches whatever is readable now, without blocking.
  std::error_code process_events();

  void track(const std::shared_ptr<LockState>& lock);
  void untrack(const std::string& name);
  void track(const std::shared_ptr<ClaimState>& claim);
  void untrack(std::uint64_t claim);

  void close() noexcept;

 private:
  Connection(int fd, ClientOptions options) : m_fd(fd), m_options(std::move(options)) {}

  std::error_code read_greeting(Clock::time_point deadline);
  // The request line, with our identity if this is the first request.
  std::string encode(protocol::RequestBody body);
  std::error_code send_line(const std::string& line);
  // Reads more bytes: blocks until DEADLINE (nullopt: none), or not at all
  // when DEADLINE is now or past.
  std::error_code fill(std::optional<Clock::time_point> deadline);
  // Takes one complete line out of the buffer, if there is one.
  std::optional<std::string> take_line();
  // Handles one daemon message that is not the reply being waited for.
  std::error_code dispatch(const protocol::ServerMessage& message);
  void fail(std::error_code reason);

  int m_fd = -1;
  ClientOptions m_options;
  ServerInfo m_server;
  std::string m_buffer;
  std::deque<int> m_fds;  // received with the bytes in m_buffer, in order
  std::uint64_t m_next_id = 1;
  bool m_identified = false;  // the daemon has our ClientIdentity
  std::error_code m_broken;  // set once the connection is unusable
  std::string m_last_error;
  std::map<std::string, std::weak_ptr<LockState>, std::less<>> m_locks;
  std::map<std::uint64_t, std::weak_ptr<ClaimState>> m_claims;
};

}  // namespace baton::detail
