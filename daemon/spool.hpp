// Spool queues, Maildir style: a queue is a directory under the root with
// tmp/, new/ and cur/. Enqueue writes into tmp/ and renames into new/;
// claim renames one item from new/ into cur/, and the rename picks exactly
// one winner among all consumers of all pods. A claimed item stays locked
// (OFD) while it is processed, so an item in cur/ that nobody locks belongs
// to a consumer that died, and goes back to new/. Ack removes the item;
// nack returns it.
//
// Item ids sort in enqueue order: <ns since the epoch>.<daemon>.<n>. Within
// a node that is exact; across nodes it follows their clocks.
//
// Every function blocks (rename, fsync, directory scans): off the loop.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "daemon/backlog.hpp"
#include "daemon/publish.hpp"
#include "daemon/root_dir.hpp"

namespace baton::daemon {

// A queue's three directories, opened beneath the root.
class Spool {
 public:
  // Opens (CREATE: creating) the queue at PATH.
  static std::unique_ptr<Spool> open(const RootDir& root, const std::string& path, bool create,
                                     Failure& failure);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  const std::string& path() const noexcept { return m_path; }
  int new_dir() const noexcept { return m_new; }

 private:
  friend class StagedItem;
  friend class ClaimedItem;
  friend std::unique_ptr<class ClaimedItem> claim_next(std::shared_ptr<Spool>,
                                                       std::shared_ptr<Backlog>,
                                                       Backlog::Clock::duration,
                                                       std::uint64_t, Failure&);
  Spool() = default;
  std::string m_path;
  int m_tmp = -1;
  int m_new = -1;
  int m_cur = -1;
};

// An item being written in tmp/; removed unless committed.
class StagedItem {
 public:
  static std::unique_ptr<StagedItem> create(std::shared_ptr<Spool> spool, std::uint64_t instance,
                                            Failure& failure);
  ~StagedItem();
  int writer_fd(Failure& failure) const;
  // fsync, rename into new/, fsync new/. Returns the item id.
  std::optional<std::string> commit(Failure& failure);
  const std::string& id() const noexcept { return m_id; }

 private:
  StagedItem() = default;
  std::shared_ptr<Spool> m_spool;
  std::string m_id;
  int m_fd = -1;
  bool m_committed = false;
};

// An item claimed from new/ into cur/, locked while we hold this object.
// Destroying it without ack() returns the item to new/ (nack).
class ClaimedItem {
 public:
  ~ClaimedItem();
  const std::string& id() const noexcept { return m_id; }
  // A read-only descriptor of the item for the consumer, owned by the caller.
  int reader_fd(Failure& failure) const;
  // Ack removes the item for good, nack returns it to new/; both only
  // after still_ours(), else they touch nothing and fail with lock_lost.
  bool ack(Failure& failure);
  bool nack(Failure& failure);
  // Whether the claim still holds: our descriptor is still the file at
  // cur/<our claim name>, readable, and our OFD lock re-asserts. Else
  // FAILURE (lock_lost) says why: another consumer may own the item now.
  bool still_ours(Failure& failure) const;
  // The claim was lost: the destructor must not give the item back.
  void abandon() noexcept;

 private:
  friend std::unique_ptr<ClaimedItem> claim_next(std::shared_ptr<Spool>,
                                                 std::shared_ptr<Backlog>,
                                                 Backlog::Clock::duration,
                                                 std::uint64_t, Failure&);
  ClaimedItem() = default;
  std::shared_ptr<Spool> m_spool;
  std::shared_ptr<Backlog> m_backlog;  // told when the item goes back
  std::string m_id;
  std::string m_cur_name;  // in cur/: the id and this claim's own suffix
  int m_fd = -1;
  bool m_done = false;
};

// Claims the oldest item of new/ that BACKLOG remembers. When it remembers
// none, or its listing is older than RESCAN_AFTER, abandoned items in cur/
// go back to new/ and new/ is listed again. Null (and no failure) when the
// queue is empty.
// The item is renamed to cur/<id>.claim-<INSTANCE>-<n>, a name of this
// claim's own (see ClaimedItem::still_ours).
std::unique_ptr<ClaimedItem> claim_next(std::shared_ptr<Spool> spool,
                                        std::shared_ptr<Backlog> backlog,
                                        Backlog::Clock::duration rescan_after,
                                        std::uint64_t instance,
                                        Failure& failure);

}  // namespace baton::daemon
