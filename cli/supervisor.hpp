// `baton run` and `baton claim` while CMD runs: passes signals on to CMD,
// watches the daemon's socket for the loss of what CMD works under (the
// lock, or the claimed item), and stops CMD when that happens.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>

#include "baton/client.hpp"
#include "cli/signals.hpp"

namespace baton::cli {

struct SuperviseOptions {
  std::string command_name;  // CMD's argv[0], for messages
  // What CMD works under, for messages: "lock 'x'", "item 'id'".
  std::string held;
  // Grace between SIGTERM and SIGKILL when the lock is lost.
  std::chrono::milliseconds kill_after{10000};
  // Besides LOCK, what else CMD works under (a claimed item): returns why it
  // was lost (MESSAGE: the daemon's explanation), or no error while it holds.
  std::function<std::error_code(std::string& message)> lost;
};

// Why LOCK (or, with a null LOCK, the connection) was lost, for a message:
// the daemon's own explanation when it gave one ("lock file ...:
// Input/output error"), else what REASON means here.
std::string describe_loss(const Lock* lock, const std::error_code& reason);

// Blocks until CHILD (started with SIGNALS open) has ended, and returns the
// exit code baton should exit with: CMD's own (128+N for signal N), or
// k_exit_lock_lost when LOCK was lost, or the daemon went away, while CMD
// ran (without a LOCK, as for a claimed item, only the latter). In that case
// prints one line, sends CMD SIGTERM, and SIGKILL after kill_after. Does not
// release LOCK.
int supervise(Client& client, Lock* lock, pid_t child, SignalForwarder& signals,
              const SuperviseOptions& options);

}  // namespace baton::cli
