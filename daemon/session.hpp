// One client connection: a coroutine that reads requests, one writer that
// drains a queue so no two messages interleave, and the locks held through
// the connection, all released when it closes for any reason.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "daemon/backlog.hpp"
#include "daemon/change_notifier.hpp"
#include "daemon/lock_table.hpp"
#include "daemon/offload.hpp"
#include "daemon/publish.hpp"
#include "daemon/root_dir.hpp"
#include "daemon/spool.hpp"
#include "protocol/messages.hpp"

namespace baton::daemon {

struct SessionLimits {
  std::size_t max_message_bytes = 64 * 1024;
  std::size_t max_locks = 64;
  std::size_t max_send_queue_bytes = 1024 * 1024;
  std::size_t max_stages = 16;  // publishes, enqueues or claims open at once
  std::size_t max_waits = 64;   // wait requests pending at once
  // No complete request this long after connecting, or a line left
  // unfinished this long: closed (unless it holds or waits). Zero: never.
  std::chrono::milliseconds idle_timeout{10000};
};

// Bytes of request input and reply output buffered by all sessions
// together. Each session's first k_free_bytes of each are not counted, so a
// well-behaved client is served even when the budget is spent by others.
struct BufferBudget {
  static constexpr std::size_t k_free_bytes = 16 * 1024;
  std::size_t limit = 64 * 1024 * 1024;
  std::size_t used = 0;
  bool take(std::size_t bytes) {
    if (bytes > limit - std::min(used, limit)) return false;
    used += bytes;
    return true;
  }
  void give(std::size_t bytes) { used -= std::min(used, bytes); }
};

// What a session needs from the daemon around it.
class SessionHost {
 public:
  virtual LockTable& locks() = 0;
  virtual Offload& offload() = 0;
  virtual const RootDir& root() const = 0;
  virtual ChangeNotifier& changes() = 0;
  virtual Backlogs& backlogs() = 0;
  virtual std::uint64_t instance_id() const = 0;
  virtual const SessionLimits& session_limits() const = 0;
  virtual std::shared_ptr<BufferBudget> buffer_budget() = 0;
  virtual const std::string& greeting() const = 0;
  virtual nlohmann::json server_status() const = 0;
  // How long a status request may wait for the filesystem.
  virtual std::chrono::milliseconds status_budget() const = 0;
  // The session made its first real request (not just ping or status).
  virtual void session_did_work() = 0;

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
  bool did_work() const noexcept { return m_did_work; }

  // For the server's choice of a connection to close when it is full.
  bool closing() const noexcept { return m_closing; }
  // Sent a complete line yet; when the last one ended.
  bool spoke() const noexcept { return m_spoke; }
  std::chrono::steady_clock::time_point last_active() const noexcept { return m_last_active; }
  // Holds, waits for or stages something, or has a request or reply in flight.
  bool busy() const noexcept;
  // Tells the client why (a line with "id":null), then closes at once.
  void close_with_error(errc code, const std::string& message);

  const ClientInfo& client_info() const override { return m_client; }
  void lock_lost(const std::string& name, std::uint64_t token,
                 const std::string& why) override;
  // Checks every item claimed here (ClaimedItem::still_ours); a lost claim
  // is dropped without touching the item, and the client gets a claim_lost
  // event. Called by the server's check loop, beside LockTable::verify_held.
  boost::asio::awaitable<void> verify_claims();
  void lock_revoking(const std::string& name, std::uint64_t token,
                     std::chrono::milliseconds revoke_in, const std::string& why) override;

 private:
  boost::asio::awaitable<void> read_requests();
  boost::asio::awaitable<void> write_replies();
  void handle_line(std::string_view line);  // one request line, without its newline
  void handle(protocol::Request request);
  static std::string granted_reply(std::uint64_t id, const std::string& name,
                                   const Acquired& granted);
  boost::asio::awaitable<void> handle_lock(std::uint64_t id, protocol::LockRequest request);
  boost::asio::awaitable<void> handle_status(std::uint64_t id);
  boost::asio::awaitable<void> handle_publish_begin(std::uint64_t id,
                                                    protocol::PublishBeginRequest request);
  boost::asio::awaitable<void> handle_publish_commit(std::uint64_t id,
                                                     protocol::PublishCommitRequest request);
  boost::asio::awaitable<void> handle_read(std::uint64_t id, protocol::ReadRequest request);
  boost::asio::awaitable<void> handle_wait(std::uint64_t id, protocol::WaitRequest request);
  boost::asio::awaitable<void> handle_enqueue_begin(std::uint64_t id,
                                                    protocol::EnqueueBeginRequest request);
  boost::asio::awaitable<void> handle_enqueue_commit(std::uint64_t id,
                                                     protocol::EnqueueCommitRequest request);
  boost::asio::awaitable<void> handle_claim(std::uint64_t id, protocol::ClaimRequest request);
  boost::asio::awaitable<void> finish_claim(std::uint64_t id, std::uint64_t claim, bool ack);
  boost::asio::awaitable<void> discard_stages();
  template <typename Handler, typename... Args>
  void spawn(Handler handler, std::uint64_t id, Args... args);
  void send_error(std::uint64_t id, const Failure& failure);
  // Queues LINE; FD (owned, may be -1) travels with it as SCM_RIGHTS.
  void send(std::string line, int fd = -1);
  boost::asio::awaitable<bool> send_with_fd(std::string& bytes, int fd);
  void close();
  void note_input(bool completed_a_line);  // after a read: the idle deadline
  void arm_idle_timer();
  void idle_timer_fired();
  // Charges the budget for INPUT_CAPACITY and OUTBOX bytes; false (nothing
  // changed) if that exceeds it, unless FORCE.
  bool recharge(std::size_t input_capacity, std::size_t outbox, bool force = false);

  Socket m_socket;
  ClientInfo m_client;
  SessionHost& m_host;
  std::string m_input;
  struct Outgoing {
    std::string bytes;
    int fd = -1;  // owned until sent
  };
  std::deque<Outgoing> m_outbox;
  static constexpr std::size_t k_max_batch = 64;  // replies per write
  std::vector<boost::asio::const_buffer> m_batch;  // the write in progress
  std::size_t m_outbox_bytes = 0;
  boost::asio::steady_timer m_outbox_ready;
  bool m_closing = false;    // no more reading; writer flushes, then closes
  std::shared_ptr<BufferBudget> m_budget;
  std::size_t m_charged = 0;  // of m_budget, for m_input and m_outbox
  bool m_spoke = false;
  std::chrono::steady_clock::time_point m_last_active = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> m_line_since;  // idle deadline runs from here
  boost::asio::steady_timer m_idle_timer;
  bool m_idle_armed = false;
  std::size_t m_in_flight = 0;  // spawned handlers not finished
  bool m_did_work = false;
  std::set<std::string, std::less<>> m_names;  // held or requested here
  std::set<std::string, std::less<>> m_lost;   // lost, not yet unlocked
  // Lock requests not answered yet (queued, or granted but not yet told),
  // by name: an unlock of one withdraws it (answered `cancelled` at once).
  std::map<std::string, std::uint64_t, std::less<>> m_waiting;
  std::map<std::uint64_t, std::unique_ptr<StagedFile>> m_stages;
  std::map<std::uint64_t, std::unique_ptr<StagedItem>> m_items;
  struct Claim {
    std::shared_ptr<ClaimedItem> item;  // shared with a check in progress
    std::string queue;
  };
  std::map<std::uint64_t, Claim> m_claims;
  std::map<std::uint64_t, std::string> m_lost_claims;  // claim_lost sent, why
  std::uint64_t m_next_stage = 1;
  // Requests accepted but not finished yet, so that pipelined requests
  // count against the limits before their work is done.
  std::size_t m_pending_publishes = 0;
  std::size_t m_pending_items = 0;
  std::size_t m_pending_claims = 0;
  std::size_t m_pending_waits = 0;  // ids of stages, items and claims alike
};

}  // namespace baton::daemon
