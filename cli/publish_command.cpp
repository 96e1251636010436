// baton publish: makes a local file (or stdin) the new version of a path
// under the daemon's root, atomically: readers in every pod see the old
// content or the new, never a mix. The daemon hands over a hidden staging
// file beside DEST; baton copies SRC into it and commits. Anything short of
// a commit (an error, a signal, baton's death) leaves no trace.
#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
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

constexpr std::string_view k_name = "publish";

struct PublishCommandOptions {
  std::string source;  // a file, or "-" for stdin
  std::string dest;    // relative to the daemon's root
  PublishOptions publish;
  std::chrono::milliseconds connect_timeout = k_default_connect_timeout;
  std::optional<std::string> socket;
};

int usage() {
  std::string text =
      "Usage:\n"
      " baton publish [options] <file>|- <dest>\n"
      "\n"
      "Publish a file (or standard input) to <dest> under the daemon's root,\n"
      "atomically, and print the new version of <dest>.\n"
      "\n"
      "Options:\n"
      "     --no-replace       fail if <dest> exists already\n"
      "     --token <number>   the fencing token of the lock being held: "
      "refuse\n"
      "                        to publish if a newer one already published\n"
      "     --mode <octal>     permissions of the published file (default: "
      "0644)\n"
      "     --connect-timeout <secs>\n"
      "                        keep retrying to reach the daemon for this\n"
      "                        long (default: 10)\n"
      "     --socket <path>    the daemon's socket\n"
      "\n";
  text += k_usage_help_version;
  text += "\nFor more details see baton(1).\n";
  return print_help(text);
}

// Parses ARGV into OPTIONS. Returns -1 to go on, else the exit code.
int parse(int argc, char** argv, PublishCommandOptions& options) {
  static const option k_options[] = {
      {"no-replace", no_argument, nullptr, k_option_no_replace},
      {"token", required_argument, nullptr, k_option_token},
      {"mode", required_argument, nullptr, k_option_mode},
      {"connect-timeout", required_argument, nullptr, k_option_connect_timeout},
      {"socket", required_argument, nullptr, k_option_socket},
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},
      {nullptr, 0, nullptr, 0},
  };
  reset_getopt();
  int c;
  // No '+': options may follow SRC and DEST (`--` before a DEST that starts
  // with '-').
  while ((c = getopt_long(argc, argv, "hV", k_options, nullptr)) != -1) {
    switch (c) {
      case k_option_no_replace:
        options.publish.no_replace = true;
        break;
      case k_option_token: {
        auto parsed = parse_counter(optarg, "invalid token");
        if (!parsed) return usage_error(k_name, "%s", parsed.error.c_str());
        options.publish.token = parsed.value;
        break;
      }
      case k_option_mode: {
        auto parsed = parse_mode(optarg, "invalid mode");
        if (!parsed) return usage_error(k_name, "%s", parsed.error.c_str());
        options.publish.mode = *parsed.value;
        break;
      }
      case k_option_connect_timeout: {
        auto parsed = parse_seconds(optarg, "invalid connect timeout");
        if (!parsed) return usage_error(k_name, "%s", parsed.error.c_str());
        options.connect_timeout = *parsed.value;
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
  if (optind >= argc) return usage_error(k_name, "no file to publish");
  if (optind + 1 >= argc) return usage_error(k_name, "no destination given");
  if (optind + 2 < argc)
    return usage_error(k_name, "unexpected argument '%s'",
                       printable(argv[optind + 2]).c_str());
  options.source = argv[optind];
  options.dest = argv[optind + 1];
  return -1;
}

// The exit code for a publish (begin or commit) that failed, after saying
// why in one line.
int report_error(const Client& client, const PublishCommandOptions& options,
                 const std::error_code& ec, bool committing) {
  const std::string dest = printable(options.dest);
  if (ec == errc::already_exists) {
    print_error("'%s' already exists; not replaced (--no-replace)",
                dest.c_str());
    return k_exit_already_exists;
  }
  const std::string detail = error_detail(client, ec);
  if (ec == errc::stale_token) {
    print_error("stale token: %s; '%s' not published", detail.c_str(),
                dest.c_str());
    return k_exit_stale_token;
  }
  if (committing && ec == errc::connection_lost) {
    // The commit may have happened just before the daemon went away.
    print_error(
        "connection to batond lost while committing '%s': it may or "
        "may not be published",
        dest.c_str());
    return k_exit_unavailable;
  }
  print_error("cannot publish '%s': %s", dest.c_str(), detail.c_str());
  // A commit finds its staging file gone only if something broke.
  if (committing && ec == errc::not_found) return k_exit_internal;
  return exit_code_for(ec);
}

}  // namespace

int publish_command(int argc, char** argv, const GlobalOptions& global) {
  PublishCommandOptions options;
  if (int code = parse(argc, argv, options); code >= 0) return code;

  // SRC before the daemon: a missing file is told even with no daemon up,
  // and no staging file (nor DEST's directories) gets created for nothing.
  const bool from_stdin = options.source == "-";
  // Built with append, not "'" + ...: g++ 12 at -O3 warns a false
  // -Wrestrict on that operator+ chain.
  std::string source_name = "standard input";
  if (!from_stdin)
    source_name.assign("'").append(printable(options.source)).append("'");
  int source_fd = STDIN_FILENO;
  if (!from_stdin) {
    source_fd = ::open(options.source.c_str(), O_RDONLY | O_NOCTTY | O_CLOEXEC);
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
  if (int code = connect_or_report(client, socket_path(global, options.socket),
                                   options.connect_timeout))
    return code;
  std::error_code ec;
  Publisher publisher = client.publish(options.dest, options.publish, ec);
  if (ec) return report_error(client, options, ec, false);

  CopyResult copied = copy_fd(source_fd, publisher.fd());
  if (!copied) {
    publisher.abort();
    const std::string dest = printable(options.dest);
    if (copied.read_errno != 0) {
      print_error("cannot read %s: %s; '%s' not published", source_name.c_str(),
                  std::strerror(copied.read_errno), dest.c_str());
      return k_exit_no_input;
    }
    print_error("cannot write the new version of '%s': %s; not published",
                dest.c_str(), std::strerror(copied.write_errno));
    return k_exit_internal;
  }

  std::uint64_t version = publisher.commit(ec);
  if (ec) return report_error(client, options, ec, true);
  std::printf("%" PRIu64 "\n", version);
  return k_exit_ok;
}

}  // namespace baton::cli
