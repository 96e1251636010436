#include "daemon/lock_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "baton/error.hpp"
#include "daemon/open_or_create.hpp"
#include "daemon/rename_race.hpp"

namespace baton::daemon {
namespace {

constexpr off_t k_lock_byte = 0;
constexpr off_t k_waiting_byte = 1;
constexpr std::size_t k_token_record_size = 64;
constexpr off_t k_holder_offset = 64;
constexpr std::size_t k_holder_size = 448;
constexpr off_t k_slot_base = 4096;
constexpr std::size_t k_slot_size = 2048;
// Header, then the slots: what a lock file born whole spans.
constexpr off_t k_lock_file_extent =
    k_slot_base + static_cast<off_t>(LockFile::k_max_slots) * static_cast<off_t>(k_slot_size);

off_t slot_offset(int slot) {
  return k_slot_base + static_cast<off_t>(slot) * k_slot_size;
}

std::error_code errno_code() { return {errno, std::system_category()}; }

struct flock range(short type, off_t start) {
  struct flock lock{};
  lock.l_type = type;
  lock.l_whence = SEEK_SET;
  lock.l_start = start;
  lock.l_len = 1;
  return lock;
}

short lock_type(LockMode mode) {
  return mode == LockMode::shared ? F_RDLCK : F_WRLCK;
}

std::error_code set_lock(int fd, int command, short type, off_t start) {
  struct flock lock = range(type, start);
  if (::fcntl(fd, command, &lock) == 0) return {};
  if (errno == EAGAIN || errno == EACCES) return make_error_code(errc::busy);
  return errno_code();
}

// F_OFD_GETLK for a write lock on START: true if anyone else holds any lock
// there (our own locks never conflict with our own open file description).
bool conflicting_lock(int fd, off_t start, std::error_code& ec) {
  struct flock lock = range(F_WRLCK, start);
  if (::fcntl(fd, F_OFD_GETLK, &lock) != 0) {
    ec = errno_code();
    return false;
  }
  ec.clear();
  return lock.l_type != F_UNLCK;
}

std::error_code write_all_at(int fd, std::string_view data, off_t offset) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done,
                         offset + static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_code();
    }
    done += static_cast<std::size_t>(n);
  }
  return {};
}

std::string read_fd_at(int fd, std::size_t size, off_t offset, std::error_code& ec) {
  std::string data(size, '\0');
  ssize_t n;
  do {
    n = ::pread(fd, data.data(), size, offset);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    ec = errno_code();
    return {};
  }
  ec.clear();
  data.resize(static_cast<std::size_t>(n));
  return data;
}

}  // namespace

TokenRecord parse_token_record(std::string_view text) {
  TokenRecord record;
  std::string line(text.substr(0, text.find('\n')));
  unsigned long long reserved = 0;
  unsigned long long owner = 0;
  if (std::sscanf(line.c_str(), "baton-lock 1 reserved=%llu owner=%llx",
                  &reserved, &owner) == 2) {
    record.reserved_upto = reserved;
    record.owner = owner;
  }
  return record;
}

std::string format_token_record(const TokenRecord& record) {
  char line[k_token_record_size + 1];
  int n = std::snprintf(line, sizeof line, "baton-lock 1 reserved=%" PRIu64
                        " owner=%016" PRIx64, record.reserved_upto, record.owner);
  std::string text(line, static_cast<std::size_t>(n));
  text.resize(k_token_record_size - 1, ' ');
  text += '\n';
  return text;
}

namespace {

// A lock file born whole: a blank header block and the (sparse) slots' area,
// written under a temporary name,
// then linked in place (EEXIST: someone else's is there, just as good). A
// FUSE client caches a file's size (for a second, by default) and reads no
// further than it, even with O_DIRECT: a file that grew from 0 to 512 bytes
// after another mount looked it up reads as empty there. One that never
// grows does not.
int open_born_whole(int dir_fd, const std::string& file, int flags) {
  static std::atomic<unsigned> counter{0};
  const int open_flags = flags & ~O_CREAT;
  for (int attempt = 0; attempt < 16; ++attempt) {
    int fd = ::openat(dir_fd, file.c_str(), open_flags);
    if (fd >= 0 || errno != ENOENT) return fd;
    std::string temp =
        ".born-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".tmp";
    int temp_fd =
        ::openat(dir_fd, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (temp_fd < 0) return -1;
    std::string blank(k_lock_file_size - 1, ' ');
    blank += '\n';
    std::error_code ec = write_all_at(temp_fd, blank, 0);
    // The slots' area too (sparse): the size never changes after birth.
    if (!ec && ::ftruncate(temp_fd, k_lock_file_extent) != 0) ec = errno_code();
    ::close(temp_fd);
    int linked = ec ? -1 : ::linkat(dir_fd, temp.c_str(), dir_fd, file.c_str(), 0);
    const int saved = ec ? ec.value() : errno;
    ::unlinkat(dir_fd, temp.c_str(), 0);
    if (linked != 0 && saved != EEXIST) {
      errno = saved;
      return -1;
    }
  }
  errno = ENOENT;  // removed as often as it was created: give up
  return -1;
}

}  // namespace

std::unique_ptr<LockFile> LockFile::open(int dir_fd, const std::string& file,
                                         std::string path, bool uncached_reads,
                                         std::error_code& ec) {
  return open(dir_fd, file, std::move(path), uncached_reads ? RecordIo::direct : RecordIo::cached,
              ec);
}

std::unique_ptr<LockFile> LockFile::open(int dir_fd, const std::string& file, std::string path,
                                         RecordIo io, std::error_code& ec) {
  // O_NOFOLLOW: a symlink planted in the locks directory must not redirect
  // our writes; the name itself was validated, so no '/' or '..' here.
  const int flags = O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY;
  // A lock file removed or replaced (by an operator, a restore, another
  // node) can leave this mount's client a handle of the old one: ESTALE
  // (GlusterFS with its default caches, NFS), from the open or from the
  // O_DIRECT reopening. Look the name up again.
  int fd = -1;
  int direct_fd = -1;
  RenameRaceRetry retry;
  for (;;) {
    fd = io == RecordIo::direct ? open_born_whole(dir_fd, file, flags)
                                : open_or_create(flags, [&] {
                                    return ::openat(dir_fd, file.c_str(), flags, 0644);
                                  });
    if (fd >= 0 && io == RecordIo::direct) {
      // The same open file, not the name again (it may have been replaced
      // meanwhile); a descriptor of its own, since O_DIRECT would make the
      // lock descriptor's unaligned uses fail.
      std::string self = "/proc/self/fd/" + std::to_string(fd);
      direct_fd = ::open(self.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC | O_NOCTTY);
      if (direct_fd < 0) {
        const int saved = errno;
        ::close(fd);
        fd = -1;
        errno = saved;
      }
    }
    if (fd >= 0 || !replaced_under_us(errno, false) || !retry.again()) break;
  }
  if (fd < 0) {
    ec = errno_code();
    return nullptr;
  }
  ec.clear();
  return std::unique_ptr<LockFile>(new LockFile(fd, direct_fd, std::move(path), io));
}

LockFile::~LockFile() {
  if (m_direct_fd >= 0) ::close(m_direct_fd);
  ::close(m_fd);
}

std::error_code LockFile::try_lock(LockMode mode) {
  return set_lock(m_fd, F_OFD_SETLK, lock_type(mode), k_lock_byte);
}

std::error_code LockFile::wait_lock(LockMode mode) {
  struct flock lock = range(lock_type(mode), k_lock_byte);
  if (::fcntl(m_fd, F_OFD_SETLKW, &lock) == 0) return {};
  return errno_code();  // EINTR included: the caller decides to retry
}

std::error_code LockFile::unlock() {
  return set_lock(m_fd, F_OFD_SETLK, F_UNLCK, k_lock_byte);
}

std::error_code LockFile::advertise_waiting(bool waiting) {
  return set_lock(m_fd, F_OFD_SETLK, waiting ? F_RDLCK : F_UNLCK, k_waiting_byte);
}

bool LockFile::others_waiting(std::error_code& ec) {
  return conflicting_lock(m_fd, k_waiting_byte, ec);
}

bool LockFile::held_elsewhere(std::error_code& ec) {
  return conflicting_lock(m_fd, k_lock_byte, ec);
}

namespace {

// Aligned regions through the O_DIRECT descriptor: the 512-byte header
// (token and exclusive holder records) or one shared holder's slot. Bytes
// past the end of the file read as spaces.
constexpr std::size_t k_direct_align = 512;
static_assert(k_slot_size % k_direct_align == 0 && k_slot_base % k_direct_align == 0);

struct alignas(4096) Region {
  char bytes[k_slot_size];
};

std::error_code read_region(int fd, Region& region, off_t offset, std::size_t size) {
  ssize_t n;
  do {
    n = ::pread(fd, region.bytes, size, offset);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno_code();
  std::memset(region.bytes + n, ' ', size - static_cast<std::size_t>(n));
  if (static_cast<std::size_t>(n) < size) region.bytes[size - 1] = '\n';
  return {};
}

std::error_code write_region(int fd, const Region& region, off_t offset, std::size_t size) {
  ssize_t n;
  do {
    n = ::pwrite(fd, region.bytes, size, offset);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno_code();
  if (static_cast<std::size_t>(n) != size) return {EIO, std::system_category()};
  return {};
}

// The aligned region that holds [OFFSET, OFFSET + SIZE): the header, or the
// slot the range falls in.
std::pair<off_t, std::size_t> region_of(off_t offset, std::size_t size) {
  if (offset + static_cast<off_t>(size) <= static_cast<off_t>(k_lock_file_size))
    return {0, k_lock_file_size};
  const off_t slot_start =
      k_slot_base + (offset - k_slot_base) / static_cast<off_t>(k_slot_size) *
                        static_cast<off_t>(k_slot_size);
  return {slot_start, k_slot_size};
}

}  // namespace

std::string LockFile::read_at(std::size_t size, off_t offset, std::error_code& ec) const {
  if (m_io == RecordIo::direct) {
    auto [start, length] = region_of(offset, size);
    Region region;
    ec = read_region(m_direct_fd, region, start, length);
    if (ec) return {};
    return std::string(region.bytes + (offset - start), size);
  }
  if (m_io == RecordIo::drop_cache)
    ::posix_fadvise(m_fd, offset, static_cast<off_t>(size), POSIX_FADV_DONTNEED);
  return read_fd_at(m_fd, size, offset, ec);
}

// DATA at OFFSET; with O_DIRECT its whole region is read, patched, written
// back. A region has one writer at a time (the header: the token record's
// writer under the exclusive lock, or a holder when no exclusive one exists;
// a slot: the daemon that locks it), so nobody else's bytes are overwritten
// with old ones.
std::error_code LockFile::write_at(std::string_view data, off_t offset) {
  if (m_io != RecordIo::direct) return write_all_at(m_fd, data, offset);
  auto [start, length] = region_of(offset, data.size());
  Region region;
  if (auto ec = read_region(m_direct_fd, region, start, length)) return ec;
  std::memcpy(region.bytes + (offset - start), data.data(), data.size());
  return write_region(m_direct_fd, region, start, length);
}

TokenRecord LockFile::read_tokens(std::error_code& ec) {
  // GlusterFS's quick-read translator keeps a small file's content from the
  // lookup (for a second by default) and serves reads from it, O_DIRECT or
  // not: a daemon that opened the file, then waited while another node
  // wrote the record, would read the old record. A truncate to the size the
  // file has anyway drops that copy (and io-cache's). Only the exclusive
  // holder reads the tokens, so it may write.
  if (m_io == RecordIo::direct && ::ftruncate(m_direct_fd, k_lock_file_extent) != 0) {
    ec = errno_code();
    return {};
  }
  std::string text = read_at(k_token_record_size, 0, ec);
  return ec ? TokenRecord{} : parse_token_record(text);
}

std::error_code LockFile::write_tokens(const TokenRecord& record, bool sync) {
  if (auto ec = write_at(format_token_record(record), 0)) return ec;
  if (sync && ::fdatasync(m_direct_fd >= 0 ? m_direct_fd : m_fd) != 0) return errno_code();
  return {};
}

std::string LockFile::read_holder(std::error_code& ec) {
  std::string text = read_at(k_holder_size, k_holder_offset, ec);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\n' ||
                           text.back() == '\0'))
    text.pop_back();
  return text;
}

std::error_code LockFile::write_holder(std::string_view json) {
  // Padded to the full slot so a shorter record leaves no tail of the last.
  char record[k_holder_size];
  const std::size_t used = std::min(json.size(), k_holder_size - 1);
  std::memcpy(record, json.data(), used);
  std::memset(record + used, ' ', k_holder_size - 1 - used);
  record[k_holder_size - 1] = '\n';
  return write_at(std::string_view(record, k_holder_size), k_holder_offset);
}

int LockFile::claim_slot(int hint, std::error_code& ec) {
  ec.clear();
  if (hint < 0 || hint >= k_max_slots) hint = 0;
  for (int i = 0; i < k_max_slots; ++i) {
    const int slot = (hint + i) % k_max_slots;
    std::error_code error =
        set_lock(m_fd, F_OFD_SETLK, F_WRLCK, slot_offset(slot));
    if (!error) return slot;
    if (error != errc::busy) {
      ec = error;
      return -1;
    }
  }
  return -1;
}

std::error_code LockFile::write_slot(int slot, std::string_view json) {
  // One line; whatever a longer record left after the newline is not read.
  std::string line;
  line.reserve(json.size() + 1);
  line.append(json.substr(0, k_slot_size - 1));
  line += '\n';
  return write_at(line, slot_offset(slot));
}

std::error_code LockFile::release_slot(int slot) {
  return set_lock(m_fd, F_OFD_SETLK, F_UNLCK, slot_offset(slot));
}

std::vector<std::string> LockFile::read_live_slots(std::error_code& ec) {
  ec.clear();
  std::vector<int> live;
  // F_OFD_GETLK names one conflicting lock in a range, not necessarily the
  // first: split the range around each one found, k live slots in 2k+1 calls.
  std::vector<std::pair<int, int>> ranges{{0, k_max_slots}};  // [first, end)
  while (!ranges.empty()) {
    auto [first, end] = ranges.back();
    ranges.pop_back();
    if (first >= end) continue;
    struct flock lock {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    lock.l_start = slot_offset(first);
    lock.l_len = slot_offset(end) - slot_offset(first);
    if (::fcntl(m_fd, F_OFD_GETLK, &lock) != 0) {
      ec = errno_code();
      return {};
    }
    if (lock.l_type == F_UNLCK) continue;
    int slot = static_cast<int>(
        (std::max(lock.l_start, slot_offset(first)) - k_slot_base) /
        static_cast<off_t>(k_slot_size));
    slot = std::clamp(slot, first, end - 1);
    live.push_back(slot);
    ranges.emplace_back(first, slot);
    ranges.emplace_back(slot + 1, end);
  }
  std::sort(live.begin(), live.end());
  std::vector<std::string> records;
  for (int slot : live) {
    std::string text = read_at(k_slot_size, slot_offset(slot), ec);
    if (ec) return {};
    text.resize(std::min(text.find('\n'), text.size()));
    if (!text.empty()) records.push_back(std::move(text));
  }
  return records;
}

bool LockFile::held_exclusively_elsewhere(std::error_code& ec) {
  // A read lock conflicts only with a write lock.
  struct flock lock = range(F_RDLCK, k_lock_byte);
  if (::fcntl(m_fd, F_OFD_GETLK, &lock) != 0) {
    ec = errno_code();
    return false;
  }
  ec.clear();
  return lock.l_type != F_UNLCK;
}

std::error_code LockFile::verify(int dir_fd, const std::string& file, LockMode held) {
  // I/O on the descriptor: after an NFSv4 lease expired the client reports
  // the lost lock as EIO on any I/O through this file description.
  std::error_code ec;
  read_at(1, 0, ec);
  if (ec) return ec;
  struct stat mine{};
  struct stat named{};
  if (::fstat(m_fd, &mine) != 0) return errno_code();
  if (mine.st_nlink == 0) return std::make_error_code(std::errc::no_such_file_or_directory);
  if (::fstatat(dir_fd, file.c_str(), &named, AT_SYMLINK_NOFOLLOW) != 0) return errno_code();
  if (named.st_ino != mine.st_ino || named.st_dev != mine.st_dev)
    return {ESTALE, std::system_category()};
  // Re-assert the lock we believe we hold: a no-op when we do; busy when a
  // partition let another node take it (gluster and NFS keep telling the old
  // holder it holds the lock after the partition healed).
  return try_lock(held);
}

}  // namespace baton::daemon
