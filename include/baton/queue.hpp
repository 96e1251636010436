// Spool queues between jobs: enqueue items, claim each exactly once (among
// all consumers of all pods), acknowledge or give back. An item a consumer
// claimed returns to the queue if the consumer dies.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

namespace baton {

namespace detail {
class Connection;
struct ClaimState;
}  // namespace detail

// An item being written. Write to fd(), then commit(); destroying it
// uncommitted discards it. Obtained from Client::enqueue().
class PendingItem {
 public:
  PendingItem() noexcept;
  ~PendingItem();
  PendingItem(PendingItem&&) noexcept;
  PendingItem& operator=(PendingItem&&) noexcept;

  int fd() const noexcept;  // write-only, owned; -1 when empty

  // Makes the item durable and visible to consumers; returns its id (ids
  // sort in enqueue order). Blocks (fsync). Errors: io_error, connection_lost.
  std::string commit();
  std::string commit(std::error_code& ec);
  void abort() noexcept;

 private:
  friend class Client;
  PendingItem(std::shared_ptr<detail::Connection> connection, std::uint64_t stage,
              int fd) noexcept;
  std::shared_ptr<detail::Connection> m_connection;
  std::uint64_t m_stage = 0;
  int m_fd = -1;
};

// A claimed item: read it from fd(), then ack() when done. Destroying it
// without ack() gives it back (nack), as does the death of the process.
class QueueItem {
 public:
  QueueItem() noexcept;
  ~QueueItem();
  QueueItem(QueueItem&&) noexcept;
  QueueItem& operator=(QueueItem&&) noexcept;

  explicit operator bool() const noexcept { return m_claim != 0; }
  const std::string& id() const noexcept { return m_id; }
  int fd() const noexcept;  // read-only, owned; -1 when empty

  // Removes the item for good. Blocks until the daemon confirms. Errors:
  // lock_lost (the claim was lost, see lost(): nothing was removed),
  // connection_lost (the item goes back to the queue), io_error.
  void ack();
  void ack(std::error_code& ec);
  // Returns the item to the queue. Does not wait for the daemon. After a
  // lost claim the daemon touches nothing.
  void nack() noexcept;

  // True once the daemon reported the claim lost (errc::lock_lost: its lock
  // or its file in cur/ went, e.g. after a network partition, and another
  // consumer may own the item now) or the connection closed
  // (errc::connection_lost). Stop working on the item then: its ack will be
  // refused. Events are read by Client::process_events() and by any call;
  // the socket (Client::native_handle()) is readable when one is pending.
  bool lost() const noexcept;
  std::error_code lost_reason() const noexcept;
  const std::string& lost_message() const noexcept;  // the daemon's explanation

 private:
  friend class Client;
  QueueItem(std::shared_ptr<detail::Connection> connection, std::uint64_t claim,
            std::string id, int fd) noexcept;
  void reset() noexcept;
  std::shared_ptr<detail::Connection> m_connection;
  std::shared_ptr<detail::ClaimState> m_state;
  std::uint64_t m_claim = 0;
  std::string m_id;
  int m_fd = -1;
};

}  // namespace baton
