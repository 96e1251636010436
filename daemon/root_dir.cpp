#include "daemon/root_dir.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "baton/error.hpp"
#include "daemon/open_or_create.hpp"

namespace baton::daemon {
namespace {

std::error_code errno_code() { return {errno, std::system_category()}; }

int openat2_beneath(int dir, const char* path, int flags, mode_t mode) {
  open_how how{};
  how.flags = static_cast<std::uint64_t>(flags) | O_CLOEXEC;
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  return open_or_create(flags, [&] {
    int fd;
    do {
      fd = static_cast<int>(::syscall(SYS_openat2, dir, path, &how, sizeof how));
    } while (fd < 0 && errno == EAGAIN);  // a concurrent rename: retry
    return fd;
  });
}

// EXDEV: the path (or a symlink in it) leads out of the root. ELOOP with
// RESOLVE_NO_MAGICLINKS: a /proc-style magic link.
std::error_code resolve_error() {
  if (errno == EXDEV || errno == ELOOP) return make_error_code(errc::path_outside_root);
  return errno_code();
}

}  // namespace

RootDir::RootDir(const std::string& root, bool network) : m_path(root), m_network(network) {
  m_fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (m_fd < 0) throw std::system_error(errno_code(), "cannot open root " + root);
}

RootDir::~RootDir() { ::close(m_fd); }

int RootDir::open_beneath(const std::string& path, int flags, mode_t mode,
                          std::error_code& ec) const {
  int fd = openat2_beneath(m_fd, path.c_str(), flags, mode);
  if (fd < 0) {
    ec = resolve_error();
    return -1;
  }
  ec.clear();
  return fd;
}

int RootDir::open_parent(const std::string& path, bool create, std::string& leaf,
                         std::error_code& ec) const {
  std::size_t slash = path.rfind('/');
  leaf = slash == std::string::npos ? path : path.substr(slash + 1);
  if (slash == std::string::npos) {
    int fd = ::fcntl(m_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) ec = errno_code(); else ec.clear();
    return fd;
  }
  std::string parent = path.substr(0, slash);
  int fd = openat2_beneath(m_fd, parent.c_str(), O_RDONLY | O_DIRECTORY, 0);
  if (fd >= 0 || errno != ENOENT || !create) {
    if (fd < 0) ec = resolve_error(); else ec.clear();
    return fd;
  }
  // Walk down, creating what is missing. Each step resolves beneath the
  // directory we already hold, so a symlink swapped in meanwhile cannot
  // lead out.
  int dir = ::fcntl(m_fd, F_DUPFD_CLOEXEC, 0);
  std::size_t start = 0;
  while (dir >= 0 && start < parent.size()) {
    std::size_t end = parent.find('/', start);
    if (end == std::string::npos) end = parent.size();
    std::string part = parent.substr(start, end - start);
    if (::mkdirat(dir, part.c_str(), 0755) != 0 && errno != EEXIST) {
      ec = errno_code();
      ::close(dir);
      return -1;
    }
    int next = openat2_beneath(dir, part.c_str(), O_RDONLY | O_DIRECTORY, 0);
    if (next < 0) ec = resolve_error();
    ::close(dir);
    dir = next;
    start = end + 1;
  }
  if (dir >= 0) ec.clear();
  return dir;
}

}  // namespace baton::daemon
