// The status line `baton run` shows on a terminal while its lock request
// waits: who holds the lock, since when. Nothing when stderr is not a
// terminal (logs should not collect it).
#pragma once

#include <string>

#include "baton/client.hpp"

namespace baton::cli {

class WaitLine {
 public:
  // Shows on FD, if FD is a terminal.
  WaitLine(int fd, std::string lock_name, LockMode mode);
  ~WaitLine();
  WaitLine(const WaitLine&) = delete;
  WaitLine& operator=(const WaitLine&) = delete;

  bool enabled() const noexcept { return m_enabled; }

  // Prints the line (without a newline) for INFO.
  void show(const QueueInfo& info);

  // Clears the line, if one is shown: the lock was granted or refused.
  void finish() noexcept;

  // The text of the line, without terminal control characters.
  static std::string describe(const std::string& lock_name, LockMode mode,
                              const QueueInfo& info);

 private:
  int m_fd;
  std::string m_lock_name;
  LockMode m_mode;
  bool m_enabled = false;
  bool m_shown = false;
};

}  // namespace baton::cli
