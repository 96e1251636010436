// `baton run` and `baton claim` while CMD runs: passes signals on to CMD,
// watches the daemon's socket for the loss of what CMD works under (the
// lock, or the claimed item), and stops CMD when that happens.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>

#include "baton/client.hpp"
#include "cli/command_guard.hpp"
#include "cli/signals.hpp"

namespace baton::cli {

// The default of --kill-after: it bounds how long CMD's tree may run on
// after its lock was reported lost (docs/semantics.md, "Overlap").
inline constexpr std::chrono::milliseconds k_default_kill_after{2000};

struct SuperviseOptions {
  std::string command_name;  // CMD's argv[0], for messages
  // What CMD works under, for messages: "lock 'x'", "item 'id'".
  std::string held;
  // Grace between SIGTERM and SIGKILL when the lock is lost, or for what
  // CMD left running when it exited.
  std::chrono::milliseconds kill_after{k_default_kill_after};
  // The terminal for job control (job_control_terminal()), or -1.
  int terminal_fd = -1;
  // Besides LOCK, what else CMD works under (a claimed item): returns why it
  // was lost (MESSAGE: the daemon's explanation), or no error while it holds.
  std::function<std::error_code(std::string& message)> lost;
};

// The first of stdin, stdout and stderr that is baton's controlling
// terminal, for job control; -1 if none is.
int job_control_terminal() noexcept;

// Whether baton's process group is TERMINAL_FD's foreground group (CMD then
// gets the terminal).
bool in_foreground(int terminal_fd) noexcept;

// Why LOCK (or, with a null LOCK, the connection) was lost, for a message:
// the daemon's own explanation when it gave one ("lock file ...:
// Input/output error"), else what REASON means here.
std::string describe_loss(const Lock* lock, const std::error_code& reason);

// Blocks until CMD, started under GUARD with SIGNALS open, and everything
// it started have ended, and returns the exit code baton should exit with:
// CMD's own (128+N for signal N), or k_exit_lock_lost when LOCK was lost,
// or the daemon went away, while the tree ran (without a LOCK, as for a
// claimed item, only the latter). In that case prints one line, sends CMD
// SIGTERM, what it leaves behind SIGTERM once it exited, and the whole tree
// SIGKILL kill_after after the loss. Processes CMD leaves behind when it
// exits get the same. Forwards signals to CMD; with a terminal,
// mirrors CMD's job-control stops (Ctrl-Z stops CMD, then baton). Does not
// release LOCK.
int supervise(Client& client, Lock* lock, CommandGuard& guard,
              SignalForwarder& signals, const SuperviseOptions& options);

}  // namespace baton::cli
