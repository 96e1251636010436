// A libbaton client for the handoff tests: a real process the tests start,
// watch and kill -9. One program, several roles:
//
//   handoff_worker publish --socket S [--socket S2...] --path P --first K
//                  [--count N] [--blocks B] [--token T]
//                  [--pause-at begun|half|written] [--pause-version K]
//     Publishes versions K, K+1, ... of P (make_version_content, B blocks),
//     round robin over the sockets, N of them (0: until killed). Prints
//     "committed K VERSION" after each commit. With --pause-at it prints
//     "paused K POINT" at that point of version --pause-version (default:
//     the first) and stops itself (SIGSTOP) until continued.
//   handoff_worker enqueue --socket S --queue Q --first K [--count N]
//                  [--size BYTES] [--pause-at half]
//     Enqueues items K, K+1, ... (make_item_content); prints "enqueued K ID".
//   handoff_worker consume --socket S --queue Q --name NAME --log LOG
//                  --stop-file F [--hold-first]
//     Claims items until the queue stays empty for a claim's timeout once F
//     exists. Each item: read whole, verified, acknowledged, and only then
//     "INDEX ID NAME" appended to LOG. --hold-first: read half of the first
//     item, print "holding INDEX ID" and wait to be killed.
//   handoff_worker read --socket S --root R --path P --until K
//                  [--client-only] [--whole-only] [--seconds N]
//     Reads P over and over, as a plain file under R and through
//     Client::open, until it has seen version K both ways (--client-only:
//     through Client::open only), within N seconds (default 60). Every
//     read must be whole and no newer than the next, and no call may fail;
//     prints a summary. --whole-only: a daemon version that does not match
//     the content's is counted in the summary, not a failure.
//   handoff_worker check-file FILE
//     One plain read of FILE, checked (the checker's negative control).
//
// Exit status: 0 done; 2 usage; 3 a check failed (torn, backwards, bad
// item: the line says which); 4 a baton call failed (stderr says which).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "baton/client.hpp"
#include "tests/handoff/content.hpp"

namespace {

using namespace baton;
using baton::test::check_item_content;
using baton::test::check_version_content;
using baton::test::ContentCheck;
using baton::test::read_all;
using baton::test::write_all;
using Clock = std::chrono::steady_clock;

constexpr int k_exit_usage = 2;
constexpr int k_exit_check = 3;
constexpr int k_exit_baton = 4;

struct Args {
  std::string role;
  std::vector<std::string> sockets;
  std::string path, queue, name, log, stop_file, root, pause_at, file;
  std::uint64_t first = 1, count = 1, blocks = 4, until = 0, size = 1000;
  std::optional<std::uint64_t> token, pause_version;
  bool hold_first = false;
  bool client_only = false;    // read: only through Client::open
  bool whole_only = false;  // read: count daemon versions off the content, do not fail
  std::uint64_t seconds = 60;  // read: give up after this long
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "handoff_worker: %s\n", why.c_str());
  std::exit(k_exit_usage);
}

Args parse(int argc, char** argv) {
  Args args;
  if (argc < 2) usage("no role");
  args.role = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--hold-first") {
      args.hold_first = true;
      continue;
    }
    if (flag == "--client-only") {
      args.client_only = true;
      continue;
    }
    if (flag == "--whole-only") {
      args.whole_only = true;
      continue;
    }
    if (i + 1 >= argc) usage(flag + " needs a value");
    std::string value = argv[++i];
    auto number = [&] { return std::strtoull(value.c_str(), nullptr, 10); };
    if (flag == "--socket")
      args.sockets.push_back(value);
    else if (flag == "--path")
      args.path = value;
    else if (flag == "--queue")
      args.queue = value;
    else if (flag == "--name")
      args.name = value;
    else if (flag == "--log")
      args.log = value;
    else if (flag == "--stop-file")
      args.stop_file = value;
    else if (flag == "--root")
      args.root = value;
    else if (flag == "--pause-at")
      args.pause_at = value;
    else if (flag == "--file")
      args.file = value;
    else if (flag == "--first")
      args.first = number();
    else if (flag == "--count")
      args.count = number();
    else if (flag == "--blocks")
      args.blocks = number();
    else if (flag == "--until")
      args.until = number();
    else if (flag == "--size")
      args.size = number();
    else if (flag == "--token")
      args.token = number();
    else if (flag == "--pause-version")
      args.pause_version = number();
    else if (flag == "--seconds")
      args.seconds = number();
    else
      usage("unknown flag " + flag);
  }
  return args;
}

void say(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

[[noreturn]] void fail(int code, const std::string& what,
                       const std::error_code& ec = {}) {
  std::string line = "handoff_worker: " + what;
  if (ec) line += ": " + ec.message() + " (" + std::to_string(ec.value()) + ")";
  std::fprintf(stderr, "%s\n", line.c_str());
  std::exit(code);
}

Client connect(const std::string& socket) {
  ClientOptions options;
  options.socket_path = socket;
  options.connect_timeout = std::chrono::seconds(10);
  options.request_timeout = std::chrono::seconds(30);
  Client client;
  std::error_code ec;
  client.connect(options, ec);
  if (ec) fail(k_exit_baton, "connect " + socket, ec);
  return client;
}

void pause_here(std::uint64_t k, const std::string& point) {
  say("paused " + std::to_string(k) + " " + point);
  ::raise(SIGSTOP);
}

int run_publish(const Args& args) {
  if (args.sockets.empty() || args.path.empty())
    usage("publish: --socket, --path");
  std::vector<Client> clients;
  for (const std::string& socket : args.sockets)
    clients.push_back(connect(socket));
  const std::uint64_t pause_version = args.pause_version.value_or(args.first);
  for (std::uint64_t n = 0; args.count == 0 || n < args.count; ++n) {
    const std::uint64_t k = args.first + n;
    const bool pausing = !args.pause_at.empty() && k == pause_version;
    Client& client = clients[n % clients.size()];
    std::string content = baton::test::make_version_content(k, args.blocks);
    PublishOptions options;
    options.token = args.token;
    std::error_code ec;
    Publisher publisher = client.publish(args.path, options, ec);
    if (ec) fail(k_exit_baton, "publish " + std::to_string(k), ec);
    if (pausing && args.pause_at == "begun") pause_here(k, "begun");
    const std::size_t half = content.size() / 2;
    if (!write_all(publisher.fd(), std::string_view(content).substr(0, half)))
      fail(k_exit_baton, "write " + std::to_string(k),
           {errno, std::system_category()});
    if (pausing && args.pause_at == "half") pause_here(k, "half");
    if (!write_all(publisher.fd(), std::string_view(content).substr(half)))
      fail(k_exit_baton, "write " + std::to_string(k),
           {errno, std::system_category()});
    if (pausing && args.pause_at == "written") pause_here(k, "written");
    std::uint64_t version = publisher.commit(ec);
    if (ec) fail(k_exit_baton, "commit " + std::to_string(k), ec);
    say("committed " + std::to_string(k) + " " + std::to_string(version));
  }
  return 0;
}

int run_enqueue(const Args& args) {
  if (args.sockets.empty() || args.queue.empty())
    usage("enqueue: --socket, --queue");
  Client client = connect(args.sockets.front());
  for (std::uint64_t n = 0; args.count == 0 || n < args.count; ++n) {
    const std::uint64_t k = args.first + n;
    std::string content = baton::test::make_item_content(k, args.size);
    std::error_code ec;
    PendingItem item = client.enqueue(args.queue, ec);
    if (ec) fail(k_exit_baton, "enqueue " + std::to_string(k), ec);
    const std::size_t half = content.size() / 2;
    if (!write_all(item.fd(), std::string_view(content).substr(0, half)))
      fail(k_exit_baton, "write item", {errno, std::system_category()});
    if (args.pause_at == "half") pause_here(k, "half");
    if (!write_all(item.fd(), std::string_view(content).substr(half)))
      fail(k_exit_baton, "write item", {errno, std::system_category()});
    std::string id = item.commit(ec);
    if (ec) fail(k_exit_baton, "commit item " + std::to_string(k), ec);
    say("enqueued " + std::to_string(k) + " " + id);
  }
  return 0;
}

bool file_exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

int run_consume(const Args& args) {
  if (args.sockets.empty() || args.queue.empty() || args.name.empty() ||
      args.log.empty() || args.stop_file.empty())
    usage("consume: --socket, --queue, --name, --log, --stop-file");
  Client client = connect(args.sockets.front());
  int log =
      ::open(args.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0)
    fail(k_exit_baton, "open " + args.log, {errno, std::system_category()});
  const auto claim_timeout = std::chrono::milliseconds(200);
  for (;;) {
    // Read before the claim: once the stop file exists, a claim that times
    // out means the queue was empty for a whole timeout after it appeared.
    const bool stopping = file_exists(args.stop_file);
    std::error_code ec;
    QueueItem item = client.claim(args.queue, claim_timeout, ec);
    if (ec == errc::timed_out) {
      if (stopping) return 0;
      continue;
    }
    if (ec) fail(k_exit_baton, "claim from " + args.queue, ec);
    if (args.hold_first) {
      // Mid-item: half of it read, then nothing more until kill -9.
      struct stat info {};
      ::fstat(item.fd(), &info);
      std::string start(
          std::max<std::size_t>(64, static_cast<std::size_t>(info.st_size) / 2),
          '\0');
      ssize_t n = ::pread(item.fd(), start.data(), start.size(), 0);
      unsigned long long index = 0;
      if (n <= 0 ||
          std::sscanf(start.c_str(), "baton-item i=%llu", &index) != 1)
        fail(k_exit_check, "held item " + item.id() + " has no header");
      say("holding " + std::to_string(index) + " " + item.id());
      for (;;) ::pause();
    }
    std::string data;
    if (!read_all(item.fd(), data))
      fail(k_exit_baton, "read item " + item.id(),
           {errno, std::system_category()});
    ContentCheck check = check_item_content(data);
    if (!check.whole) {
      say("BAD item " + item.id() + ": " + check.error);
      return k_exit_check;
    }
    item.ack(ec);
    if (ec) fail(k_exit_baton, "ack " + item.id(), ec);
    std::string line = std::to_string(check.version) + " " + item.id() + " " +
                       args.name + "\n";
    if (!write_all(log, line))
      fail(k_exit_baton, "write " + args.log, {errno, std::system_category()});
  }
}

int run_read(const Args& args) {
  if (args.sockets.empty() || args.root.empty() || args.path.empty() ||
      args.until == 0)
    usage("read: --socket, --root, --path, --until");
  Client client = connect(args.sockets.front());
  const std::string plain_path = args.root + "/" + args.path;
  std::uint64_t plain_last = 0, client_last = 0, client_last_version = 0;
  std::uint64_t plain_reads = 0, client_reads = 0;
  std::set<std::uint64_t> seen;
  std::uint64_t mismatches = 0;  // daemon versions off the content's
  const auto deadline = Clock::now() + std::chrono::seconds(args.seconds);
  std::string data;
  if (args.client_only) plain_last = args.until;
  while (plain_last < args.until || client_last < args.until) {
    if (Clock::now() > deadline) {
      say("STUCK plain at " + std::to_string(plain_last) + ", client at " +
          std::to_string(client_last) + ", waiting for " +
          std::to_string(args.until));
      return k_exit_check;
    }
    // As a plain file on the shared directory.
    int fd = args.client_only
                 ? -1
                 : ::open(plain_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      bool ok = read_all(fd, data);
      ::close(fd);
      if (!ok)
        fail(k_exit_baton, "read " + plain_path,
             {errno, std::system_category()});
      ContentCheck check = check_version_content(data);
      if (!check.whole) {
        say("TORN plain read " + std::to_string(plain_reads) + ": " +
            check.error);
        return k_exit_check;
      }
      if (check.version < plain_last) {
        say("BACKWARDS plain: version " + std::to_string(check.version) +
            " after " + std::to_string(plain_last));
        return k_exit_check;
      }
      plain_last = check.version;
      seen.insert(check.version);
      ++plain_reads;
    } else if (!args.client_only && errno != ENOENT) {
      fail(k_exit_baton, "open " + plain_path, {errno, std::system_category()});
    }
    // Through the daemon.
    std::error_code ec;
    OpenedFile file = client.open(args.path, ec);
    if (ec == errc::not_found) continue;
    if (ec) fail(k_exit_baton, "Client::open " + args.path, ec);
    if (!read_all(file.fd, data))
      fail(k_exit_baton, "read opened " + args.path,
           {errno, std::system_category()});
    ContentCheck check = check_version_content(data);
    if (!check.whole) {
      say("TORN client read " + std::to_string(client_reads) + ": " +
          check.error);
      return k_exit_check;
    }
    if (check.version < client_last ||
        (!args.whole_only && file.version < client_last_version)) {
      say("BACKWARDS client: content " + std::to_string(check.version) +
          " version " + std::to_string(file.version) + " after content " +
          std::to_string(client_last) + " version " +
          std::to_string(client_last_version));
      return k_exit_check;
    }
    // The version is read around the open, never newer than the content,
    // and at most one behind it (its record is written after the rename).
    const bool off = file.version > check.version || file.version + 1 < check.version;
    if (off) ++mismatches;
    if (off && !args.whole_only) {
      say("MISMATCH client: daemon version " + std::to_string(file.version) +
          " for content version " + std::to_string(check.version));
      return k_exit_check;
    }
    client_last = check.version;
    client_last_version = file.version;
    seen.insert(check.version);
    ++client_reads;
  }
  say("reads plain=" + std::to_string(plain_reads) +
      " client=" + std::to_string(client_reads) +
      " distinct=" + std::to_string(seen.size()) +
      " version_mismatches=" + std::to_string(mismatches));
  return 0;
}

int run_check_file(const Args& args) {
  int fd = ::open(args.file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    fail(k_exit_baton, "open " + args.file, {errno, std::system_category()});
  std::string data;
  bool ok = read_all(fd, data);
  ::close(fd);
  if (!ok)
    fail(k_exit_baton, "read " + args.file, {errno, std::system_category()});
  ContentCheck check = check_version_content(data);
  if (!check.whole) {
    say("TORN " + check.error);
    return k_exit_check;
  }
  say("whole " + std::to_string(check.version));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse(argc, argv);
  if (args.role == "publish") return run_publish(args);
  if (args.role == "enqueue") return run_enqueue(args);
  if (args.role == "consume") return run_consume(args);
  if (args.role == "read") return run_read(args);
  if (args.role == "check-file") return run_check_file(args);
  usage("unknown role " + args.role);
}
