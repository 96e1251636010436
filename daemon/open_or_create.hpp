// Opening a shared file with O_CREAT (no O_EXCL) when another node may be
// creating it at the same moment.
#pragma once

#include <fcntl.h>

#include <cerrno>

namespace baton::daemon {

// On network filesystems (FUSE, NFS) O_CREAT without O_EXCL is a lookup
// then a create, and fails with EEXIST when another node created the file
// in between. The file exists then, so opening again finds it. OPEN is
// called with no arguments and returns a descriptor or -1 with errno set.
template <class Open>
int open_or_create(int flags, Open open) {
  int fd = open();
  const bool may_race = (flags & O_CREAT) != 0 && (flags & O_EXCL) == 0;
  for (int attempt = 0; fd < 0 && errno == EEXIST && may_race && attempt < 16; ++attempt)
    fd = open();
  return fd;
}

}  // namespace baton::daemon
