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
  // libbaton reports both a socket this user may not open (EACCES, lasting
  // until the connect timeout) and the daemon's allow-list refusal this way.
  std::string why = ec == errc::permission_denied
                        ? "permission denied (check the socket's "
                          "permissions and the daemon's --allow-uids)"
                        : ec.message();
  print_error("cannot connect to batond at %s: %s", printable(socket).c_str(),
              why.c_str());
  return code;
}

std::string error_detail(const Client& client, const std::error_code& ec) {
  // Only errors the daemon itself replies with carry its text; for the ones
  // libbaton makes up, an older reply's text would be misleading.
  const bool from_daemon =
      ec.category() == error_category() && ec != errc::daemon_unreachable &&
      ec != errc::connection_lost && ec != errc::protocol_error &&
      ec != errc::version_mismatch;
  const std::string& message = client.last_error_message();
  if (from_daemon && !message.empty()) return printable(message);
  return ec.message();
}

}  // namespace baton::cli
