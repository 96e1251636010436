// What every command's option parsing shares.
#pragma once

#include <optional>
#include <string>

#include "cli/commands.hpp"

namespace baton::cli {

// getopt_long values of long-only options: above any char, so they never
// collide with a short option.
enum LongOnlyOption : int {
  k_option_socket = 0x100,
  k_option_connect_timeout,
  k_option_kill_after,
  k_option_json,
  k_option_lock,
  k_option_no_replace,
  k_option_token,
  k_option_mode,
  k_option_newer_than,
  k_option_publish,
  k_option_publish_mode,
};

// getopt_long keeps global state: call this before parsing an argument
// vector (optind = 0 makes glibc start over, "+" included).
void reset_getopt() noexcept;

// The socket to use: --socket after the command, else --socket before it,
// else $BATON_SOCKET, else /run/baton/baton.sock.
std::string socket_path(const GlobalOptions& global,
                        const std::optional<std::string>& local);

}  // namespace baton::cli
