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
bool move_item(int fd, int from_dir, int to_dir, const std::string& name) {
  if (::renameat(from_dir, name.c_str(), to_dir, name.c_str()) == 0) return true;
  return errno == ENOENT && same_file(fd, to_dir, name);
}

// Returns items in cur/ whose consumer died (nobody holds their lock), and
// removes half-written items in tmp/ whose daemon died (unlocked, and older
// than a minute).
void recover_abandoned(int tmp, int cur, int fresh) {
  for (const std::string& name : list_items(cur)) {
    int fd = ::openat(cur, name.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) continue;
    if (ofd_lock(fd, F_WRLCK, false)) move_item(fd, cur, fresh, name);
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
                                        Backlog::Clock::duration rescan_after, Failure& failure) {
  bool listed = false;
  const Backlog::Lister list = [&spool, &listed] {
    listed = true;
    recover_abandoned(spool->m_tmp, spool->m_cur, spool->m_new);
    return list_items(spool->m_new);
  };
  const auto now = Backlog::Clock::now();
  while (std::optional<std::string> name = backlog->take(now, rescan_after, list, !listed)) {
    int fd = ::openat(spool->m_new, name->c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) continue;  // taken meanwhile
    // Lock first, then move: the item is never in cur/ unlocked by a live
    // consumer, so recovery cannot steal it back.
    if (!ofd_lock(fd, F_WRLCK, false) || !move_item(fd, spool->m_new, spool->m_cur, *name)) {
      ::close(fd);
      continue;  // another consumer won this one
    }
    auto item = std::unique_ptr<ClaimedItem>(new ClaimedItem());
    item->m_spool = spool;
    item->m_backlog = backlog;
    item->m_id = std::move(*name);
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

bool ClaimedItem::ack(Failure& failure) {
  if (m_done) return true;
  m_done = true;
  if (::unlinkat(m_spool->m_cur, m_id.c_str(), 0) != 0 && errno != ENOENT) {
    failure = errno_failure("cannot remove item " + m_id);
    return false;
  }
  return true;
}

bool ClaimedItem::nack(Failure& failure) {
  if (m_done) return true;
  m_done = true;
  if (!move_item(m_fd, m_spool->m_cur, m_spool->m_new, m_id)) {
    failure = errno_failure("cannot return item " + m_id);
    return false;
  }
  if (m_backlog) m_backlog->put_back(m_id);
  return true;
}

}  // namespace baton::daemon
