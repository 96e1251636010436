// Starting CMD and collecting its status.
#pragma once

#include <sys/types.h>

#include <system_error>

namespace baton::cli {

struct SpawnResult {
  pid_t pid = -1;         // the running child; -1 if it could not start
  int exec_errno = 0;     // exec failed with this (the child is reaped)
  std::error_code error;  // the pipe or fork failed
};

// Starts ARGV[0], searched in $PATH, with ARGV (vfork and exec). The child
// first asks for SIGKILL when its parent (the guard) dies
// (PR_SET_PDEATHSIG), makes sure the parent did not die before that took
// effect, and calls PREPARE (async-signal-safe, no
// allocation) before exec. An exec failure comes back through a
// close-on-exec pipe, so the caller can tell "CMD ran and exited 127" from
// "CMD could not be run". STDIN_FD, unless -1, becomes CMD's standard input
// (`baton claim` passes the item's descriptor: no copy). With NEW_GROUP,
// CMD leads a process group of its own, and TERMINAL_FD, unless -1, is a
// terminal whose foreground group becomes CMD's. Blocks until exec happened.
SpawnResult spawn_child(char* const argv[], void (*prepare)() noexcept,
                        int stdin_fd = -1, bool new_group = false,
                        int terminal_fd = -1);

// Waits for PID, retrying EINTR. BLOCK false: returns false at once while
// PID runs. Returns true with STATUS set once it ended; false with EC set
// if waitpid failed.
bool wait_child(pid_t pid, bool block, int& status, std::error_code& ec);

// CMD's status as baton's exit code: its own code, or 128+N for signal N.
int exit_code_from_status(int status) noexcept;

}  // namespace baton::cli
