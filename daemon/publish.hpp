// Atomic publish: a staging file in the destination's directory, then
// fsync, fencing check, rename, fsync of the directory. A reader that opens
// the destination sees one whole version, old or new, never a mix.
//
// Every function here blocks (fsync, rename, directory scans): run them off
// the event loop. Errors come back as baton::errc (with a message) or errno.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include "daemon/root_dir.hpp"

namespace baton::daemon {

// What the daemon knows of a published path: its version (grows by one with
// every publish through baton) and the highest fencing token used on it.
// Kept in <root>/.baton/versions/<hash>-<slot>.v: a header line ("baton-version
// 2 version=V token=T pending=INO check=X"), then the path. Before its rename
// a publish records its file's inode as pending; a file at the path with that
// inode is version V+1, whether or not the publisher lived to write V+1.
struct VersionRecord {
  std::uint64_t version = 0;
  std::uint64_t token = 0;
};

struct Failure {
  std::error_code code;
  std::string message;
  explicit operator bool() const noexcept { return static_cast<bool>(code); }
};

// A staging file: hidden, in the destination's directory, locked by us so
// another daemon's sweep can tell it is alive.
class StagedFile {
 public:
  ~StagedFile();  // removes the staging file unless committed
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;

  // Creates the staging file for DEST. MODE: the file's permissions.
  static std::unique_ptr<StagedFile> create(const RootDir& root, const std::string& dest,
                                            mode_t mode, bool no_replace,
                                            std::uint64_t instance, Failure& failure);

  // A descriptor for the writer (O_WRONLY), owned by the caller.
  int writer_fd(Failure& failure) const;

  // fsync, fence, record the intent (pending inode), rename (create-only
  // when NO_REPLACE), fsync the directory, record the new version. TOKEN:
  // refuse when older than one used on DEST.
  std::optional<VersionRecord> commit(const RootDir& root, std::optional<std::uint64_t> token,
                                      Failure& failure);

  const std::string& dest() const noexcept { return m_dest; }

 private:
  StagedFile() = default;
  std::string m_dest;
  std::string m_leaf;
  std::string m_stage_name;
  int m_dir_fd = -1;
  int m_fd = -1;
  mode_t m_mode = 0644;
  bool m_no_replace = false;
  bool m_committed = false;
};

// Opens PATH for reading (a regular file only) with its version and size;
// the record is read before and after the open, and the version is the one
// both give the opened inode: exactly that content's.
int open_published(const RootDir& root, const std::string& path, VersionRecord& record,
                   std::uint64_t& size, Failure& failure);

// Whether PATH exists beneath the root (errors other than ENOENT go to FAILURE).
bool path_exists(const RootDir& root, const std::string& path, Failure& failure);

// The record of PATH, all zero when never published through baton; its
// version is one more than recorded when the pending publish's file is at
// PATH (a publisher between its rename and its record, or dead there).
VersionRecord read_version(const RootDir& root, const std::string& path, Failure& failure);

// Removes staging files of dead daemons in DIR_FD (their lock is gone).
// Returns how many it removed.
std::size_t sweep_dead_stages(int dir_fd);

// The directory that holds version records, relative to the root.
inline constexpr const char* k_versions_dir = ".baton/versions";

}  // namespace baton::daemon
