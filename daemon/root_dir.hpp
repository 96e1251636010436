// The root, and every path a client names inside it. A path is relative,
// and is resolved by the kernel with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_MAGICLINKS): no "..", absolute symlink or magic link can lead
// outside, whichever component it sits in; symlinks that stay inside work.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <system_error>

namespace baton::daemon {

class RootDir {
 public:
  // Opens ROOT (a directory). Throws std::system_error if it cannot.
  // NETWORK: on a network filesystem, whose page cache may be stale.
  explicit RootDir(const std::string& root, bool network = false);
  ~RootDir();
  RootDir(const RootDir&) = delete;
  RootDir& operator=(const RootDir&) = delete;

  int fd() const noexcept { return m_fd; }
  const std::string& path() const noexcept { return m_path; }
  // Whether shared records must be read past the page cache: another node
  // may have rewritten them (GlusterFS FUSE serves stale pages).
  bool network() const noexcept { return m_network; }

  // openat2 beneath the root. Escapes come back as errc::path_outside_root.
  // May block (network filesystems): call off the event loop there.
  int open_beneath(const std::string& path, int flags, mode_t mode,
                   std::error_code& ec) const;

  // Opens the directory that will hold PATH, creating missing directories
  // (0755) when CREATE. LEAF gets PATH's last component.
  int open_parent(const std::string& path, bool create, std::string& leaf,
                  std::error_code& ec) const;

 private:
  int m_fd;
  std::string m_path;
  bool m_network;
};

}  // namespace baton::daemon
