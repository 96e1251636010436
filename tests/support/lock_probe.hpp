// Looks at a lock file the way another pod's daemon would.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <string>

namespace baton::test {

// Whether some daemon advertises a wait on LOCK_FILE: the shared OFD lock on
// byte 1 that a daemon takes while it waits for another pod's holder.
inline bool wait_is_advertised(const std::string& lock_file) {
  int fd = ::open(lock_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct flock probe{};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  probe.l_start = 1;
  probe.l_len = 1;
  const bool advertised = ::fcntl(fd, F_OFD_GETLK, &probe) == 0 && probe.l_type != F_UNLCK;
  ::close(fd);
  return advertised;
}

}  // namespace baton::test
