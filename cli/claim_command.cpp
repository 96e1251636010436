// baton claim: takes one item of a spool queue under the daemon's root,
// exactly once among all consumers of all pods. With CMD, runs it with the
// item on its stdin (the descriptor the daemon passed: no copy), BATON_ITEM
// and BATON_QUEUE in its environment; CMD's exit 0 acknowledges the item,
// anything else gives it back. Without CMD, writes the item to stdout and
// acknowledges it. If baton dies, CMD and everything it started are killed
// (cli/command_guard.hpp) and then the daemon gives the item back, when the
// last copy of the connection closes.
#include <getopt.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cli/child_process.hpp"
#include "cli/command_guard.hpp"
#include "cli/command_line.hpp"
#include "cli/commands.hpp"
#include "cli/connect.hpp"
#include "cli/copy.hpp"
#include "cli/diagnostics.hpp"
#include "cli/exit_codes.hpp"
#include "cli/options.hpp"
#include "cli/signals.hpp"
#include "cli/supervisor.hpp"
#include "cli/time_format.hpp"
#include "cli/usage.hpp"

namespace baton::cli {
namespace {

constexpr std::string_view k_name = "claim";

struct ClaimOptions {
  std::string queue;
  std::optional<std::chrono::milliseconds> timeout;  // nullopt: forever
  std::chrono::milliseconds connect_timeout = k_default_connect_timeout;
  std::chrono::milliseconds kill_after = k_default_kill_after;
  std::optional<std::string> socket;
  char** command = nullptr;  // CMD and its arguments, null-terminated; or none
};

int usage() {
  std::string text =
      "Usage:\n"
      " baton claim [options] <queue> [[--] <command> [<argument>...]]\n"
      "\n"
      "Claim the oldest item of <queue>, a directory under the daemon's "
      "root.\n"
      "With a command, run it with the item on standard input: exit 0\n"
      "acknowledges the item, anything else gives it back to the queue.\n"
      "Without, write the item to standard output and acknowledge it.\n"
      "\n"
      "Options:\n"
      " -w, --timeout <secs>   wait at most this long for an item\n"
      "                        (default: until one comes; 0: look once)\n"
      "     --connect-timeout <secs>\n"
      "                        keep retrying to reach the daemon for this\n"
      "                        long (default: 10)\n"
      "     --kill-after <secs>\n"
      "                        when the daemon goes away, send the command "
      "and\n"
      "                        everything it started SIGKILL this long after\n"
      "                        SIGTERM (default: 2)\n"
      "     --socket <path>    the daemon's socket\n"
      "\n";
  text += k_usage_help_version;
  text += "\nFor more details see baton(1).\n";
  return print_help(text);
}

// Parses ARGV into OPTIONS. Returns -1 to go on, else the exit code.
// Options may come before and after QUEUE; the first argument after QUEUE
// that is not an option (or everything after "--") is CMD, left untouched.
int parse(int argc, char** argv, ClaimOptions& options) {
  static const option k_options[] = {
      {"timeout", required_argument, nullptr, 'w'},
      {"connect-timeout", required_argument, nullptr, k_option_connect_timeout},
      {"kill-after", required_argument, nullptr, k_option_kill_after},
      {"socket", required_argument, nullptr, k_option_socket},
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},
      {nullptr, 0, nullptr, 0},
  };
  reset_getopt();
  std::optional<std::string> queue;
  for (;;) {
    const int before = optind > 0 ? optind : 1;
    // "+": stop at the first non-option instead of moving it to the end.
    const int c = getopt_long(argc, argv, "+w:hV", k_options, nullptr);
    if (c == -1) {
      const bool double_dash =
          optind == before + 1 && std::strcmp(argv[before], "--") == 0;
      if (!queue && optind < argc) {
        queue = argv[optind++];
        if (!double_dash) continue;  // options may follow QUEUE
      }
      if (optind < argc) {
        options.command = argv + optind;
      } else if (double_dash) {
        return usage_error(k_name, "no command after '--'");
      }
      break;
    }
    switch (c) {
      case 'w': {
        auto parsed = parse_seconds(optarg, "invalid timeout");
        if (!parsed) return usage_error(k_name, "%s", parsed.error.c_str());
        options.timeout = parsed.value;
        break;
      }
      case k_option_connect_timeout: {
        auto parsed = parse_seconds(optarg, "invalid connect timeout");
        if (!parsed) return usage_error(k_name, "%s", parsed.error.c_str());
        options.connect_timeout = *parsed.value;
        break;
      }
      case k_option_kill_after: {
        auto parsed = parse_seconds(optarg, "invalid kill-after time");
        if (!parsed) return usage_error(k_name, "%s", parsed.error.c_str());
        options.kill_after = *parsed.value;
        break;
      }
      case k_option_socket:
        options.socket = optarg;
        break;
      case 'h':
        return usage();
      case 'V':
        return print_version();
      default:
        return try_help(k_name);
    }
  }
  if (!queue) return usage_error(k_name, "no queue given");
  options.queue = *queue;
  return -1;
}

// "item 'ID' of queue 'QUEUE'", for messages.
std::string describe(const QueueItem& item, const ClaimOptions& options) {
  return "item '" + printable(item.id()) + "' of queue '" +
         printable(options.queue) + "'";
}

// Acknowledges ITEM once it was processed. Returns the exit code.
int acknowledge(const Client& client, QueueItem& item,
                const ClaimOptions& options) {
  const std::string what = describe(item, options);
  std::error_code ec;
  item.ack(ec);
  if (!ec) return k_exit_ok;
  if (ec == errc::lock_lost) {
    // The claim was lost (another consumer may own the item now): the
    // daemon removed nothing.
    print_error("%s was lost before its acknowledgement: not removed; %s",
                what.c_str(), printable(client.last_error_message()).c_str());
    return k_exit_lock_lost;
  }
  if (ec == errc::connection_lost) {
    // The daemon went away with the item, which goes back to the queue.
    print_error(
        "connection to batond lost before %s was acknowledged: it will be "
        "claimed again",
        what.c_str());
    return k_exit_lock_lost;
  }
  print_error("cannot acknowledge %s: %s", what.c_str(),
              error_detail(client, ec).c_str());
  return exit_code_for(ec);
}

// No CMD: the item to stdout, then ack; a failed write gives it back.
int print_item(const Client& client, QueueItem& item,
               const ClaimOptions& options) {
  CopyResult copied = copy_fd(item.fd(), STDOUT_FILENO);
  if (!copied) {
    const std::string what = describe(item, options);
    item.nack();
    if (copied.write_errno != 0)
      print_error("write error: %s; %s given back",
                  std::strerror(copied.write_errno), what.c_str());
    else
      print_error("cannot read %s: %s; given back", what.c_str(),
                  std::strerror(copied.read_errno));
    return k_exit_internal;
  }
  return acknowledge(client, item, options);
}

bool export_item(const QueueItem& item, const ClaimOptions& options) {
  if (::setenv("BATON_ITEM", item.id().c_str(), 1) != 0 ||
      ::setenv("BATON_QUEUE", options.queue.c_str(), 1) != 0) {
    print_error("cannot set BATON_ITEM and BATON_QUEUE: %s",
                std::strerror(errno));
    return false;
  }
  return true;
}

// CMD with the item on its stdin; its exit status decides ack or nack.
int run_on_item(Client& client, QueueItem& item, const ClaimOptions& options) {
  // On every early return, ITEM's destructor gives the item back.
  if (!export_item(item, options)) return k_exit_internal;
  SignalForwarder signals;
  if (std::error_code error = signals.open()) {
    print_error("cannot set up signal forwarding: %s", error.message().c_str());
    return k_exit_internal;
  }
  const std::string command_name = printable(options.command[0]);
  const int terminal_fd = job_control_terminal();
  CommandGuard guard;
  SpawnResult child =
      guard.start(options.command, item.fd(),
                  in_foreground(terminal_fd) ? terminal_fd : -1, signals.fd());
  if (child.error) {
    print_error("cannot start %s: %s", command_name.c_str(),
                child.error.message().c_str());
    return k_exit_internal;
  }
  if (child.exec_errno != 0) {
    print_error("%s: %s", command_name.c_str(),
                std::strerror(child.exec_errno));
    return child.exec_errno == ENOENT ? k_exit_not_found
                                      : k_exit_cannot_execute;
  }

  SuperviseOptions supervise_options;
  supervise_options.command_name = command_name;
  supervise_options.held = describe(item, options);
  supervise_options.kill_after = options.kill_after;
  supervise_options.terminal_fd = terminal_fd;
  // The daemon found the claim lost (a partition let another consumer take
  // the item): stop CMD, as `baton run` does for a lost lock, and exit 74.
  supervise_options.lost = [&item](std::string& message) {
    if (item.lost()) message = item.lost_message();
    return item.lost_reason();
  };
  const int code =
      supervise(client, nullptr, guard, signals, supervise_options);
  if (code != k_exit_ok) {
    // Also when the daemon went away (k_exit_lock_lost): then it is moot.
    item.nack();
    return code;
  }
  return acknowledge(client, item, options);
}

}  // namespace

int claim_command(int argc, char** argv, const GlobalOptions& global) {
  ClaimOptions options;
  if (int code = parse(argc, argv, options); code >= 0) return code;

  // Until CMD runs, a terminating signal ends baton at once; closing the
  // connection cancels the wait, or gives back an item already claimed.
  exit_on_signals_while_waiting();
  Client client;
  if (int code = connect_or_report(client, socket_path(global, options.socket),
                                   options.connect_timeout))
    return code;

  std::error_code ec;
  QueueItem item = client.claim(options.queue, options.timeout, ec);
  if (ec == errc::timed_out) {
    const auto waited = options.timeout.value_or(std::chrono::milliseconds(0));
    if (waited.count() == 0)
      print_error("queue '%s' is empty", printable(options.queue).c_str());
    else
      print_error("no item in queue '%s' within %s s",
                  printable(options.queue).c_str(),
                  format_seconds(waited).c_str());
    return k_exit_busy;
  }
  if (ec) {
    print_error("cannot claim from queue '%s': %s",
                printable(options.queue).c_str(),
                error_detail(client, ec).c_str());
    return exit_code_for(ec);
  }
  int code = options.command ? run_on_item(client, item, options)
                             : print_item(client, item, options);
  client.close();
  return code;
}

}  // namespace baton::cli
