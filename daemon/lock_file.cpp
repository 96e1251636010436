#include "daemon/lock_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "baton/error.hpp"
#include "daemon/open_or_create.hpp"

namespace baton::daemon {
namespace {

constexpr off_t k_lock_byte = 0;
constexpr off_t k_waiting_byte = 1;
constexpr std::size_t k_token_record_size = 64;
constexpr off_t k_holder_offset = 64;
constexpr std::size_t k_holder_size = 448;
constexpr off_t k_slot_base = 4096;
constexpr std::size_t k_slot_size = 2048;

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

std::unique_ptr<LockFile> LockFile::open(int dir_fd, const std::string& file,
                                         std::string path, bool uncached_reads,
                                         std::error_code& ec) {
  // O_NOFOLLOW: a symlink planted in the locks directory must not redirect
  // our writes; the name itself was validated, so no '/' or '..' here.
  const int flags = O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY;
  int fd = open_or_create(flags, [&] { return ::openat(dir_fd, file.c_str(), flags, 0644); });
  if (fd < 0) {
    ec = errno_code();
    return nullptr;
  }
  ec.clear();
  return std::unique_ptr<LockFile>(new LockFile(fd, std::move(path), uncached_reads));
}

LockFile::~LockFile() { ::close(m_fd); }

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

std::string LockFile::read_at(std::size_t size, off_t offset, std::error_code& ec) const {
  if (m_uncached_reads) ::posix_fadvise(m_fd, offset, static_cast<off_t>(size), POSIX_FADV_DONTNEED);
  return read_fd_at(m_fd, size, offset, ec);
}

TokenRecord LockFile::read_tokens(std::error_code& ec) {
  std::string text = read_at(k_token_record_size, 0, ec);
  return ec ? TokenRecord{} : parse_token_record(text);
}

std::error_code LockFile::write_tokens(const TokenRecord& record, bool sync) {
  if (auto ec = write_all_at(m_fd, format_token_record(record), 0)) return ec;
  if (sync && ::fdatasync(m_fd) != 0) return errno_code();
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
  return write_all_at(m_fd, std::string_view(record, k_holder_size), k_holder_offset);
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
  return write_all_at(m_fd, line, slot_offset(slot));
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
