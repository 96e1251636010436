// baton enqueue: adds a local file (or stdin) as one item to a spool queue
// under the daemon's root, and prints the item's id. The daemon hands over
// an item file in the queue's tmp/; baton copies SRC into it and commits,
// which moves it into new/ where exactly one consumer will claim it.
// Anything short of a commit (an error, a signal, baton's death) enqueues
// nothing.
#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/command_line.hpp"
#include "cli/commands.hpp"
#include "cli/connect.hpp"
#include "cli/copy.hpp"
#include "cli/diagnostics.hpp"
#include "cli/exit_codes.hpp"
#include "cli/fd_closer.hpp"
#include "cli/options.hpp"
#include "cli/usage.hpp"

namespace baton::cli {
namespace {

constexpr std::string_view k_name = "enqueue";

int usage() {
  std::string text =
      "Usage:\n"
      " baton enqueue [options] <queue> [<file>|-]\n"
      "\n"
      "Add a file (or standard input) as one item to <queue>, a directory\n"
      "under the daemon's root created on first use, and print the item's "
      "id.\n"
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

int enqueue_command(int argc, char** argv, const GlobalOptions& global) {
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
  // No '+': options may follow QUEUE and SRC.
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
  if (optind >= argc) return usage_error(k_name, "no queue given");
  if (optind + 2 < argc)
    return usage_error(k_name, "unexpected argument '%s'",
                       printable(argv[optind + 2]).c_str());
  const std::string queue = argv[optind];
  const std::string source = optind + 1 < argc ? argv[optind + 1] : "-";

  // SRC before the daemon: a missing file is told even with no daemon up,
  // and no queue gets created for nothing.
  const bool from_stdin = source == "-";
  // Built with append, not "'" + ...: g++ 12 at -O3 warns a false
  // -Wrestrict on that operator+ chain.
  std::string source_name = "standard input";
  if (!from_stdin)
    source_name.assign("'").append(printable(source)).append("'");
  int source_fd = STDIN_FILENO;
  if (!from_stdin) {
    source_fd = ::open(source.c_str(), O_RDONLY | O_NOCTTY | O_CLOEXEC);
    if (source_fd < 0) {
      print_error("cannot open %s: %s", source_name.c_str(),
                  std::strerror(errno));
      return k_exit_no_input;
    }
  }
  FdCloser closer(source_fd);
  struct stat info {};
  if (::fstat(source_fd, &info) == 0 && S_ISDIR(info.st_mode)) {
    print_error("cannot read %s: %s", source_name.c_str(),
                std::strerror(EISDIR));
    return k_exit_no_input;
  }

  Client client;
  if (int code = connect_or_report(client, socket_path(global, socket),
                                   connect_timeout))
    return code;
  std::error_code ec;
  PendingItem item = client.enqueue(queue, ec);
  if (ec) {
    print_error("cannot enqueue into '%s': %s", printable(queue).c_str(),
                error_detail(client, ec).c_str());
    return exit_code_for(ec);
  }

  CopyResult copied = copy_fd(source_fd, item.fd());
  if (!copied) {
    item.abort();
    if (copied.read_errno != 0) {
      print_error("cannot read %s: %s; nothing enqueued into '%s'",
                  source_name.c_str(), std::strerror(copied.read_errno),
                  printable(queue).c_str());
      return k_exit_no_input;
    }
    print_error("cannot write the item for '%s': %s; nothing enqueued",
                printable(queue).c_str(), std::strerror(copied.write_errno));
    return k_exit_internal;
  }

  std::string id = item.commit(ec);
  if (ec == errc::connection_lost) {
    // The commit may have happened just before the daemon went away.
    print_error(
        "connection to batond lost while committing an item for '%s': it "
        "may or may not be enqueued",
        printable(queue).c_str());
    return k_exit_unavailable;
  }
  if (ec) {
    print_error("cannot enqueue into '%s': %s", printable(queue).c_str(),
                error_detail(client, ec).c_str());
    // A commit finds its item gone only if something broke.
    return ec == errc::not_found ? k_exit_internal : exit_code_for(ec);
  }
  std::printf("%s\n", printable(id).c_str());
  return k_exit_ok;
}

}  // namespace baton::cli
