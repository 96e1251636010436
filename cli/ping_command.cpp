// baton ping: exit 0 when the daemon answers. The sidecar's startup probe,
// which kubelet repeats; so by default one connect attempt, no retrying.
#include <getopt.h>

#include <string>

#include "cli/command_line.hpp"
#include "cli/commands.hpp"
#include "cli/connect.hpp"
#include "cli/diagnostics.hpp"
#include "cli/exit_codes.hpp"
#include "cli/options.hpp"
#include "cli/usage.hpp"

namespace baton::cli {
namespace {

constexpr std::string_view k_name = "ping";

int usage() {
  std::string text =
      "Usage:\n"
      " baton ping [options]\n"
      "\n"
      "Check that the baton daemon answers; exit 0 if it does.\n"
      "\n"
      "Options:\n"
      "     --connect-timeout <secs>\n"
      "                        keep retrying to connect for this long\n"
      "                        (default: 0, one attempt)\n"
      "     --socket <path>    the daemon's socket\n"
      "\n";
  text += k_usage_help_version;
  text += "\nFor more details see baton(1).\n";
  return print_help(text);
}

}  // namespace

int ping_command(int argc, char** argv, const GlobalOptions& global) {
  static const option k_options[] = {
      {"connect-timeout", required_argument, nullptr, k_option_connect_timeout},
      {"socket", required_argument, nullptr, k_option_socket},
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},
      {nullptr, 0, nullptr, 0},
  };
  std::optional<std::string> socket;
  std::chrono::milliseconds connect_timeout{0};
  reset_getopt();
  int c;
  while ((c = getopt_long(argc, argv, "+hV", k_options, nullptr)) != -1) {
    switch (c) {
      case k_option_connect_timeout: {
        auto parsed = parse_seconds(optarg, "invalid connect timeout");
        if (!parsed) return usage_error(k_name, "%s", parsed.error.c_str());
        connect_timeout = *parsed.value;
        break;
      }
      case k_option_socket:
        socket = optarg;
        break;
      case 'h':
        return usage();
      case 'V':
        return print_version();
      default:
        return try_help(k_name);
    }
  }
  if (optind < argc)
    return usage_error(k_name, "unexpected argument '%s'", argv[optind]);

  Client client;
  const std::string path = socket_path(global, socket);
  if (int code = connect_or_report(client, path, connect_timeout)) return code;
  std::error_code ec;
  client.ping(ec);
  if (ec) {
    print_error("ping to batond at %s failed: %s", path.c_str(),
                error_detail(client, ec).c_str());
    // A daemon that accepted but does not answer is as good as none.
    return ec == errc::timed_out ? k_exit_unavailable : exit_code_for(ec);
  }
  return k_exit_ok;
}

}  // namespace baton::cli
