#include "daemon/publish.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include "baton/error.hpp"
#include "daemon/ofd.hpp"
#include "daemon/rename_race.hpp"
#include "protocol/path_name.hpp"

namespace baton::daemon {
namespace {

constexpr std::string_view k_stage_prefix = ".baton-stage.";
constexpr std::string_view k_fresh_prefix = ".baton-new.";
// A record is a header line padded to this size, then the path and '\n'.
// The widest header ("baton-version 2" and three 20-digit numbers) takes
// 100 bytes. tests/handoff/seccomp_exec.cpp relies on this size: a write of
// the header alone is the intent, a longer one the final record.
constexpr std::size_t k_record_header = 128;
constexpr auto k_sweep_period = std::chrono::seconds(60);

// Threads that run a commit's second sync beside its first. Kept, because
// starting a thread per commit (std::async) cost 20-40 us; never the
// offload pool, whose threads may all be waiting here. Never destroyed:
// joining a sync stuck on a dead server would hold up the daemon's exit.
boost::asio::thread_pool& sync_companions() {
  static auto* pool = new boost::asio::thread_pool(4);  // one per offload thread
  return *pool;
}

Failure errno_failure(const std::string& what) {
  return {std::error_code(errno, std::system_category()), what + ": " + std::strerror(errno)};
}

Failure baton_failure(errc code, std::string message) {
  return {make_error_code(code), std::move(message)};
}

// After RenameRaceRetry's bound: transient (timed_out, exit 75), never a
// usage error.
Failure replaced_failure(const std::string& path) {
  return baton_failure(
      errc::timed_out,
      path + " kept being replaced by renames for " +
          std::to_string(RenameRaceRetry::k_max_time.count()) + " ms (" +
          std::to_string(RenameRaceRetry::k_max_tries) + " tries); try again");
}

std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t hash = 1469598103934665603ull;
  for (char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

// A version record as stored. PENDING is the inode a publish is about to
// rename onto the path (0: none): written, durably, before the rename, so
// that if the publisher dies before its final record, every daemon can
// still tell that the file at the path is the next version.
struct StoredRecord {
  VersionRecord record;
  std::uint64_t pending = 0;
  bool legacy = false;  // "baton-version 1": a 64-byte header, no pending
};

constexpr std::string_view k_check_field = " check=";
constexpr std::size_t k_legacy_header = 64;

std::uint32_t header_check(std::string_view text) {
  const std::uint64_t hash = fnv1a(text);
  return static_cast<std::uint32_t>(hash ^ (hash >> 32));
}

// The record in TEXT (its first k_record_header bytes, NUL-terminated); an
// empty TEXT is a new record, all zero. False when TEXT is damaged, or torn:
// read while another daemon rewrote it (the check field catches both).
bool parse_record(const char* text, StoredRecord& stored) {
  stored = {};
  if (text[0] == '\0') return true;
  unsigned long long version = 0, token = 0, pending = 0;
  unsigned check = 0;
  if (std::sscanf(text, "baton-version 1 version=%llu token=%llu", &version, &token) == 2) {
    stored.legacy = true;
  } else {
    const char* check_at = std::strstr(text, k_check_field.data());
    if (!check_at ||
        std::sscanf(text, "baton-version 2 version=%llu token=%llu pending=%llu", &version,
                    &token, &pending) != 3 ||
        std::sscanf(check_at + k_check_field.size(), "%8x", &check) != 1 ||
        check != header_check(std::string_view(text, static_cast<std::size_t>(check_at - text))))
      return false;
  }
  stored.record.version = version;
  stored.record.token = token;
  stored.pending = pending;
  return true;
}

// The header alone (k_record_header bytes), or the whole record with PATH.
std::string format_record(const StoredRecord& stored, const std::string* path) {
  char header[k_record_header + 1];
  int n = std::snprintf(header, sizeof header,
                        "baton-version 2 version=%" PRIu64 " token=%" PRIu64 " pending=%" PRIu64,
                        stored.record.version, stored.record.token, stored.pending);
  std::string text(header, static_cast<std::size_t>(n));
  std::snprintf(header, sizeof header, "%s%08x", k_check_field.data(), header_check(text));
  text += header;
  text.resize(k_record_header - 1, ' ');
  text += '\n';
  if (path) {
    text += *path;
    text += '\n';
  }
  return text;
}

// The version of the file at the path, inode INO (0: none there), given
// the record: one more than recorded when it is the pending publish's file.
// Any other inode (an older file still in an NFS client's cache, one put
// there without baton) keeps the recorded version.
std::uint64_t version_of(const StoredRecord& stored, std::uint64_t ino) {
  return stored.pending != 0 && ino == stored.pending ? stored.record.version + 1
                                                      : stored.record.version;
}

// Reads the start of a version record, past the page cache on a network
// root: a GlusterFS FUSE mount keeps serving pages another node has
// rewritten, even under a lock, and so does a ceph-fuse mount (found by
// trying: a record read plainly on one node stayed at version 2 for minutes
// while the other node published up to 21). On a local disk the cache is the
// truth, and dropping it would only start writeback of the last record.
// Length 0 (to the end of the file): DONTNEED drops whole pages only, so a
// range shorter than a page, as a record is, would drop nothing.
ssize_t record_pread(const RootDir& root, int fd, char* buffer, std::size_t size) {
  if (root.network()) ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ssize_t n;
  do {
    n = ::pread(fd, buffer, size, 0);
  } while (n < 0 && errno == EINTR);
  return n;
}

bool write_fully(int fd, const std::string& text) {
  ssize_t n;
  do {
    n = ::pwrite(fd, text.data(), text.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n >= 0 && n != static_cast<ssize_t>(text.size())) errno = EIO;  // short: a full disk
  return n == static_cast<ssize_t>(text.size());
}

// A new record file's name must outlive a power loss as its intent does.
bool sync_versions_dir(const RootDir& root, Failure& failure) {
  std::error_code ec;
  int dir = root.open_beneath(k_versions_dir, O_RDONLY | O_DIRECTORY, 0, ec);
  if (dir < 0) {
    failure = {ec, std::string(k_versions_dir) + ": " + ec.message()};
    return false;
  }
  const bool synced = ::fsync(dir) == 0;
  if (!synced) failure = errno_failure(std::string("cannot sync ") + k_versions_dir);
  ::close(dir);
  return synced;
}

// The record file of PATH: .baton/versions/<hash>-<slot>.v, holding the
// path so a hash collision is noticed (and moved to the next slot). NAME
// gets the file's name under the root.
int open_record(const RootDir& root, const std::string& path, bool create, std::string& name,
                Failure& failure) {
  std::uint64_t hash = fnv1a(path);
  for (int slot = 0; slot < 8; ++slot) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%s/%016" PRIx64 "-%d.v", k_versions_dir, hash, slot);
    name = buffer;
    std::error_code ec;
    int fd = root.open_beneath(name, O_RDWR | (create ? O_CREAT : 0), 0644, ec);
    if (fd < 0) {
      if (ec == std::errc::no_such_file_or_directory && !create) return -1;
      failure = {ec, "version record " + name + ": " + ec.message()};
      return -1;
    }
    char text[k_record_header + protocol::k_max_path + 2] = {};
    ssize_t n = record_pread(root, fd, text, sizeof text - 1);
    const std::size_t header = std::string_view(text).starts_with("baton-version 1 ")
                                   ? k_legacy_header
                                   : k_record_header;
    std::string_view stored = n > static_cast<ssize_t>(header)
                                  ? std::string_view(text + header,
                                                     static_cast<std::size_t>(n) - header)
                                  : std::string_view();
    if (!stored.empty() && stored.back() == '\n') stored.remove_suffix(1);
    if (create && n <= 0 && !sync_versions_dir(root, failure)) {
      ::close(fd);
      return -1;
    }
    if (stored.empty() || stored == path) return fd;  // ours, or new
    ::close(fd);
  }
  failure = baton_failure(errc::io_error, "too many version-record collisions for " + path);
  return -1;
}

// The record behind FD, all zero when empty; false (FAILURE set) when it
// cannot be read. A torn read (another daemon was rewriting it) is read
// again; a record that stays damaged is an error, never a version 0.
bool read_record(const RootDir& root, int fd, const std::string& name, const std::string& path,
                 StoredRecord& stored, Failure& failure) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    char text[k_record_header + 1] = {};
    if (record_pread(root, fd, text, k_record_header) < 0) {
      failure = errno_failure("cannot read the version record of " + path);
      return false;
    }
    if (parse_record(text, stored)) return true;
    if (attempt >= 10) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  failure = baton_failure(errc::io_error, "version record " + name + " of " + path +
                                              " is damaged; remove it to restart the versions of " +
                                              path);
  return false;
}

// The record of PATH; all zero when it was never published through baton.
StoredRecord read_stored(const RootDir& root, const std::string& path, Failure& failure) {
  StoredRecord stored;
  std::string name;
  int fd = open_record(root, path, /*create=*/false, name, failure);
  if (fd < 0) return stored;  // never published (or FAILURE says why not)
  read_record(root, fd, name, path, stored, failure);
  ::close(fd);
  return stored;
}

// The inode at PATH beneath the root, 0 when nothing is there. ERROR gets
// the errno of a failed lookup (ENOENT: nothing there), else 0.
std::uint64_t inode_at(const RootDir& root, const std::string& path,
                       int& error) {
  std::error_code ec;
  error = 0;
  int fd = root.open_beneath(path, O_PATH, 0, ec);
  if (fd < 0) {
    error = ec.category() == std::system_category() ? ec.value() : EINVAL;
    return 0;
  }
  struct stat info {};
  std::uint64_t ino = 0;
  if (::fstat(fd, &info) == 0)
    ino = info.st_ino;
  else
    error = errno;
  ::close(fd);
  return ino;
}

void sweep_if_due(int dir_fd) {
  static std::mutex mutex;
  static std::map<std::pair<dev_t, ino_t>, std::chrono::steady_clock::time_point> last;
  struct stat info{};
  if (::fstat(dir_fd, &info) != 0) return;
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mutex);
    auto& when = last[{info.st_dev, info.st_ino}];
    if (when != std::chrono::steady_clock::time_point() && now - when < k_sweep_period) return;
    when = now;
  }
  sweep_dead_stages(dir_fd);
}

}  // namespace

StagedFile::~StagedFile() {
  if (m_fd >= 0) {
    if (!m_committed) ::unlinkat(m_dir_fd, m_stage_name.c_str(), 0);
    ::close(m_fd);  // drops our lock: only after the unlink, so no sweep races us
  }
  if (m_dir_fd >= 0) ::close(m_dir_fd);
}

std::unique_ptr<StagedFile> StagedFile::create(const RootDir& root, const std::string& dest,
                                               mode_t mode, bool no_replace,
                                               std::uint64_t instance, Failure& failure) {
  static std::atomic<std::uint64_t> counter{0};
  std::unique_ptr<StagedFile> staged(new StagedFile());
  staged->m_dest = dest;
  // No setuid, setgid or sticky bits: a client must not plant a setuid file
  // owned by the daemon's user on the shared volume.
  staged->m_mode = mode & 0777;
  staged->m_no_replace = no_replace;
  std::error_code ec;
  staged->m_dir_fd = root.open_parent(dest, /*create=*/true, staged->m_leaf, ec);
  if (staged->m_dir_fd < 0) {
    failure = {ec, "cannot open the directory of " + dest + ": " + ec.message()};
    return nullptr;
  }
  // rename(2) would replace a symlink at DEST rather than follow it; refuse
  // it anyway, so a link planted there never looks like a published file.
  struct stat existing{};
  if (::fstatat(staged->m_dir_fd, staged->m_leaf.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISLNK(existing.st_mode)) {
    failure = baton_failure(errc::path_outside_root, dest + " is a symbolic link");
    return nullptr;
  }
  sweep_if_due(staged->m_dir_fd);
  char unique[64];
  std::snprintf(unique, sizeof unique, "%016" PRIx64 ".%" PRIu64 ".", instance, ++counter);
  const std::string suffix = unique + staged->m_leaf.substr(0, 120);
  // Created under a name sweeps ignore, locked, and only then given the
  // staging name: a sweep never sees a live staging file unlocked.
  const std::string fresh = std::string(k_fresh_prefix) + suffix;
  staged->m_stage_name = std::string(k_stage_prefix) + suffix;
  staged->m_fd = ::openat(staged->m_dir_fd, fresh.c_str(),
                          O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (staged->m_fd < 0) {
    failure = errno_failure("cannot create a staging file beside " + dest);
    return nullptr;
  }
  if (!ofd_lock(staged->m_fd, F_WRLCK, false) ||
      ::renameat(staged->m_dir_fd, fresh.c_str(), staged->m_dir_fd,
                 staged->m_stage_name.c_str()) != 0) {
    failure = errno_failure("cannot prepare the staging file of " + dest);
    ::unlinkat(staged->m_dir_fd, fresh.c_str(), 0);
    ::close(std::exchange(staged->m_fd, -1));
    return nullptr;
  }
  return staged;
}

int StagedFile::writer_fd(Failure& failure) const {
  // A second open file description, write-only, so the writer cannot touch
  // our lock (OFD locks belong to the description, not the inode).
  std::string self = "/proc/self/fd/" + std::to_string(m_fd);
  int fd = ::open(self.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) failure = errno_failure("cannot reopen the staging file of " + m_dest);
  return fd;
}

std::optional<VersionRecord> StagedFile::commit(const RootDir& root,
                                                std::optional<std::uint64_t> token,
                                                Failure& failure) {
  const bool no_replace = m_no_replace;
  std::string record_name;
  int record_fd = open_record(root, m_dest, /*create=*/true, record_name, failure);
  if (record_fd < 0) return std::nullopt;
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{record_fd};
  // Publishers of one path take turns here; the critical section is short.
  if (!ofd_lock(record_fd, F_WRLCK, true)) {
    failure = errno_failure("cannot lock the version record of " + m_dest);
    return std::nullopt;
  }
  StoredRecord stored;
  if (!read_record(root, record_fd, record_name, m_dest, stored, failure)) return std::nullopt;
  // A publisher that died between its rename and its final record: if its
  // file is at the path, that file is the current version.
  if (stored.pending != 0) {
    struct stat current{};
    bool landed = ::fstatat(m_dir_fd, m_leaf.c_str(), &current, AT_SYMLINK_NOFOLLOW) == 0 &&
                  current.st_ino == stored.pending;
    stored.record.version = version_of(stored, landed ? stored.pending : 0);
    stored.pending = 0;
  }
  const StoredRecord before = stored;
  if (token && *token < stored.record.token) {
    failure = baton_failure(errc::stale_token, "fencing token " + std::to_string(*token) +
                                                   " is older than " +
                                                   std::to_string(stored.record.token) +
                                                   ", already used on " + m_dest);
    return std::nullopt;
  }
  struct stat staged{};
  if (::fchmod(m_fd, m_mode) != 0 || ::fstat(m_fd, &staged) != 0) {
    failure = errno_failure("cannot prepare the staging file of " + m_dest);
    return std::nullopt;
  }
  // The intent: durable before the rename, so that a crash between the
  // rename and the final record still counts as a new version everywhere.
  if (token) stored.record.token = std::max(stored.record.token, *token);
  stored.pending = staged.st_ino;
  // A legacy record's path starts inside the new header: write it whole.
  const bool legacy = stored.legacy;
  stored.legacy = false;
  if (!write_fully(record_fd, format_record(stored, legacy ? &m_dest : nullptr))) {
    failure = errno_failure("cannot write the version record of " + m_dest);
    return std::nullopt;
  }
  // Both must be on disk before the rename, and neither depends on the
  // other: sync them at once, so the publish waits for one flush, not two
  // (a journaling filesystem commits both in one transaction; NFS sends
  // the two COMMITs together).
  std::future<int> intent_synced = boost::asio::post(
      sync_companions(), boost::asio::use_future([record_fd] {
        return ::fdatasync(record_fd) == 0 ? 0 : errno;
      }));
  const int staged_error = ::fsync(m_fd) == 0 ? 0 : errno;
  if (const int intent_error = intent_synced.get()) {
    errno = intent_error;
    failure = errno_failure("cannot write the version record of " + m_dest);
    return std::nullopt;
  }
  if (staged_error) {
    errno = staged_error;
    failure = errno_failure("cannot sync the staging file of " + m_dest);
    return std::nullopt;
  }
  unsigned flags = no_replace ? RENAME_NOREPLACE : 0;
  int rc = ::renameat2(m_dir_fd, m_stage_name.c_str(), m_dir_fd, m_leaf.c_str(), flags);
  if (rc != 0 && errno == EINVAL && no_replace) {
    // No RENAME_NOREPLACE here (older NFS servers): link(2) is create-only too.
    rc = ::linkat(m_dir_fd, m_stage_name.c_str(), m_dir_fd, m_leaf.c_str(), 0);
    if (rc == 0) ::unlinkat(m_dir_fd, m_stage_name.c_str(), 0);
  }
  if (rc != 0) {
    int error = errno;
    // NFS: a retransmitted rename whose first attempt succeeded answers
    // ENOENT (or EEXIST): if the destination is our inode, it worked.
    struct stat now{};
    bool ours = (error == ENOENT || error == EEXIST) &&
                ::fstatat(m_dir_fd, m_leaf.c_str(), &now, AT_SYMLINK_NOFOLLOW) == 0 &&
                now.st_ino == staged.st_ino && now.st_dev == staged.st_dev;
    if (!ours) {
      // Withdraw the intent (our file never reaches the path). Left there
      // it would be harmless: no file at the path has our inode.
      write_fully(record_fd, format_record(before, &m_dest));
      if (error == EEXIST) {
        failure = baton_failure(errc::already_exists, m_dest + " already exists");
      } else {
        errno = error;
        failure = errno_failure("cannot rename into " + m_dest);
      }
      return std::nullopt;
    }
  }
  m_committed = true;
  if (::fsync(m_dir_fd) != 0) {
    failure = errno_failure("cannot sync the directory of " + m_dest);
    return std::nullopt;
  }
  // The final record, whole (it also restores a damaged path line). No
  // sync: should it be lost, the durable intent gives the same version.
  stored.record.version += 1;
  stored.pending = 0;
  if (!write_fully(record_fd, format_record(stored, &m_dest))) {
    failure = errno_failure("cannot write the version record of " + m_dest);
    return std::nullopt;
  }
  return stored.record;
}

VersionRecord read_version(const RootDir& root, const std::string& path,
                           Failure& failure) {
  if (failure) return {};  // the caller's earlier failure (path_exists) stands
  RenameRaceRetry retry;
  for (;;) {
    failure = {};
    StoredRecord stored = read_stored(root, path, failure);
    if (failure && replaced_under_us(failure.code, false) && retry.again())
      continue;
    if (stored.pending == 0 || failure) return stored.record;
    // A publish is under way, or died after its intent: is its file there?
    // An inode that vanished under the lookup would read as "not there",
    // one version too low: look again.
    int error = 0;
    const std::uint64_t ino = inode_at(root, path, error);
    if (replaced_under_us(error, true) && error != ENOENT) {
      if (retry.again()) continue;
      failure = replaced_failure(path);
      return stored.record;
    }
    VersionRecord record = stored.record;
    record.version = version_of(stored, ino);
    return record;
  }
}

int open_published(const RootDir& root, const std::string& path, VersionRecord& record,
                   std::uint64_t& size, Failure& failure) {
  // Records change around renames: read the record before the open and
  // again after. When both give the opened file the same version, that is
  // its version (the one before is never newer than the content, the one
  // after never older). A rename that replaced the file under us (ESTALE,
  // or ENOENT for a path that has a record) is retried from the lookup.
  RenameRaceRetry retry;
  for (;;) {
    failure = {};
    StoredRecord before = read_stored(root, path, failure);
    if (failure) {
      if (replaced_under_us(failure.code, false) && retry.again()) continue;
      return -1;
    }
    std::error_code ec;
    // O_NONBLOCK: a FIFO planted at PATH must not hang the pool thread.
    int fd = root.open_beneath(path, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0, ec);
    if (fd < 0) {
      // A path published through baton is never removed by it: its ENOENT
      // is a rename's window (GlusterFS), unless it lasts.
      const bool published = before.record.version != 0 || before.pending != 0;
      if (replaced_under_us(ec, published) && retry.again()) continue;
      failure = {ec, ec == errc::path_outside_root
                         ? path + " resolves outside the root"
                         : path + ": " + ec.message()};
      if (ec == std::errc::no_such_file_or_directory)
        failure = baton_failure(errc::not_found, path + " does not exist");
      else if (replaced_under_us(ec, published))
        failure = replaced_failure(path);
      return -1;
    }
    struct stat info {};
    if (::fstat(fd, &info) != 0) {
      const int error = errno;
      ::close(fd);
      if (replaced_under_us(error, true) && retry.again()) continue;
      errno = error;
      failure = replaced_under_us(error, true)
                    ? replaced_failure(path)
                    : errno_failure("cannot stat " + path);
      return -1;
    }
    if (!S_ISREG(info.st_mode)) {
      ::close(fd);
      failure = baton_failure(errc::invalid_path, path + " is not a regular file");
      return -1;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    // Read a byte: GlusterFS's open-behind opens the file on the brick only
    // at the first read, and a rename meanwhile would make the client's
    // first read fail (ESTALE). Once open there, the file stays readable.
    char byte;
    if (info.st_size > 0 && ::pread(fd, &byte, 1, 0) < 0) {
      const int error = errno;
      ::close(fd);
      if (replaced_under_us(error, true) && retry.again()) continue;
      errno = error;
      failure = replaced_under_us(error, true) ? replaced_failure(path)
                                               : errno_failure("cannot read " + path);
      return -1;
    }
    StoredRecord after = read_stored(root, path, failure);
    if (failure) {
      ::close(fd);
      if (replaced_under_us(failure.code, false) && retry.again()) continue;
      return -1;
    }
    const std::uint64_t version = version_of(before, info.st_ino);
    if (version == version_of(after, info.st_ino)) {
      record = after.record;
      record.version = version;
      size = static_cast<std::uint64_t>(info.st_size);
      return fd;
    }
    ::close(fd);  // a publish landed meanwhile: look again
    if (!retry.again()) break;
  }
  failure = replaced_failure(path);
  return -1;
}

bool path_exists(const RootDir& root, const std::string& path,
                 Failure& failure) {
  RenameRaceRetry retry;
  for (;;) {
    std::error_code ec;
    int fd = root.open_beneath(path, O_PATH, 0, ec);
    if (fd >= 0) {
      ::close(fd);
      return true;
    }
    // ESTALE: a rename replaced what the lookup found, so something is there.
    if (replaced_under_us(ec, false) && retry.again()) continue;
    if (replaced_under_us(ec, false)) {
      failure = replaced_failure(path);
    } else if (ec != std::errc::no_such_file_or_directory &&
               ec != std::errc::not_a_directory) {
      failure = {ec, ec == errc::path_outside_root
                         ? path + " resolves outside the root"
                         : path + ": " + ec.message()};
    }
    return false;
  }
}

std::size_t sweep_dead_stages(int dir_fd) {
  int scan_fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (scan_fd < 0) return 0;
  DIR* dir = ::fdopendir(scan_fd);
  if (!dir) {
    ::close(scan_fd);
    return 0;
  }
  std::size_t removed = 0;
  while (dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    bool staging = name.starts_with(k_stage_prefix);
    if (!staging && !name.starts_with(k_fresh_prefix)) continue;
    int fd = ::openat(dir_fd, entry->d_name, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) continue;
    // Its owner holds the lock while alive; the kernel dropped it if not.
    // A fresh file is locked only a moment after its creation: judge it
    // only when old (its daemon died between the two calls).
    struct stat info{};
    bool judge = staging || (::fstat(fd, &info) == 0 && ::time(nullptr) - info.st_mtime > 60);
    if (judge && ofd_lock(fd, F_WRLCK, false)) {
      if (::unlinkat(dir_fd, entry->d_name, 0) == 0) ++removed;
    }
    ::close(fd);
  }
  ::closedir(dir);
  return removed;
}

}  // namespace baton::daemon
