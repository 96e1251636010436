#include "daemon/spool.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

#include "baton/error.hpp"
#include "daemon/ofd.hpp"

namespace baton::daemon {
namespace {

Failure errno_failure(const std::string& what) {
  return {std::error_code(errno, std::system_category()), what + ": " + std::strerror(errno)};
}

// Names a scan must not take for items: dot-files (our staging, editors)
// and NFS's silly-renamed ".nfsXXXX" files of unlinked open files.
bool is_item_name(std::string_view name) { return !name.empty() && name.front() != '.'; }

std::vector<std::string> list_items(int dir_fd) {
  std::vector<std::string> names;
  int scan_fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (scan_fd < 0) return names;
  DIR* dir = ::fdopendir(scan_fd);
  if (!dir) {
    ::close(scan_fd);
    return names;
  }
  while (dirent* entry = ::readdir(dir))
    if (is_item_name(entry->d_name)) names.emplace_back(entry->d_name);
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

bool same_file(int fd, int dir_fd, const std::string& name) {
  struct stat mine{}, there{};
  return ::fstat(fd, &mine) == 0 &&
         ::fstatat(dir_fd, name.c_str(), &there, AT_SYMLINK_NOFOLLOW) == 0 &&
         mine.st_ino == there.st_ino && mine.st_dev == there.st_dev;
}

// rename(2) that tells a lost race from an NFS retransmission that hid our
// own success: FD is the file being moved.
bool move_item(int fd, int from_dir, const std::string& from, int to_dir,
               const std::string& to) {
  if (::renameat(from_dir, from.c_str(), to_dir, to.c_str()) == 0) return true;
  return errno == ENOENT && same_file(fd, to_dir, to);
}
bool move_item(int fd, int from_dir, int to_dir, const std::string& name) {
  return move_item(fd, from_dir, name, to_dir, name);
}

// A claimed item's name in cur/: its id, then the claim's own suffix, so
// that every claim of an item has a name of its own. A consumer whose claim
// was lost (its lock dropped in a partition, the item given back and claimed
// again elsewhere) then names a path that no longer exists: rename and
// unlink by name fence it atomically, on every filesystem.
constexpr std::string_view k_claim_mark = ".claim-";

std::string claim_name(const std::string& id, std::uint64_t instance) {
  static std::atomic<std::uint64_t> counter{0};
  char suffix[64];
  std::snprintf(suffix, sizeof suffix, "%s%016" PRIx64 "-%" PRIu64,
                k_claim_mark.data(), instance, ++counter);
  return id + suffix;
}

// The item id of a name in cur/ (names of older daemons have no suffix).
std::string id_of_claim_name(const std::string& name) {
  const std::size_t mark = name.rfind(k_claim_mark);
  return mark == std::string::npos || mark == 0 ? name : name.substr(0, mark);
}

// Returns items in cur/ whose consumer died (nobody holds their lock), and
// removes half-written items in tmp/ whose daemon died (unlocked, and older
// than a minute).
void recover_abandoned(int tmp, int cur, int fresh) {
  for (const std::string& name : list_items(cur)) {
    int fd = ::openat(cur, name.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) continue;
    if (ofd_lock(fd, F_WRLCK, false))
      move_item(fd, cur, name, fresh, id_of_claim_name(name));
    ::close(fd);
  }
  for (const std::string& name : list_items(tmp)) {
    int fd = ::openat(tmp, name.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) continue;
    // The age test closes the gap between an enqueue's create and its lock.
    struct stat info{};
    bool stale = ::fstat(fd, &info) == 0 && ::time(nullptr) - info.st_mtime > 60;
    if (stale && ofd_lock(fd, F_WRLCK, false)) ::unlinkat(tmp, name.c_str(), 0);
    ::close(fd);
  }
}

// The queue whose own tmp/, new/ or cur/ PATH lies in, or "": a queue in
// there would be scanned and swept as that queue's items.
std::string enclosing_queue(const RootDir& root, const std::string& path) {
  for (std::size_t slash = path.find('/'); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    const std::size_t next_end = path.find('/', slash + 1);
    const std::string_view next = std::string_view(path).substr(
        slash + 1, next_end == std::string::npos ? std::string::npos : next_end - slash - 1);
    if (next != "tmp" && next != "new" && next != "cur") continue;
    const std::string parent = path.substr(0, slash);
    bool is_queue = true;
    for (const char* part : {"/tmp", "/new", "/cur"}) {
      std::error_code ec;
      int fd = root.open_beneath(parent + part, O_RDONLY | O_DIRECTORY, 0, ec);
      if (fd < 0) {
        is_queue = false;
        break;
      }
      ::close(fd);
    }
    if (is_queue) return parent;
  }
  return {};
}

}  // namespace

Spool::~Spool() {
  for (int fd : {m_tmp, m_new, m_cur})
    if (fd >= 0) ::close(fd);
}

std::unique_ptr<Spool> Spool::open(const RootDir& root, const std::string& path, bool create,
                                   Failure& failure) {
  std::unique_ptr<Spool> spool(new Spool());
  spool->m_path = path;
  std::error_code ec;
  std::string leaf;
  if (std::string outer = enclosing_queue(root, path); !outer.empty()) {
    failure = {make_error_code(errc::invalid_path),
               "queue " + path + " lies inside queue " + outer + "'s own directories"};
    return nullptr;
  }
  // The queue directory itself: open_parent of "<queue>/tmp" creates it.
  int queue_dir = root.open_parent(path + "/tmp", create, leaf, ec);
  if (queue_dir < 0) {
    if (ec == std::errc::not_a_directory) {
      failure = {make_error_code(errc::invalid_path),
                 "queue " + path + ": it, or a directory above it, is a file"};
      return nullptr;
    }
    failure = {ec == std::errc::no_such_file_or_directory ? make_error_code(errc::not_found) : ec,
               "queue " + path + ": " + (ec == errc::path_outside_root
                                             ? std::string("resolves outside the root")
                                             : ec.message())};
    return nullptr;
  }
  int* slots[] = {&spool->m_tmp, &spool->m_new, &spool->m_cur};
  const char* names[] = {"tmp", "new", "cur"};
  for (int i = 0; i < 3; ++i) {
    if (create && ::mkdirat(queue_dir, names[i], 0755) != 0 && errno != EEXIST) {
      failure = errno_failure("queue " + path + ": cannot create " + names[i]);
      break;
    }
    *slots[i] = ::openat(queue_dir, names[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (*slots[i] < 0) {
      failure = errno == ENOENT
                    ? Failure{make_error_code(errc::not_found), "queue " + path + " does not exist"}
                    : errno_failure("queue " + path + ": cannot open " + names[i]);
      break;
    }
  }
  ::close(queue_dir);
  if (failure) return nullptr;
  return spool;
}

std::unique_ptr<StagedItem> StagedItem::create(std::shared_ptr<Spool> spool,
                                               std::uint64_t instance, Failure& failure) {
  static std::atomic<std::uint64_t> counter{0};
  std::unique_ptr<StagedItem> item(new StagedItem());
  item->m_spool = std::move(spool);
  auto now = std::chrono::system_clock::now().time_since_epoch();
  char id[96];
  std::snprintf(id, sizeof id, "%020lld.%016" PRIx64 ".%" PRIu64,
                static_cast<long long>(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count()),
                instance, ++counter);
  item->m_id = id;
  item->m_fd = ::openat(item->m_spool->m_tmp, id,
                        O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (item->m_fd < 0) {
    failure = errno_failure("queue " + item->m_spool->m_path + ": cannot create an item");
    return nullptr;
  }
  // Locked while being written, so a sweep can tell it from the leftovers
  // of a daemon that died mid-enqueue.
  if (!ofd_lock(item->m_fd, F_WRLCK, false)) {
    failure = errno_failure("queue " + item->m_spool->m_path + ": cannot lock an item");
    return nullptr;
  }
  return item;
}

StagedItem::~StagedItem() {
  if (m_fd >= 0) {
    if (!m_committed) ::unlinkat(m_spool->m_tmp, m_id.c_str(), 0);
    ::close(m_fd);
  }
}

int StagedItem::writer_fd(Failure& failure) const {
  std::string self = "/proc/self/fd/" + std::to_string(m_fd);
  int fd = ::open(self.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) failure = errno_failure("cannot reopen item " + m_id);
  return fd;
}

std::optional<std::string> StagedItem::commit(Failure& failure) {
  if (::fsync(m_fd) != 0) {
    failure = errno_failure("cannot sync item " + m_id);
    return std::nullopt;
  }
  if (!move_item(m_fd, m_spool->m_tmp, m_spool->m_new, m_id)) {
    failure = errno_failure("cannot enqueue item " + m_id);
    return std::nullopt;
  }
  m_committed = true;
  if (::fsync(m_spool->m_new) != 0) {
    failure = errno_failure("cannot sync queue " + m_spool->m_path);
    return std::nullopt;
  }
  return m_id;
}

std::unique_ptr<ClaimedItem> claim_next(std::shared_ptr<Spool> spool,
                                        std::shared_ptr<Backlog> backlog,
                                        Backlog::Clock::duration rescan_after,
                                        std::uint64_t instance,
                                        Failure& failure) {
  bool listed = false;
  const Backlog::Lister list = [&spool, &listed] {
    listed = true;
    recover_abandoned(spool->m_tmp, spool->m_cur, spool->m_new);
    return list_items(spool->m_new);
  };
  const auto now = Backlog::Clock::now();
  while (std::optional<std::string> name =
             backlog->take(now, rescan_after, list, !listed)) {
    // Any failure here (ENOENT, or ESTALE on NFS and GlusterFS) means that
    // another consumer renamed the item away first: take the next.
    int fd = ::openat(spool->m_new, name->c_str(),
                      O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) continue;  // taken meanwhile
    // Lock first, then move: the item is never in cur/ unlocked by a live
    // consumer, so recovery cannot steal it back.
    std::string claimed_as = claim_name(*name, instance);
    if (!ofd_lock(fd, F_WRLCK, false) ||
        !move_item(fd, spool->m_new, *name, spool->m_cur, claimed_as)) {
      ::close(fd);
      continue;  // another consumer won this one
    }
    auto item = std::unique_ptr<ClaimedItem>(new ClaimedItem());
    item->m_spool = spool;
    item->m_backlog = backlog;
    item->m_id = std::move(*name);
    item->m_cur_name = std::move(claimed_as);
    item->m_fd = fd;
    return item;
  }
  (void)failure;
  return nullptr;
}

ClaimedItem::~ClaimedItem() {
  if (!m_done) {
    Failure ignored;
    nack(ignored);
  }
  if (m_fd >= 0) ::close(m_fd);  // drops the lock last
}

int ClaimedItem::reader_fd(Failure& failure) const {
  std::string self = "/proc/self/fd/" + std::to_string(m_fd);
  int fd = ::open(self.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) failure = errno_failure("cannot reopen item " + m_id);
  return fd;
}

bool ClaimedItem::still_ours(Failure& failure) const {
  auto lost = [&](const std::string& why) {
    failure = {make_error_code(errc::lock_lost),
               "item " + m_id + " of queue " + m_spool->m_path + ": " + why};
    return false;
  };
  // I/O first: after an NFSv4 lease expired, I/O through the description
  // fails with EIO.
  char byte;
  if (::pread(m_fd, &byte, 1, 0) < 0)
    return lost(std::string("cannot read it: ") + std::strerror(errno));
  struct stat mine {
  }, named{};
  if (::fstat(m_fd, &mine) != 0)
    return lost(std::string("cannot stat it: ") + std::strerror(errno));
  if (mine.st_nlink == 0) return lost("it was removed");
  if (::fstatat(m_spool->m_cur, m_cur_name.c_str(), &named,
                AT_SYMLINK_NOFOLLOW) != 0)
    return lost("cur/" + m_cur_name + " is gone (" + std::strerror(errno) +
                "): the item was given back and may be claimed again");
  if (named.st_ino != mine.st_ino || named.st_dev != mine.st_dev)
    return lost("cur/" + m_cur_name + " is another file");
  // Re-assert our lock: a no-op while we hold it; busy once a partition let
  // another node take it (GlusterFS and NFS keep telling the old holder it
  // holds the lock after the partition healed).
  if (!ofd_lock(m_fd, F_WRLCK, false))
    return lost(errno == EAGAIN || errno == EACCES
                    ? std::string("its lock is held by another consumer")
                    : std::string("cannot re-assert its lock: ") +
                          std::strerror(errno));
  return true;
}

bool ClaimedItem::ack(Failure& failure) {
  if (m_done) return true;
  m_done = true;
  if (!still_ours(failure)) return false;
  if (::unlinkat(m_spool->m_cur, m_cur_name.c_str(), 0) != 0) {
    const int error = errno;
    // NFS: a retransmitted unlink whose first attempt succeeded answers
    // ENOENT; then our file has no name left. Renamed away instead (given
    // back by another pod between our check and the unlink): lost.
    struct stat mine {};
    if (error == ENOENT && ::fstat(m_fd, &mine) == 0 && mine.st_nlink == 0)
      return true;
    if (error == ENOENT)
      failure = {make_error_code(errc::lock_lost),
                 "item " + m_id + " of queue " + m_spool->m_path +
                     " was given back before its ack: not removed"};
    else
      failure = {std::error_code(error, std::system_category()),
                 "cannot remove item " + m_id + ": " + std::strerror(error)};
    return false;
  }
  return true;
}

bool ClaimedItem::nack(Failure& failure) {
  if (m_done) return true;
  m_done = true;
  if (!still_ours(failure)) return false;
  if (!move_item(m_fd, m_spool->m_cur, m_cur_name, m_spool->m_new, m_id)) {
    if (errno == ENOENT)
      failure = {make_error_code(errc::lock_lost),
                 "item " + m_id + " of queue " + m_spool->m_path +
                     " was given back by another pod before its nack"};
    else
      failure = errno_failure("cannot return item " + m_id);
    return false;
  }
  if (m_backlog) m_backlog->put_back(m_id);
  return true;
}

void ClaimedItem::abandon() noexcept { m_done = true; }

}  // namespace baton::daemon
