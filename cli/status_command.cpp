// baton status: the locks the daemon holds or waits for, and those other
// pods hold, as a table for people or the daemon's JSON for programs.
#include <getopt.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

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

constexpr std::string_view k_name = "status";

int usage() {
  std::string text =
      "Usage:\n"
      " baton status [options]\n"
      "\n"
      "Show the locks held and waited for, by whom, and since when.\n"
      "\n"
      "Options:\n"
      "     --json             print the daemon's report as one JSON line\n"
      "     --connect-timeout <secs>\n"
      "                        keep retrying to connect for this long\n"
      "                        (default: 10)\n"
      "     --socket <path>    the daemon's socket\n"
      "\n";
  text += k_usage_help_version;
  text += "\nFor more details see baton(1).\n";
  return print_help(text);
}

std::string or_dash(std::string text) { return text.empty() ? "-" : text; }

const char* mode_name(LockMode mode) {
  return mode == LockMode::shared ? "shared" : "exclusive";
}

// pod/node/pid; the pid the client reported, marked so, when the daemon
// could not see it (another PID namespace: SO_PEERCRED gives 0 or another).
std::string holder_name(const Holder& holder) {
  std::string name = or_dash(holder.pod) + '/' + or_dash(holder.node) + '/';
  bool reported = false;
  const int pid = shown_pid(holder, reported);
  name += pid > 0 ? std::to_string(pid) : "-";
  if (reported) name += "(reported)";
  return name;
}

// What the client said about itself beyond its pid: host:program, one word
// (the daemon removed control characters; blanks would split the column).
std::string client_name(const Holder& holder) {
  std::string text = holder.reported.host;
  if (!holder.reported.program.empty()) text += ':' + holder.reported.program;
  for (char& c : text)
    if (c == ' ') c = '_';
  return or_dash(text);
}

// Columns padded to their widest cell, two spaces apart.
void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (std::size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    line += '\n';
    std::fputs(line.c_str(), stdout);
  }
}

void print_human(const Status& status) {
  const ServerInfo& server = status.server;
  std::printf("server: %s  pod: %s  node: %s  root: %s\n",
              or_dash(server.server).c_str(), or_dash(server.pod).c_str(),
              or_dash(server.node).c_str(), or_dash(server.root).c_str());
  // What the daemon could not read (a hung mount): the table is partial.
  for (const std::string& line : status.unknown)
    std::printf("unknown: %s\n", printable(line).c_str());
  if (status.locks.empty()) {
    std::fputs(status.unknown.empty() ? "no locks held or waited for\n"
                                      : "no locks known\n",
               stdout);
    return;
  }
  const auto now = std::chrono::system_clock::now();
  std::vector<std::vector<std::string>> rows;
  rows.push_back(
      {"NAME", "MODE", "HOLDER", "TOKEN", "SINCE", "WAITERS", "CLIENT"});
  for (const LockStatus& lock : status.locks) {
    const std::string waiters = std::to_string(lock.waiters.size());
    if (lock.holders.empty()) {
      rows.push_back({lock.name, "-", "-", "-", "-", waiters, "-"});
      continue;
    }
    // One row per holder (several for a shared lock), each with the name,
    // so that grep and awk see whole records.
    for (const Holder& holder : lock.holders) {
      rows.push_back({lock.name, mode_name(holder.mode), holder_name(holder),
                      holder.mode == LockMode::exclusive
                          ? std::to_string(holder.token)
                          : "-",
                      or_dash(format_since(holder.since, now)), waiters,
                      client_name(holder)});
    }
  }
  print_table(rows);
}

}  // namespace

int status_command(int argc, char** argv, const GlobalOptions& global) {
  static const option k_options[] = {
      {"json", no_argument, nullptr, k_option_json},
      {"connect-timeout", required_argument, nullptr, k_option_connect_timeout},
      {"socket", required_argument, nullptr, k_option_socket},
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},
      {nullptr, 0, nullptr, 0},
  };
  bool json = false;
  std::optional<std::string> socket;
  std::chrono::milliseconds connect_timeout = k_default_connect_timeout;
  reset_getopt();
  int c;
  while ((c = getopt_long(argc, argv, "+hV", k_options, nullptr)) != -1) {
    switch (c) {
      case k_option_json:
        json = true;
        break;
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
  Status status = client.status(ec);
  if (ec) {
    print_error("status from batond at %s failed: %s", path.c_str(),
                error_detail(client, ec).c_str());
    return ec == errc::timed_out ? k_exit_unavailable : exit_code_for(ec);
  }
  if (json) {
    std::fputs(status.json.c_str(), stdout);
    std::fputc('\n', stdout);
  } else {
    print_human(status);
  }
  return k_exit_ok;
}

}  // namespace baton::cli
