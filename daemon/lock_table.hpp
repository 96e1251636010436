// The daemon's locks: for each name, the local holders, a FIFO queue of
// local waiters, and the one OFD lock this daemon holds on the lock file for
// all of them. Only the head of a queue contends on the file; other pods see
// one daemon, and this daemon hands the lock over locally only a bounded
// number of times while another pod waits.
//
// Owned by the event loop: every member is called on its thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "baton/error.hpp"
#include "baton/status.hpp"
#include "daemon/lock_file.hpp"
#include "daemon/lock_waiter.hpp"
#include "daemon/offload.hpp"
#include "daemon/token_allocator.hpp"

namespace baton::daemon {

// Who a lock is for: one client session.
struct ClientInfo {
  std::uint64_t session = 0;
  int pid = 0;
  unsigned uid = 0;
  ClientIdentity reported;    // what the client said about itself
  std::string reported_json;  // the same as a JSON object, "" if nothing
  // Keeps IDENTITY (already bounded and sanitised by the decoder).
  void set_reported(ClientIdentity identity);
  // "pid 41 uid 1000 session 7", plus "(reported pid 3 host job-abc)", for logs
  std::string describe() const;
};

// Implemented by a session so the table can tell it a held lock is gone.
class LockClient {
 public:
  virtual const ClientInfo& client_info() const = 0;
  virtual void lock_lost(const std::string& name, std::uint64_t token,
                         const std::string& why) = 0;
  // The lock will be taken away in REVOKE_IN unless released first (the
  // daemon is stopping): the holder should stop using it now.
  virtual void lock_revoking(const std::string& name, std::uint64_t token,
                             std::chrono::milliseconds revoke_in, const std::string& why) = 0;

 protected:
  ~LockClient() = default;
};

struct LockTableConfig {
  std::string pod;
  std::string node;
  std::uint64_t instance_id = 1;   // this daemon's run: never 0
  unsigned max_local_handovers = 8;  // while another pod waits
  std::size_t max_idle_files = 256;  // lock files kept open when unused
  bool uncached_reads = false;       // see LockFile::open
};

struct Acquired {
  std::error_code error;  // baton::errc; empty when granted
  std::string message;    // one line for the client when error is set
  std::uint64_t token = 0;
  std::chrono::microseconds waited{0};
};

// What status() found: the locks, and what it could not read in time.
struct StatusReport {
  std::vector<LockStatus> locks;
  std::vector<std::string> unknown;  // one line each; empty when complete
};

struct QueuedNotice {
  std::size_t position = 0;
  std::optional<Holder> holder;
};

class LockTable {
 public:
  LockTable(boost::asio::any_io_executor executor, int locks_dir_fd,
            std::string locks_dir_path, Offload& offload, LockTableConfig config);
  ~LockTable();
  LockTable(const LockTable&) = delete;
  LockTable& operator=(const LockTable&) = delete;

  // Acquires NAME for CLIENT: granted, timed out (TIMEOUT nullopt: never;
  // zero: try once), or failed. ON_QUEUED is called at most once, if the
  // request has to wait. The client must call release_all() before it goes.
  boost::asio::awaitable<Acquired> acquire(
      LockClient& client, const std::string& name, LockMode mode,
      std::optional<std::chrono::milliseconds> timeout,
      std::function<void(const QueuedNotice&)> on_queued);

  // Grants NAME to CLIENT at once if nothing stands in the way: no queue,
  // no conflicting holder here, the file lock free, no token block to
  // reserve, and quick calls inline. Otherwise nullopt, and acquire() takes
  // over. An uncontended lock so skips two coroutine hops, and its reply
  // leaves in the same write as the replies before it.
  std::optional<Acquired> acquire_now(LockClient& client, const std::string& name,
                                      LockMode mode);

  // Releases a lock CLIENT holds; errc::not_held otherwise.
  std::error_code release(LockClient& client, const std::string& name);

  // Withdraws CLIENT's queued request for NAME: it completes with
  // errc::cancelled and is never granted. False if none is queued.
  bool cancel(LockClient& client, const std::string& name);

  // Cancels CLIENT's waits and releases its locks: its connection is gone.
  void release_all(LockClient& client);

  // Whether CLIENT holds or waits for NAME.
  bool involves(const LockClient& client, const std::string& name) const;

  // Checks every lock this daemon holds and reports the lost ones to their
  // holders. One pass; the server calls it periodically.
  boost::asio::awaitable<void> verify_held();

  // Refuses new requests from now on and fails every queued one.
  void stop_granting();
  // Tells every holder its lock goes in REVOKE_IN (see revoke_all), at once.
  void announce_revocation(std::chrono::milliseconds revoke_in, const std::string& why);
  // Takes every lock away from its holders, telling them why.
  void revoke_all(const std::string& why);
  bool has_holders() const;

  // Locks held or waited for here (from memory), then those other pods hold
  // right now (a scan of the lock directory, given until DEADLINE: on a hung
  // mount the reply says what it could not read rather than wait).
  boost::asio::awaitable<StatusReport> status(std::chrono::steady_clock::time_point deadline);

 private:
  struct Waiter;
  struct Hold;
  struct Entry;
  using EntryPtr = std::shared_ptr<Entry>;

  EntryPtr find_or_create(const std::string& name);
  void schedule_pump(const EntryPtr& entry);
  boost::asio::awaitable<void> pump(EntryPtr entry);
  boost::asio::awaitable<bool> grant(EntryPtr entry, std::shared_ptr<Waiter> waiter);
  boost::asio::awaitable<void> release_file(EntryPtr entry);
  // Tells WAITER (once) that it waits at POSITION, behind ENTRY's holders.
  void tell_queued(const Entry& entry, Waiter& waiter, std::size_t position);
  // Whether a daemon in another pod waits for ENTRY's file lock.
  boost::asio::awaitable<bool> others_waiting(Entry& entry);
  boost::asio::awaitable<std::optional<Holder>> current_holder(EntryPtr entry);
  void start_file_wait(const EntryPtr& entry, LockMode mode);
  void on_file_wait_done(const EntryPtr& entry, LockMode mode, std::error_code ec);
  void finish(const std::shared_ptr<Waiter>& waiter, Acquired outcome);
  void remove_waiter(const EntryPtr& entry, const std::shared_ptr<Waiter>& waiter);
  void lose(const EntryPtr& entry, const std::string& why);
  void fail_grant(const EntryPtr& entry, const std::shared_ptr<Waiter>& waiter,
                  const std::string& why);
  void forget_if_idle(const EntryPtr& entry);
  void unlock_file_now(const EntryPtr& entry);
  void add_holder(Entry& entry, LockClient& client, LockMode mode, std::uint64_t token,
                  std::chrono::microseconds waited);
  std::string holder_record(const ClientInfo& client, LockMode mode,
                            std::uint64_t token) const;
  // The record of this daemon's shared holders of ENTRY, plus JOINING.
  std::string shared_record(const Entry& entry,
                            const LockClient* joining) const;
  // Writes ENTRY's shared record into its slot, claiming one first if it
  // has none, plus JOINING's hold; inline, or off the loop.
  std::error_code publish_shared_now(Entry& entry, const LockClient* joining);
  boost::asio::awaitable<std::error_code> publish_shared(
      EntryPtr entry, const LockClient* joining);
  // Gives up ENTRY's slot (its record is then stale).
  void release_slot_now(Entry& entry);
  Holder holder_of(const ClientInfo& client, LockMode mode, std::uint64_t token,
                   std::chrono::system_clock::time_point since) const;

  boost::asio::any_io_executor m_executor;
  int m_dir_fd;
  std::string m_dir_path;
  Offload& m_offload;
  LockTableConfig m_config;
  std::string m_holder_prefix;  // pod and node of every holder record, as JSON
  std::map<std::string, EntryPtr, std::less<>> m_entries;
  bool m_granting = true;
  struct Scan;
  std::shared_ptr<Scan> m_scan;  // the last status scan; may still be stuck
};

}  // namespace baton::daemon
