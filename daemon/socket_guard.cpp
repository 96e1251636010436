#include "daemon/socket_guard.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <boost/interprocess/exceptions.hpp>

namespace baton::daemon {
namespace {

// True when something accepts connections on PATH.
bool answers(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) return false;
  std::memcpy(address.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool connected =
      ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return connected;
}

}  // namespace

SocketGuard::SocketGuard(std::string socket_path, std::string lock_path)
    : m_socket_path(std::move(socket_path)),
      m_lock_path(std::move(lock_path)),
      m_lock(m_lock_path.c_str()) {}

SocketGuard::~SocketGuard() {
  // Remove the socket while still holding the guard, so a successor never
  // sees our socket file and takes it for a live daemon's.
  if (m_owned) ::unlink(m_socket_path.c_str());
}

std::unique_ptr<SocketGuard> SocketGuard::claim(const std::string& socket_path,
                                                std::string& error) {
  if (socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
    error = "socket path " + socket_path + " is longer than " +
            std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes";
    return nullptr;
  }
  std::string lock_path = socket_path + ".lock";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = "cannot create " + lock_path + ": " + std::strerror(errno);
    return nullptr;
  }
  ::close(fd);
  std::unique_ptr<SocketGuard> guard;
  try {
    guard.reset(new SocketGuard(socket_path, lock_path));
    if (!guard->m_lock.try_lock()) {
      error = "another batond already serves " + socket_path;
      return nullptr;
    }
  } catch (const boost::interprocess::interprocess_exception& e) {
    error = "cannot lock " + lock_path + ": " + e.what();
    return nullptr;
  }
  if (answers(socket_path)) {
    // A daemon of another version, or one without our guard, answers there.
    error = "something already answers on " + socket_path;
    return nullptr;
  }
  struct stat info{};
  if (::lstat(socket_path.c_str(), &info) == 0) {
    if (!S_ISSOCK(info.st_mode)) {
      error = socket_path + " exists and is not a socket";
      return nullptr;
    }
    ::unlink(socket_path.c_str());  // stale: its daemon is gone
  }
  guard->m_owned = true;
  return guard;
}

}  // namespace baton::daemon
