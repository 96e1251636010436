// Closes a descriptor baton opened, when it goes out of scope; never the
// standard ones, which a command may have been handed as its input.
#pragma once

#include <unistd.h>

#include <utility>

namespace baton::cli {

class FdCloser {
 public:
  explicit FdCloser(int fd) noexcept : m_fd(fd) {}
  ~FdCloser() {
    if (m_fd > STDERR_FILENO) ::close(m_fd);
  }
  FdCloser(FdCloser&& other) noexcept : m_fd(std::exchange(other.m_fd, -1)) {}
  FdCloser& operator=(FdCloser&&) = delete;
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

  int get() const noexcept { return m_fd; }

 private:
  int m_fd;
};

}  // namespace baton::cli
