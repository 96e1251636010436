#include "daemon/options.hpp"

#include <getopt.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "baton/version.hpp"

namespace baton::daemon {
namespace {

enum OptionId {
  k_root = 'r',
  k_socket = 's',
  k_show_help = 'h',
  k_show_version = 'V',
  k_socket_mode = 256,
  k_log_level,
  k_log_format,
  k_pod_name,
  k_node_name,
  k_max_connections,
  k_max_message_bytes,
  k_max_locks_per_session,
  k_max_send_queue_bytes,
  k_max_local_handovers,
  k_lock_check_interval,
  k_shutdown_grace,
  k_poll_interval,
  k_exit_when_idle,
  k_allow_local_locks,
  k_allow_uids,
  k_idle_timeout,
  k_max_connections_per_process,
  k_max_buffered_bytes,
};

struct OptionSpec {
  option getopt;
  const char* env;  // environment twin, or nullptr
};

const OptionSpec k_options[] = {
    {{"root", required_argument, nullptr, k_root}, "BATON_ROOT"},
    {{"socket", required_argument, nullptr, k_socket}, "BATON_SOCKET"},
    {{"socket-mode", required_argument, nullptr, k_socket_mode}, "BATON_SOCKET_MODE"},
    {{"log-level", required_argument, nullptr, k_log_level}, "BATON_LOG_LEVEL"},
    {{"log-format", required_argument, nullptr, k_log_format}, "BATON_LOG_FORMAT"},
    {{"pod-name", required_argument, nullptr, k_pod_name}, "BATON_POD_NAME"},
    {{"node-name", required_argument, nullptr, k_node_name}, "BATON_NODE_NAME"},
    {{"max-connections", required_argument, nullptr, k_max_connections},
     "BATON_MAX_CONNECTIONS"},
    {{"max-message-bytes", required_argument, nullptr, k_max_message_bytes},
     "BATON_MAX_MESSAGE_BYTES"},
    {{"max-locks-per-session", required_argument, nullptr, k_max_locks_per_session},
     "BATON_MAX_LOCKS_PER_SESSION"},
    {{"max-send-queue-bytes", required_argument, nullptr, k_max_send_queue_bytes},
     "BATON_MAX_SEND_QUEUE_BYTES"},
    {{"max-local-handovers", required_argument, nullptr, k_max_local_handovers},
     "BATON_MAX_LOCAL_HANDOVERS"},
    {{"lock-check-interval", required_argument, nullptr, k_lock_check_interval},
     "BATON_LOCK_CHECK_INTERVAL"},
    {{"shutdown-grace", required_argument, nullptr, k_shutdown_grace},
     "BATON_SHUTDOWN_GRACE"},
    {{"poll-interval", required_argument, nullptr, k_poll_interval}, "BATON_POLL_INTERVAL"},
    {{"exit-when-idle", no_argument, nullptr, k_exit_when_idle}, "BATON_EXIT_WHEN_IDLE"},
    {{"allow-local-locks", no_argument, nullptr, k_allow_local_locks},
     "BATON_ALLOW_LOCAL_LOCKS"},
    {{"allow-uids", required_argument, nullptr, k_allow_uids}, "BATON_ALLOW_UIDS"},
    {{"idle-timeout", required_argument, nullptr, k_idle_timeout}, "BATON_IDLE_TIMEOUT"},
    {{"max-connections-per-process", required_argument, nullptr, k_max_connections_per_process},
     "BATON_MAX_CONNECTIONS_PER_PROCESS"},
    {{"max-buffered-bytes", required_argument, nullptr, k_max_buffered_bytes},
     "BATON_MAX_BUFFERED_BYTES"},
    {{"help", no_argument, nullptr, k_show_help}, nullptr},
    {{"version", no_argument, nullptr, k_show_version}, nullptr},
};

bool parse_size(const char* text, std::size_t min, std::size_t max, std::size_t& out) {
  if (!*text || *text == '-') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long value = std::strtoull(text, &end, 10);
  if (errno || *end || value < min || value > max) return false;
  out = value;
  return true;
}

bool parse_seconds(const char* text, std::chrono::milliseconds& out) {
  char* end = nullptr;
  errno = 0;
  double value = std::strtod(text, &end);
  if (errno || end == text || *end || !std::isfinite(value) || value < 0 || value > 1e6)
    return false;
  out = std::chrono::milliseconds(static_cast<long long>(std::llround(value * 1000)));
  return true;
}

bool parse_flag(const char* text) {
  return !(std::strcmp(text, "0") == 0 || std::strcmp(text, "false") == 0 ||
           std::strcmp(text, "no") == 0 || *text == '\0');
}

bool parse_uids(const char* text, std::vector<unsigned>& out) {
  out.clear();
  std::string list(text);
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::size_t uid = 0;
    if (!parse_size(list.substr(start, end - start).c_str(), 0, 0xfffffffe, uid)) return false;
    out.push_back(static_cast<unsigned>(uid));
    start = end + 1;
  }
  return true;
}

// Applies one option's value; on failure sets ERROR naming flag and value.
bool apply(int id, const char* value, const char* flag, DaemonOptions& o,
           std::string& error) {
  auto bad = [&](const char* what) {
    error = std::string("invalid ") + flag + " '" + value + "': " + what;
    return false;
  };
  std::size_t size = 0;
  switch (id) {
    case k_root: o.root = value; break;
    case k_socket: o.socket_path = value; break;
    case k_socket_mode: {
      char* end = nullptr;
      unsigned long mode = std::strtoul(value, &end, 8);
      if (!*value || *end || mode > 0777) return bad("expected an octal mode like 0660");
      o.socket_mode = static_cast<unsigned>(mode);
      break;
    }
    case k_log_level: {
      static const char* levels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
      bool known = false;
      for (const char* level : levels) known = known || std::strcmp(level, value) == 0;
      if (!known) return bad("expected trace, debug, info, warn, error, critical or off");
      o.log_level = value;
      break;
    }
    case k_log_format:
      if (std::strcmp(value, "text") != 0 && std::strcmp(value, "json") != 0)
        return bad("expected text or json");
      o.log_format = value;
      break;
    case k_pod_name: o.pod_name = value; break;
    case k_node_name: o.node_name = value; break;
    case k_max_connections:
      if (!parse_size(value, 1, 1 << 20, o.max_connections)) return bad("expected 1 to 1048576");
      break;
    case k_max_message_bytes:
      if (!parse_size(value, 1024, 64 << 20, o.max_message_bytes))
        return bad("expected 1024 to 67108864");
      break;
    case k_max_locks_per_session:
      if (!parse_size(value, 1, 1 << 16, o.max_locks_per_session)) return bad("expected 1 to 65536");
      break;
    case k_max_send_queue_bytes:
      if (!parse_size(value, 4096, 1 << 30, o.max_send_queue_bytes))
        return bad("expected 4096 to 1073741824");
      break;
    case k_max_local_handovers:
      if (!parse_size(value, 0, 1 << 20, size)) return bad("expected 0 to 1048576");
      o.max_local_handovers = static_cast<unsigned>(size);
      break;
    case k_lock_check_interval:
      if (!parse_seconds(value, o.lock_check_interval) || o.lock_check_interval.count() < 10)
        return bad("expected seconds, at least 0.01");
      break;
    case k_shutdown_grace:
      if (!parse_seconds(value, o.shutdown_grace)) return bad("expected seconds");
      break;
    case k_poll_interval:
      if (!parse_seconds(value, o.poll_interval) || o.poll_interval.count() < 10)
        return bad("expected seconds, at least 0.01");
      break;
    case k_exit_when_idle: o.exit_when_idle = parse_flag(value); break;
    case k_allow_local_locks: o.allow_local_locks = parse_flag(value); break;
    case k_allow_uids:
      if (!parse_uids(value, o.allow_uids)) return bad("expected a comma-separated list of uids");
      break;
    case k_idle_timeout:
      if (!parse_seconds(value, o.idle_timeout) || (o.idle_timeout.count() > 0 &&
                                                    o.idle_timeout.count() < 10))
        return bad("expected seconds, 0 (off) or at least 0.01");
      break;
    case k_max_connections_per_process:
      if (!parse_size(value, 1, 1 << 20, o.max_connections_per_process))
        return bad("expected 1 to 1048576");
      break;
    case k_max_buffered_bytes:
      if (!parse_size(value, 1 << 20, std::size_t{1} << 40, o.max_buffered_bytes))
        return bad("expected 1048576 to 1099511627776");
      break;
    default: return bad("unknown option");
  }
  return true;
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

}  // namespace

void print_usage() {
  std::fputs(
      "Usage:\n"
      " batond --root DIR [options]\n"
      "\n"
      "The baton sidecar: cross-pod locks on a shared volume, served on a Unix socket.\n"
      "\n"
      "Options:\n"
      " -r, --root DIR               the shared volume's directory (BATON_ROOT)\n"
      " -s, --socket PATH            socket to listen on (BATON_SOCKET)\n"
      "                                default /run/baton/baton.sock\n"
      "     --socket-mode OCTAL      socket permissions, default 0660\n"
      "     --log-level LEVEL        trace, debug, info (default), warn, error, off\n"
      "     --log-format FORMAT      text (default) or json\n"
      "     --pod-name NAME          default $POD_NAME, else the host name\n"
      "     --node-name NAME         default $NODE_NAME, else \"unknown\"\n"
      "     --max-connections N      default 1024\n"
      "     --max-connections-per-process N  connections one client process may\n"
      "                                have (peers in other pid namespaces are not\n"
      "                                counted), default 512\n"
      "     --idle-timeout SECONDS   close a connection that sends no complete request\n"
      "                                this long after connecting, or leaves a line\n"
      "                                unfinished this long, default 10 (0: never)\n"
      "     --max-buffered-bytes N   unread request bytes and unsent reply bytes of all\n"
      "                                connections together, default 64 MiB (at least\n"
      "                                4 times --max-message-bytes)\n"
      "     --max-message-bytes N    default 65536\n"
      "     --max-locks-per-session N  default 64\n"
      "     --max-send-queue-bytes N  unread replies before a client is dropped,\n"
      "                                default 1048576\n"
      "     --max-local-handovers N  local hand-overs while another pod waits, default 8\n"
      "     --lock-check-interval SECONDS  how often held locks are re-verified,\n"
      "                                default 2\n"
      "     --shutdown-grace SECONDS  on SIGTERM, time holders get to finish, default 1\n"
      "     --poll-interval SECONDS  how often waits re-check files other nodes\n"
      "                                publish, default 0.5\n"
      "     --exit-when-idle         exit once the last client has gone\n"
      "     --allow-local-locks      run even where locks stay on one node\n"
      "     --allow-uids LIST        only these peer uids may connect\n"
      "\n"
      " -h, --help                   display this help\n"
      " -V, --version                display version\n"
      "\n"
      "Every option has an environment twin: BATON_ and the option in capitals\n"
      "with '_' for '-', e.g. BATON_LOG_FORMAT=json. Options win.\n"
      "For more details see batond(8) and docs/operations.md.\n",
      stdout);
}

ParseOutcome parse_options(int argc, char** argv, DaemonOptions& options,
                           std::string& error) {
  // Environment first, so that flags override it.
  for (const OptionSpec& spec : k_options) {
    if (!spec.env) continue;
    const char* value = std::getenv(spec.env);
    if (!value) continue;
    if (!apply(spec.getopt.val, value, spec.env, options, error)) return ParseOutcome::usage_error;
  }
  std::vector<option> longopts;
  for (const OptionSpec& spec : k_options) longopts.push_back(spec.getopt);
  longopts.push_back({nullptr, 0, nullptr, 0});

  optind = 1;
  opterr = 0;
  int id;
  while ((id = getopt_long(argc, argv, ":r:s:hV", longopts.data(), nullptr)) != -1) {
    if (id == k_show_help) {
      print_usage();
      return ParseOutcome::exit_ok;
    }
    if (id == k_show_version) {
      std::printf("batond %s (protocol %d)\n", k_version, k_protocol_version);
      return ParseOutcome::exit_ok;
    }
    if (id == '?' || id == ':') {
      const char* arg = optopt ? nullptr : argv[optind - 1];
      std::string shown = arg ? std::string(arg) : std::string("-") + static_cast<char>(optopt);
      error = std::string(id == ':' ? "option requires an argument: " : "unknown option: ") + shown;
      return ParseOutcome::usage_error;
    }
    std::string flag = "--";
    for (const OptionSpec& spec : k_options)
      if (spec.getopt.val == id) flag += spec.getopt.name;
    const char* value = optarg ? optarg : "1";
    if (!apply(id, value, flag.c_str(), options, error)) return ParseOutcome::usage_error;
  }
  if (optind < argc) {
    error = std::string("unexpected argument: ") + argv[optind];
    return ParseOutcome::usage_error;
  }
  if (options.root.empty()) {
    error = "--root (or BATON_ROOT) is required";
    return ParseOutcome::usage_error;
  }
  if (options.pod_name.empty()) {
    const char* pod = std::getenv("POD_NAME");
    options.pod_name = pod && *pod ? pod : host_name();
  }
  if (options.node_name.empty()) {
    const char* node = std::getenv("NODE_NAME");
    options.node_name = node && *node ? node : "unknown";
  }
  return ParseOutcome::run;
}

}  // namespace baton::daemon
