// batond as a whole: checks the root, claims the socket, accepts sessions,
// re-verifies held locks, and shuts down in order on SIGTERM.
#pragma once

#include "daemon/options.hpp"

namespace baton::daemon {

// Runs the daemon until SIGTERM/SIGINT (or, with --exit-when-idle, until
// the last client left). Returns the process exit code.
int run_daemon(const DaemonOptions& options);

}  // namespace baton::daemon
