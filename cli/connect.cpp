#include "cli/connect.hpp"

#include "cli/diagnostics.hpp"
#include "cli/exit_codes.hpp"

namespace baton::cli {

int connect_or_report(Client& client, const std::string& socket,
                      std::chrono::milliseconds connect_timeout) {
  ClientOptions options;
  options.socket_path = socket;
  options.connect_timeout = connect_timeout;
  std::error_code ec;
  client.connect(options, ec);
  if (!ec) return k_exit_ok;
  // Whatever went wrong before the greeting, the daemon is not usable: a
  // timeout or a closed connection here means "unreachable", not "busy".
  int code = exit_code_for(ec);
  if (ec == errc::timed_out || ec == errc::connection_lost || ec == errc::busy)
    code = k_exit_unavailable;
  print_error("cannot connect to batond at %s: %s", socket.c_str(),
              ec.message().c_str());
  return code;
}

}  // namespace baton::cli
