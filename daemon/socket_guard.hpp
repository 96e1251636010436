// One daemon per socket. A Boost.Interprocess file lock on "<socket>.lock"
// says whether a daemon owns the socket; the kernel drops it when that daemon
// dies, however it dies, so a socket file left behind is known to be stale.
#pragma once

#include <memory>
#include <string>

#include <boost/interprocess/sync/file_lock.hpp>

namespace baton::daemon {

class SocketGuard {
 public:
  // Claims SOCKET_PATH: refuses (ERROR set, returns null) when another daemon
  // holds it or answers on it; removes a stale socket file otherwise.
  static std::unique_ptr<SocketGuard> claim(const std::string& socket_path,
                                            std::string& error);
  ~SocketGuard();

 private:
  SocketGuard(std::string socket_path, std::string lock_path);
  std::string m_socket_path;
  std::string m_lock_path;
  boost::interprocess::file_lock m_lock;
  bool m_owned = false;  // the socket path is ours to remove
};

}  // namespace baton::daemon
