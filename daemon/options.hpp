// batond's settings: each flag has an environment twin (BATON_ROOT for
// --root, ...) so a manifest can set it either way; the flag wins.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace baton::daemon {

struct DaemonOptions {
  std::string root;                                // required
  std::string socket_path = "/run/baton/baton.sock";
  unsigned socket_mode = 0660;
  std::string log_level = "info";
  std::string log_format = "text";                 // text | json
  std::string pod_name;                            // default $POD_NAME or host name
  std::string node_name;                           // default $NODE_NAME or "unknown"
  std::size_t max_connections = 1024;
  std::size_t max_connections_per_process = 512;  // by SO_PEERCRED pid; pid 0 not counted
  // A connection that sent no complete request this long after connecting,
  // or left a line unfinished this long, is closed. Zero: never.
  std::chrono::milliseconds idle_timeout{10000};
  // Input and output buffered for all connections together, beyond a small
  // allowance each; raised to 4 x max_message_bytes if below.
  std::size_t max_buffered_bytes = 64 * 1024 * 1024;
  std::size_t max_message_bytes = 64 * 1024;
  std::size_t max_locks_per_session = 64;
  std::size_t max_send_queue_bytes = 1024 * 1024;
  unsigned max_local_handovers = 8;
  std::chrono::milliseconds lock_check_interval{2000};
  std::chrono::milliseconds shutdown_grace{1000};
  // How often `wait` re-reads versions: inotify cannot see other nodes.
  std::chrono::milliseconds poll_interval{500};
  bool exit_when_idle = false;
  bool allow_local_locks = false;  // skip the refusal of node-local lock mounts
  std::vector<unsigned> allow_uids;  // empty: any peer
};

enum class ParseOutcome { run, exit_ok, usage_error };

// Parses ARGV over the environment. On usage_error, ERROR holds one line.
ParseOutcome parse_options(int argc, char** argv, DaemonOptions& options,
                           std::string& error);

void print_usage();

}  // namespace baton::daemon
