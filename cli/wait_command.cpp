// baton wait: blocks until a path under the daemon's root exists, or has a
// version newer than one the caller has seen, published from any pod; prints
// that version. With the version `publish` or the last `wait` printed, a
// reader job takes each new version once.
#include <getopt.h>

#include <cinttypes>
#include <cstdio>
#include <string>

#include "cli/command_line.hpp"
#include "cli/commands.hpp"
#include "cli/connect.hpp"
#include "cli/diagnostics.hpp"
#include "cli/exit_codes.hpp"
#include "cli/options.hpp"
#include "cli/time_format.hpp"
#include "cli/usage.hpp"

namespace baton::cli {
namespace {

constexpr std::string_view k_name = "wait";

int usage() {
  std::string text =
      "Usage:\n"
      " baton wait [options] <path>\n"
      "\n"
      "Wait until <path>, under the daemon's root, exists or has a newer\n"
      "version; print its version.\n"
      "\n"
      "Options:\n"
      "     --newer-than <version>\n"
      "                        wait for a version greater than this one\n"
      "                        (default: for <path> to exist)\n"
      " -w, --timeout <secs>   wait at most this long\n"
      "     --connect-timeout <secs>\n"
      "                        keep retrying to reach the daemon for this\n"
      "                        long (default: 10)\n"
      "     --socket <path>    the daemon's socket\n"
      "\n";
  text += k_usage_help_version;
  text += "\nFor more details see baton(1).\n";
  return print_help(text);
}

}  // namespace

int wait_command(int argc, char** argv, const GlobalOptions& global) {
  static const option k_options[] = {
      {"newer-than", required_argument, nullptr, k_option_newer_than},
      {"timeout", required_argument, nullptr, 'w'},
      {"connect-timeout", required_argument, nullptr, k_option_connect_timeout},
      {"socket", required_argument, nullptr, k_option_socket},
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},
      {nullptr, 0, nullptr, 0},
  };
  WaitOptions wait_options;
  std::optional<std::string> socket;
  std::chrono::milliseconds connect_timeout = k_default_connect_timeout;
  reset_getopt();
  int c;
  while ((c = getopt_long(argc, argv, "w:hV", k_options, nullptr)) != -1) {
    switch (c) {
      case k_option_newer_than: {
        auto parsed = parse_counter(optarg, "invalid version");
        if (!parsed) return usage_error(k_name, "%s", parsed.error.c_str());
        wait_options.newer_than = parsed.value;
        break;
      }
      case 'w': {
        auto parsed = parse_seconds(optarg, "invalid timeout");
        if (!parsed) return usage_error(k_name, "%s", parsed.error.c_str());
        wait_options.timeout = parsed.value;
        break;
      }
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
  if (optind >= argc) return usage_error(k_name, "no path given");
  if (optind + 1 < argc)
    return usage_error(k_name, "unexpected argument '%s'",
                       printable(argv[optind + 1]).c_str());
  const std::string path = printable(argv[optind]);

  Client client;
  if (int code = connect_or_report(client, socket_path(global, socket),
                                   connect_timeout))
    return code;
  std::error_code ec;
  std::uint64_t version = client.wait(argv[optind], wait_options, ec);
  if (ec == errc::timed_out) {
    const std::string after = format_seconds(
        wait_options.timeout.value_or(std::chrono::milliseconds(0)));
    if (wait_options.newer_than)
      print_error(
          "timed out after %s s waiting for a version of '%s' newer "
          "than %" PRIu64,
          after.c_str(), path.c_str(), *wait_options.newer_than);
    else
      print_error("timed out after %s s waiting for '%s' to exist",
                  after.c_str(), path.c_str());
    return k_exit_busy;
  }
  if (ec) {
    print_error("cannot wait for '%s': %s", path.c_str(),
                error_detail(client, ec).c_str());
    return exit_code_for(ec);
  }
  std::printf("%" PRIu64 "\n", version);
  return k_exit_ok;
}

}  // namespace baton::cli
