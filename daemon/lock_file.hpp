// One lock file under <root>/.baton/locks/ and the OFD locks on it.
//
// Layout of the file (text, so `cat` shows it):
//   bytes   0..63   the token record: "baton-lock 1 reserved=N owner=HEX"
//   bytes  64..511  the exclusive holder's record: one JSON object, space
//   padded from 4096       shared holders' slots, 2048 bytes each: one JSON
//   object
//                   and a newline, written by one daemon for its holders
// Byte 0 is the lock itself; byte 1 carries shared locks of daemons that wait
// for byte 0 in other pods, so the holder can see that someone waits. The
// first byte of a slot is write-locked by the daemon that uses it, while it
// has shared holders: a slot nobody locks is stale (its daemon released the
// lock or died) and is never shown.
//
// Every call here may block (on NFS, for a network round trip or worse);
// the caller decides where it runs. Errors carry the file's path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "baton/lock.hpp"

namespace baton::daemon {

struct TokenRecord {
  std::uint64_t reserved_upto = 0;  // every token <= this is taken
  std::uint64_t owner = 0;          // daemon instance that reserved them
};

// How the records (tokens, holder) are read and written.
enum class RecordIo {
  cached,      // plain pread/pwrite: local filesystems
  drop_cache,  // posix_fadvise(DONTNEED) before each pread: drops the kernel
               // page cache only, not a FUSE server's own caches
  direct,      // whole aligned regions (the 512-byte header, a slot) through
               // an O_DIRECT descriptor: past the kernel page cache and
               // GlusterFS's performance translators
};

class LockFile {
 public:
  // Opens (creating) FILE in the directory DIR_FD; PATH is for messages.
  // UNCACHED_READS: RecordIo::direct, for filesystems whose client caches do
  // not follow other nodes' writes under a lock (a GlusterFS FUSE mount with
  // its default translators serves stale records); else RecordIo::cached.
  static std::unique_ptr<LockFile> open(int dir_fd, const std::string& file,
                                        std::string path, bool uncached_reads,
                                        std::error_code& ec);
  static std::unique_ptr<LockFile> open(int dir_fd, const std::string& file,
                                        std::string path, RecordIo io, std::error_code& ec);
  ~LockFile();
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;

  const std::string& path() const noexcept { return m_path; }

  // F_OFD_SETLK on byte 0: returns errc::busy when another open file
  // description holds a conflicting lock.
  std::error_code try_lock(LockMode mode);
  // F_OFD_SETLKW on byte 0. Returns std::errc::interrupted when a signal
  // interrupted the wait (that is how a wait is cancelled).
  std::error_code wait_lock(LockMode mode);
  std::error_code unlock();

  // Advertise (or stop advertising) that this daemon waits for byte 0.
  std::error_code advertise_waiting(bool waiting);
  // True when another daemon advertises that it waits.
  bool others_waiting(std::error_code& ec);
  // True when another open file description holds byte 0.
  bool held_elsewhere(std::error_code& ec);

  TokenRecord read_tokens(std::error_code& ec);
  // Writes the record and (SYNC) makes it durable before returning.
  std::error_code write_tokens(const TokenRecord& record, bool sync);

  // JSON text of the holder record ("" if none).
  std::string read_holder(std::error_code& ec);
  std::error_code write_holder(std::string_view json);

  // Shared holders' slots. claim_slot() takes a free one, trying HINT first:
  // its index, or -1 (EC set on an I/O error, clear when all are taken).
  static constexpr int k_max_slots = 256;
  int claim_slot(int hint, std::error_code& ec);
  std::error_code write_slot(int slot, std::string_view json);
  std::error_code release_slot(int slot);
  // The records of the live slots other open file descriptions hold.
  std::vector<std::string> read_live_slots(std::error_code& ec);
  // True when another open file description holds byte 0 exclusively.
  bool held_exclusively_elsewhere(std::error_code& ec);

  // Whether the lock held through this file still means anything: the file
  // still answers I/O (NFSv4 gives EIO once its lease expired), and it is
  // still the file at its path (not removed or replaced).
  std::error_code verify(int dir_fd, const std::string& file, LockMode held);

 private:
  LockFile(int fd, int direct_fd, std::string path, RecordIo io)
      : m_fd(fd), m_direct_fd(direct_fd), m_path(std::move(path)), m_io(io) {}
  std::string read_at(std::size_t size, off_t offset, std::error_code& ec) const;
  std::error_code write_at(std::string_view data, off_t offset);

  int m_fd;
  int m_direct_fd;  // O_DIRECT reopening of m_fd (RecordIo::direct), else -1
  std::string m_path;
  RecordIo m_io;
};

// The size of a lock file, and of every O_DIRECT transfer on it.
inline constexpr std::size_t k_lock_file_size = 512;

// Parses the first 64 bytes of a lock file; a blank or foreign record reads
// as all zero.
TokenRecord parse_token_record(std::string_view text);
std::string format_token_record(const TokenRecord& record);

}  // namespace baton::daemon
