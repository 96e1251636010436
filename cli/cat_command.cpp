// baton cat: one whole version of a path under the daemon's root on stdout.
// The daemon opens the file and passes the descriptor, so a publish that
// lands meanwhile replaces the name, not what is being read.
#include <getopt.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "cli/command_line.hpp"
#include "cli/commands.hpp"
#include "cli/connect.hpp"
#include "cli/copy.hpp"
#include "cli/diagnostics.hpp"
#include "cli/exit_codes.hpp"
#include "cli/options.hpp"
#include "cli/usage.hpp"

namespace baton::cli {
namespace {

constexpr std::string_view k_name = "cat";

int usage() {
  std::string text =
      "Usage:\n"
      " baton cat [options] <path>\n"
      "\n"
      "Write one whole version of <path>, under the daemon's root, to "
      "standard\n"
      "output.\n"
      "\n"
      "Options:\n"
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

int cat_command(int argc, char** argv, const GlobalOptions& global) {
  static const option k_options[] = {
      {"connect-timeout", required_argument, nullptr, k_option_connect_timeout},
      {"socket", required_argument, nullptr, k_option_socket},
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},
      {nullptr, 0, nullptr, 0},
  };
  std::optional<std::string> socket;
  std::chrono::milliseconds connect_timeout = k_default_connect_timeout;
  reset_getopt();
  int c;
  while ((c = getopt_long(argc, argv, "hV", k_options, nullptr)) != -1) {
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
  if (optind >= argc) return usage_error(k_name, "no path given");
  if (optind + 1 < argc)
    return usage_error(k_name, "unexpected argument '%s'",
                       printable(argv[optind + 1]).c_str());
  const std::string path = argv[optind];

  Client client;
  if (int code = connect_or_report(client, socket_path(global, socket),
                                   connect_timeout))
    return code;
  // A descriptor whose file a rename on another node replaced before its
  // first read may fail that read with ESTALE (GlusterFS opens lazily):
  // nothing was written yet, so open the path again, within the daemon's
  // own bound for such races (docs/handoff.md).
  CopyResult copied;
  for (int attempt = 0;; ++attempt) {
    std::error_code ec;
    OpenedFile file = client.open(path, ec);
    if (ec) {
      print_error("cannot read '%s': %s", printable(path).c_str(),
                  error_detail(client, ec).c_str());
      return exit_code_for(ec);
    }
    copied = copy_fd(file.fd, STDOUT_FILENO);
    const bool replaced =
        copied.read_errno == ESTALE || copied.read_errno == ENOENT;
    if (!replaced || copied.bytes != 0 || attempt >= 50) break;
  }
  // A reader that went away (`baton cat x | head -1`) is not our error, as
  // in close_stdout().
  if (copied.write_errno != 0 && copied.write_errno != EPIPE) {
    print_error("write error: %s", std::strerror(copied.write_errno));
    return k_exit_internal;
  }
  if (copied.read_errno != 0) {
    print_error("cannot read '%s': %s", printable(path).c_str(),
                std::strerror(copied.read_errno));
    return k_exit_internal;
  }
  return k_exit_ok;
}

}  // namespace baton::cli
