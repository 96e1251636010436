// The OFD lock on byte 0 that marks a file as in use by a live process
// (staging files, claimed queue items): the kernel drops it when its owner
// dies, so any daemon on any node can tell live files from abandoned ones.
#pragma once

#include <fcntl.h>

#include <cerrno>

namespace baton::daemon {

// F_OFD_SETLK(W) on byte 0; TYPE is F_WRLCK, F_RDLCK or F_UNLCK. False on
// failure, errno set (EAGAIN when someone else holds it).
inline bool ofd_lock(int fd, short type, bool wait) {
  struct flock lock{};
  lock.l_type = type;
  lock.l_whence = SEEK_SET;
  lock.l_start = 0;
  lock.l_len = 1;
  int rc;
  do {
    rc = ::fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &lock);
  } while (rc != 0 && errno == EINTR);
  return rc == 0;
}

}  // namespace baton::daemon
