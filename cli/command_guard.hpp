// The guard: a small process between baton and CMD that makes CMD's whole
// process tree end with the lock, even when baton is killed with SIGKILL.
//
//   baton run (subreaper) ── guard (subreaper, holds the connection) ── CMD ...
//
// The guard is forked from baton once the lock is held, so it holds a copy
// of the daemon connection: the daemon releases the lock (or gives the item
// back) only once both have closed it. It is a child subreaper, so every
// process CMD starts, also after setsid() or a double fork, stays its
// descendant; CMD leads a process group of its own. The guard reaps CMD and
// reports its status to baton, then exits once no descendant is left
// (terminating leftovers with SIGTERM). When baton dies, the guard sees its
// control pipe close, kills the tree with SIGKILL, reaps it, and only then
// exits, closing the last copy of the connection.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "cli/child_process.hpp"

namespace baton::cli {

struct GuardEvent {
  enum Kind : std::int32_t {
    started = 1,   // value: CMD's pid
    exec_failed,   // value: errno of exec
    spawn_failed,  // value: errno of pipe or fork
    exited,        // value: CMD's wait status; extra: 1 if descendants remain
    stopped,       // value: the signal that stopped CMD
  };
  std::int32_t kind = 0;
  std::int32_t value = 0;
  std::int32_t extra = 0;
};

class CommandGuard {
 public:
  CommandGuard() = default;
  // If the guard still runs, makes it kill CMD's tree and waits for it.
  ~CommandGuard();
  CommandGuard(const CommandGuard&) = delete;
  CommandGuard& operator=(const CommandGuard&) = delete;

  // Forks the guard, which starts ARGV as spawn_child() does (STDIN_FD, in
  // a process group of its own; TERMINAL_FD, unless -1, handed to that
  // group). SIGNAL_FD is baton's signalfd, with SIGCHLD blocked: the guard
  // reads its own SIGCHLD from it. Blocks until CMD was exec()ed; on failure
  // the guard is reaped before returning.
  SpawnResult start(char* const argv[], int stdin_fd, int terminal_fd,
                    int signal_fd);

  pid_t pid() const noexcept { return m_pid; }          // the guard
  pid_t command() const noexcept { return m_command; }  // CMD, its pgid too
  int event_fd() const noexcept { return m_events; }

  // The next event, if any; never blocks. False at EOF too (then eof()).
  bool read_event(GuardEvent& event) noexcept;
  bool eof() const noexcept { return m_eof; }

  // SIGTERM (then SIGCONT) to CMD, or, once CMD has exited, to every
  // descendant left; the guard sends the same to what CMD leaves behind.
  void terminate() noexcept;
  // SIGKILL to the tree, again until it is gone.
  void kill() noexcept;

  // Closes the control pipe (the guard kills the tree) and waits until the
  // guard, and so the tree, is gone. Idempotent.
  void kill_and_wait() noexcept;

  // The guard was reaped (by whoever called waitpid).
  void set_exited(int status) noexcept;
  bool exited() const noexcept { return m_exited; }
  int exit_status() const noexcept { return m_exit_status; }

 private:
  void send(char command) noexcept;

  pid_t m_pid = -1;
  pid_t m_command = -1;
  int m_control = -1;  // write end: the guard reads commands and EOF
  int m_events = -1;   // read end of the guard's events
  bool m_eof = false;
  bool m_exited = false;
  int m_exit_status = 0;
};

}  // namespace baton::cli
