// Connecting to batond, with the one error line every command prints when
// that fails.
#pragma once

#include <chrono>
#include <string>

#include "baton/client.hpp"

namespace baton::cli {

// The connect timeout of `baton run` and `baton status`: the sidecar may be
// starting next to the job.
inline constexpr std::chrono::milliseconds k_default_connect_timeout{10000};

// Connects CLIENT to the daemon at SOCKET, retrying for CONNECT_TIMEOUT.
// Returns k_exit_ok, or prints "baton: cannot connect to batond at SOCKET:
// <why>" and returns the exit code for it. Blocks.
int connect_or_report(Client& client, const std::string& socket,
                      std::chrono::milliseconds connect_timeout);

// The end of an error line for EC, which a request on CLIENT just returned:
// the daemon's own one-line explanation when it sent one ("reports/x already
// exists"), else EC's message. Control characters become '?'.
std::string error_detail(const Client& client, const std::error_code& ec);

}  // namespace baton::cli
