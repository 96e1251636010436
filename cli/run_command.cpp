// baton run: runs CMD while holding a lock, like flock(1) with a lock that
// excludes across pods and nodes. CMD gets BATON_LOCK and BATON_TOKEN, its
// signals are forwarded, and CMD and everything it starts end before the
// lock does: on lock loss, when baton is killed, and when CMD exits and
// leaves processes behind (cli/command_guard.hpp). With --publish, CMD's
// output files are published under the lock's fencing token once it exited
// 0. The lock is released after that.
#include <getopt.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cli/child_process.hpp"
#include "cli/command_guard.hpp"
#include "cli/command_line.hpp"
#include "cli/commands.hpp"
#include "cli/connect.hpp"
#include "cli/diagnostics.hpp"
#include "cli/exit_codes.hpp"
#include "cli/options.hpp"
#include "cli/run_publish.hpp"
#include "cli/signals.hpp"
#include "cli/supervisor.hpp"
#include "cli/time_format.hpp"
#include "cli/usage.hpp"
#include "cli/wait_line.hpp"

namespace baton::cli {
namespace {

constexpr std::string_view k_name = "run";

struct RunOptions {
  std::optional<std::string> lock;
  LockMode mode = LockMode::exclusive;
  std::optional<std::chrono::milliseconds> timeout;  // nullopt: forever
  std::optional<int> conflict_exit_code;
  std::chrono::milliseconds connect_timeout = k_default_connect_timeout;
  std::chrono::milliseconds kill_after = k_default_kill_after;
  std::optional<std::string> socket;
  std::vector<PublishSpec> publishes;  // in the order given
  unsigned publish_mode = 0644;
  char** command = nullptr;  // CMD and its arguments, null-terminated
};

int usage() {
  std::string text =
      "Usage:\n"
      " baton run [options] --lock <name> [--] <command> [<argument>...]\n"
      "\n"
      "Run a command while holding a lock shared by every pod on the volume.\n"
      "\n"
      "Options:\n"
      "     --lock <name>      the lock to hold (required)\n"
      " -s, --shared           get a shared lock\n"
      " -x, --exclusive        get an exclusive lock (default)\n"
      " -w, --timeout <secs>   wait at most this long for the lock\n"
      " -n, --no-wait          fail rather than wait\n"
      " -E, --conflict-exit-code <number>\n"
      "                        exit code when the lock is busy or the wait\n"
      "                        timed out (default: 75)\n"
      "     --connect-timeout <secs>\n"
      "                        keep retrying to reach the daemon for this\n"
      "                        long (default: 10)\n"
      "     --kill-after <secs>\n"
      "                        when the lock is lost, send the command and\n"
      "                        everything it started SIGKILL this long after\n"
      "                        SIGTERM (default: 2)\n"
      "     --publish <local>=<dest>\n"
      "                        when the command exits 0, publish the file\n"
      "                        <local> to <dest> under the lock's token,\n"
      "                        before releasing it; repeatable (all are\n"
      "                        staged before the first is committed)\n"
      "     --publish-mode <octal>\n"
      "                        permissions of the published files\n"
      "                        (default: 0644)\n"
      "     --socket <path>    the daemon's socket\n"
      "\n";
  text += k_usage_help_version;
  text += "\nFor more details see baton(1).\n";
  return print_help(text);
}

// Parses ARGV into OPTIONS. Returns -1 to go on, else the exit code.
int parse(int argc, char** argv, RunOptions& options) {
  static const option k_options[] = {
      {"lock", required_argument, nullptr, k_option_lock},
      {"shared", no_argument, nullptr, 's'},
      {"exclusive", no_argument, nullptr, 'x'},
      {"timeout", required_argument, nullptr, 'w'},
      {"no-wait", no_argument, nullptr, 'n'},
      {"conflict-exit-code", required_argument, nullptr, 'E'},
      {"connect-timeout", required_argument, nullptr, k_option_connect_timeout},
      {"kill-after", required_argument, nullptr, k_option_kill_after},
      {"publish", required_argument, nullptr, k_option_publish},
      {"publish-mode", required_argument, nullptr, k_option_publish_mode},
      {"socket", required_argument, nullptr, k_option_socket},
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},
      {nullptr, 0, nullptr, 0},
  };
  reset_getopt();
  int c;
  while ((c = getopt_long(argc, argv, "+sxw:nE:hV", k_options, nullptr)) !=
         -1) {
    switch (c) {
      case k_option_lock:
        options.lock = optarg;
        break;
      case 's':
        options.mode = LockMode::shared;
        break;
      case 'x':
        options.mode = LockMode::exclusive;
        break;
      case 'w': {
        auto parsed = parse_seconds(optarg, "invalid timeout");
        if (!parsed) return usage_error(k_name, "%s", parsed.error.c_str());
        options.timeout = parsed.value;
        break;
      }
      case 'n':
        options.timeout = std::chrono::milliseconds(0);
        break;
      case 'E': {
        auto parsed = parse_exit_code(optarg, "invalid conflict exit code");
        if (!parsed) return usage_error(k_name, "%s", parsed.error.c_str());
        options.conflict_exit_code = parsed.value;
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
      case k_option_publish: {
        auto parsed = parse_publish_spec(optarg, "invalid --publish");
        if (!parsed) return usage_error(k_name, "%s", parsed.error.c_str());
        if (options.publishes.size() == k_max_publishes)
          return usage_error(k_name, "at most %zu --publish", k_max_publishes);
        options.publishes.push_back(std::move(*parsed.value));
        break;
      }
      case k_option_publish_mode: {
        auto parsed = parse_mode(optarg, "invalid publish mode");
        if (!parsed) return usage_error(k_name, "%s", parsed.error.c_str());
        options.publish_mode = *parsed.value;
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
  if (!options.lock)
    return usage_error(k_name, "no lock given: --lock <name> is required");
  // libbaton checks the name only once connected, but a bad name is a usage
  // error, to be told at once even with no daemon up.
  if (std::string why = check_lock_name(*options.lock); !why.empty())
    return usage_error(k_name, "invalid lock name '%s' (%s)",
                       printable(*options.lock).c_str(), why.c_str());
  // A shared hold has no fencing token to publish under, and would let
  // several holders publish at once.
  if (!options.publishes.empty() && options.mode == LockMode::shared)
    return usage_error(k_name,
                       "--publish needs an exclusive lock, not --shared");
  if (optind >= argc) return usage_error(k_name, "no command to run");
  options.command = argv + optind;
  return -1;
}

// The exit code for a lock request that failed, after saying why.
int report_lock_error(const Client& client, const RunOptions& options,
                      const std::error_code& ec) {
  const char* name = options.lock->c_str();
  if (ec == errc::busy || ec == errc::timed_out) {
    if (ec == errc::busy)
      print_error("lock '%s' is busy; not running %s", name,
                  printable(options.command[0]).c_str());
    else
      print_error(
          "timed out after %s s waiting for lock '%s'; not running %s",
          format_seconds(options.timeout.value_or(std::chrono::milliseconds(0)))
              .c_str(),
          name, printable(options.command[0]).c_str());
    return options.conflict_exit_code.value_or(k_exit_busy);
  }
  if (ec == errc::invalid_name)
    return usage_error(k_name, "invalid lock name '%s'", name);
  const std::string detail = error_detail(client, ec);
  if (ec == errc::invalid_argument)
    return usage_error(k_name, "lock '%s': %s", name, detail.c_str());
  print_error("cannot lock '%s': %s", name, detail.c_str());
  return exit_code_for(ec);
}

bool export_lock(const Lock& lock) {
  std::string token = std::to_string(lock.token());
  if (::setenv("BATON_LOCK", lock.name().c_str(), 1) != 0 ||
      ::setenv("BATON_TOKEN", token.c_str(), 1) != 0) {
    print_error("cannot set BATON_LOCK and BATON_TOKEN: %s",
                std::strerror(errno));
    return false;
  }
  return true;
}

}  // namespace

int run_command(int argc, char** argv, const GlobalOptions& global) {
  RunOptions options;
  if (int code = parse(argc, argv, options); code >= 0) return code;

  exit_on_signals_while_waiting();
  Client client;
  if (int code = connect_or_report(client, socket_path(global, options.socket),
                                   options.connect_timeout))
    return code;

  std::error_code ec;
  Lock lock;
  {
    WaitLine wait_line(STDERR_FILENO, *options.lock, options.mode);
    LockOptions lock_options;
    lock_options.mode = options.mode;
    lock_options.timeout = options.timeout;
    if (wait_line.enabled())
      lock_options.on_queued = [&](const QueueInfo& info) {
        wait_line.show(info);
      };
    lock = client.lock(*options.lock, lock_options, ec);
  }
  if (ec) return report_lock_error(client, options, ec);
  if (!export_lock(lock)) return k_exit_internal;

  SignalForwarder signals;
  if (std::error_code error = signals.open()) {
    print_error("cannot set up signal forwarding: %s", error.message().c_str());
    return k_exit_internal;
  }
  const int terminal_fd = job_control_terminal();
  CommandGuard guard;
  SpawnResult child =
      guard.start(options.command, -1,
                  in_foreground(terminal_fd) ? terminal_fd : -1, signals.fd());
  if (child.error) {
    print_error("cannot start %s: %s", printable(options.command[0]).c_str(),
                child.error.message().c_str());
    return k_exit_internal;
  }
  if (child.exec_errno != 0) {
    print_error("%s: %s", printable(options.command[0]).c_str(),
                std::strerror(child.exec_errno));
    return child.exec_errno == ENOENT ? k_exit_not_found
                                      : k_exit_cannot_execute;
  }

  SuperviseOptions supervise_options;
  supervise_options.command_name = printable(options.command[0]);
  supervise_options.held = "lock '" + lock.name() + "'";
  supervise_options.kill_after = options.kill_after;
  supervise_options.terminal_fd = terminal_fd;
  int code = supervise(client, &lock, guard, signals, supervise_options);
  // Signals stay blocked meanwhile: they are acted on once publishing is
  // done, so that a SIGTERM does not cut a set of publishes in half.
  if (code == k_exit_ok && !options.publishes.empty())
    code =
        publish_outputs(client, lock, options.publishes, options.publish_mode);
  lock.release();
  client.close();
  return code;
}

}  // namespace baton::cli
