// lock_roundtrip_bench: what a lock + unlock through batond costs next to
// its floors, for each CPU placement, in one run.
//
//   (a) a bare Unix-socket echo round trip of 32 bytes against a blocking
//       echo server in a forked process (the least any daemon can cost);
//   (b) a raw OFD lock + unlock pair on an open descriptor (the kernel
//       lock batond takes for us);
//   (d) libbaton ping (diagnostic: libbaton + protocol + Asio, no lock);
//   (c) baton::Client::lock then Lock::release against a real batond. The
//       release does not wait for its reply; the next lock's reply comes
//       after it, so one iteration is one round trip carrying both.
//
// Placements: same vCPU (client and server on cpu 0), different vCPUs
// (client cpu 0, server cpu 1), unpinned. Each measurement is repeated and
// the run with the median p50 is reported whole. See bench/README.md.
#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cinttypes>
#include <ctime>
#include <functional>
#include <iterator>
#include <map>
#include <utility>

#include "baton/client.hpp"
#include "bench/bench_support.hpp"

#ifndef BATON_BENCH_BATOND
#define BATON_BENCH_BATOND "batond"
#endif

namespace baton::bench {
namespace {

constexpr std::size_t k_echo_bytes = 32;

// Figures quoted from /work/shared/anchors/FIGURES.md (no Redis here):
// Redis `SET k v NX PX 30000` + `DEL`, 1 client, unix socket.
struct Quoted {
  double p50_us;
  double p99_us;
  double rate;
};
const std::map<std::string, Quoted> k_redis = {
    {"same", {43, 108, 22000}},
    {"split", {209, 1700, 3800}},
};
// The anchors' own echo floor, to check this run against the machine's.
const std::map<std::string, Quoted> k_anchor_echo = {
    {"same", {14.6, 25, 65000}},
    {"split", {77.5, 1400, 9000}},
};

struct Measured {
  Summary summary;
  double server_switches = -1;  // context switches per op, all server threads
  double client_switches = 0;   // of the measuring thread
  double server_cpu_us = -1;    // CPU time per op, all server threads
  double server_wait_us = -1;   // run-queue delay per op, all server threads
  double client_cpu_us = 0;     // CPU time per op of the measuring thread
  int client_cpu = -1;          // where each side last ran
  int server_cpu = -1;
};

std::int64_t thread_cpu_ns() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<std::int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

long thread_switches() {
  rusage usage{};
  ::getrusage(RUSAGE_THREAD, &usage);
  return usage.ru_nvcsw + usage.ru_nivcsw;
}

int last_cpu(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  // Field 39 of stat; we start at field 3 (state).
  for (int i = 3; i <= 39 && fields >> field; ++i)
    if (i == 39) return std::atoi(field.c_str());
  return -1;
}

// Runs OP WARMUP times, then ITERATIONS times timing each call.
Measured measure(long warmup, long iterations, pid_t server,
                 const std::function<void()>& op) {
  for (long i = 0; i < warmup; ++i) op();
  std::vector<std::int64_t> samples(static_cast<std::size_t>(iterations));
  const long client_before = thread_switches();
  const std::uint64_t server_before = server > 0 ? context_switches(server) : 0;
  const SchedTimes server_times =
      server > 0 ? sched_times(server) : SchedTimes{};
  const std::int64_t client_cpu_before = thread_cpu_ns();
  const auto start = Clock::now();
  auto previous = start;
  for (long i = 0; i < iterations; ++i) {
    op();
    auto now = Clock::now();
    samples[static_cast<std::size_t>(i)] = nanos(now - previous);
    previous = now;
  }
  const auto wall = Clock::now() - start;
  const std::int64_t client_cpu_after = thread_cpu_ns();
  Measured m;
  const auto per_op_us = [iterations](double ns) {
    return ns / 1e3 / static_cast<double>(iterations);
  };
  m.client_cpu_us =
      per_op_us(static_cast<double>(client_cpu_after - client_cpu_before));
  m.summary = summarize(std::move(samples), wall);
  m.client_switches = static_cast<double>(thread_switches() - client_before) /
                      static_cast<double>(iterations);
  if (server > 0) {
    m.server_switches =
        static_cast<double>(context_switches(server) - server_before) /
        static_cast<double>(iterations);
    m.server_cpu = last_cpu(server);
    const SchedTimes after = sched_times(server);
    m.server_cpu_us =
        per_op_us(static_cast<double>(after.cpu_ns - server_times.cpu_ns));
    m.server_wait_us =
        per_op_us(static_cast<double>(after.wait_ns - server_times.wait_ns));
  }
  m.client_cpu = ::sched_getcpu();
  return m;
}

// A blocking echo server in a forked process, pinned like batond would be.
class EchoServer {
 public:
  EchoServer(const std::string& path, const std::vector<int>& cpus) {
    int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0) die_errno("socket");
    sockaddr_un address = make_address(path);
    if (::bind(listener, reinterpret_cast<sockaddr*>(&address),
               sizeof address) != 0)
      die_errno("bind " + path);
    if (::listen(listener, 4) != 0) die_errno("listen");
    m_pid = ::fork();
    if (m_pid < 0) die_errno("fork");
    if (m_pid == 0) {
      pin_to(cpus);
      int peer = ::accept(listener, nullptr, nullptr);
      if (peer < 0) ::_exit(1);
      char buffer[k_echo_bytes];
      for (;;) {
        if (!transfer(peer, buffer, false)) ::_exit(0);
        if (!transfer(peer, buffer, true)) ::_exit(0);
      }
    }
    ::close(listener);
    m_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (m_fd < 0) die_errno("socket");
    if (::connect(m_fd, reinterpret_cast<sockaddr*>(&address),
                  sizeof address) != 0)
      die_errno("connect " + path);
  }
  ~EchoServer() {
    ::close(m_fd);
    int status = 0;
    ::waitpid(m_pid, &status, 0);
  }
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;

  pid_t pid() const { return m_pid; }

  void round_trip() {
    char buffer[k_echo_bytes] = "baton bench echo payload 32 B..";
    if (!transfer(m_fd, buffer, true) || !transfer(m_fd, buffer, false))
      die("echo server went away");
  }

 private:
  static sockaddr_un make_address(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.size() >= sizeof address.sun_path)
      die("socket path too long: " + path);
    std::memcpy(address.sun_path, path.data(), path.size());
    return address;
  }

  // Moves exactly k_echo_bytes; false on EOF or error.
  static bool transfer(int fd, char* buffer, bool out) {
    std::size_t done = 0;
    while (done < k_echo_bytes) {
      ssize_t n = out ? ::write(fd, buffer + done, k_echo_bytes - done)
                      : ::read(fd, buffer + done, k_echo_bytes - done);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        return false;
      }
      done += static_cast<std::size_t>(n);
    }
    return true;
  }

  pid_t m_pid = -1;
  int m_fd = -1;
};

// Speaks batond's protocol directly on a socket, without libbaton: to tell
// the cost of libbaton from the cost of the message pattern.
class RawClient {
 public:
  explicit RawClient(const std::string& path) {
    m_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (m_fd < 0) die_errno("socket");
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.data(),
                std::min(path.size(), sizeof address.sun_path - 1));
    if (::connect(m_fd, reinterpret_cast<sockaddr*>(&address),
                  sizeof address) != 0)
      die_errno("connect " + path);
    if (read_line().find("\"baton\":1") == std::string::npos)
      die("raw client: no greeting");
  }
  ~RawClient() { ::close(m_fd); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  // Unlocks NAME if held (in the same write as the next lock when
  // COALESCE, else in a write of its own, as libbaton does), then locks it
  // and waits for the grant.
  void cycle(const std::string& name, bool coalesce) {
    const std::string quoted = "\"" + name + "\"";
    std::string unlock;
    if (m_holding)
      unlock = "{\"id\":" + std::to_string(m_next_id++) +
               ",\"op\":\"unlock\",\"name\":" + quoted + "}\n";
    const std::uint64_t id = m_next_id++;
    std::string lock = "{\"id\":" + std::to_string(id) +
                       ",\"op\":\"lock\",\"name\":" + quoted + "}\n";
    if (coalesce) {
      send_all(unlock + lock);
    } else {
      if (!unlock.empty()) send_all(unlock);
      send_all(lock);
    }
    const std::string prefix = "{\"id\":" + std::to_string(id) + ",";
    for (;;) {
      std::string line = read_line();
      if (line.rfind(prefix, 0) != 0) continue;  // the unlock's reply
      if (line.find("\"ok\":true") == std::string::npos)
        die("raw lock failed: " + line);
      break;
    }
    m_holding = true;
  }

 private:
  void send_all(const std::string& bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n =
          ::send(m_fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        die_errno("raw send");
      }
      done += static_cast<std::size_t>(n);
    }
  }

  std::string read_line() {
    for (;;) {
      auto end = m_buffer.find('\n');
      if (end != std::string::npos) {
        std::string line = m_buffer.substr(0, end);
        m_buffer.erase(0, end + 1);
        return line;
      }
      char chunk[4096];
      ssize_t n = ::recv(m_fd, chunk, sizeof chunk, 0);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        die("raw client: batond closed the connection");
      }
      m_buffer.append(chunk, static_cast<std::size_t>(n));
    }
  }

  int m_fd = -1;
  std::string m_buffer;
  std::uint64_t m_next_id = 1;
  bool m_holding = false;
};

struct Row {
  std::string key;
  std::string label;
  std::vector<Measured> runs;
  const Measured& median() const {
    std::vector<std::size_t> order(runs.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [this](std::size_t x, std::size_t y) {
      return runs[x].summary.p50_us < runs[y].summary.p50_us;
    });
    return runs[order[order.size() / 2]];
  }
};

struct PlacementResult {
  Placement placement;
  std::vector<Row> rows;  // echo, ofd, ping, lock
  const Row& row(const std::string& key) const {
    for (const auto& r : rows)
      if (r.key == key) return r;
    die("no row " + key);
  }
};

void print_placement(const PlacementResult& result) {
  std::printf("\n== %s ==\n", result.placement.label.c_str());
  std::printf("%-44s %8s %8s %8s %8s %10s  %-20s %6s %7s %7s %7s %5s\n", "what",
              "p50", "p99", "max", "mean", "rate", "p50 of each run", "srv cs",
              "srv cpu", "srv rq", "cli cpu", "cpus");
  for (const Row& row : result.rows) {
    const Measured& m = row.median();
    std::string each;
    for (const auto& r : row.runs) {
      if (!each.empty()) each += ' ';
      each += format_us(r.summary.p50_us);
    }
    char server_cs[16] = "-";
    char server_cpu[16] = "-";
    char server_wait[16] = "-";
    if (m.server_switches >= 0) {
      std::snprintf(server_cs, sizeof server_cs, "%.2f", m.server_switches);
      std::snprintf(server_cpu, sizeof server_cpu, "%.1f", m.server_cpu_us);
      std::snprintf(server_wait, sizeof server_wait, "%.1f", m.server_wait_us);
    }
    char cpus[16];
    std::snprintf(
        cpus, sizeof cpus, "%d/%s", m.client_cpu,
        m.server_cpu >= 0 ? std::to_string(m.server_cpu).c_str() : "-");
    std::printf("%-44s %8s %8s %8s %8s %10s  %-20s %6s %7s %7s %7.1f %5s\n",
                row.label.c_str(), format_us(m.summary.p50_us).c_str(),
                format_us(m.summary.p99_us).c_str(),
                format_us(m.summary.max_us).c_str(),
                format_us(m.summary.mean_us).c_str(),
                format_rate(m.summary.rate).c_str(), each.c_str(), server_cs,
                server_cpu, server_wait, m.client_cpu_us, cpus);
  }
  const Summary& a = result.row("echo").median().summary;
  const Summary& b = result.row("ofd").median().summary;
  const Summary& c = result.row("lock").median().summary;
  const Summary& d = result.row("ping").median().summary;
  std::printf(
      "ratio (c)/(a): p50 %.2fx  mean %.2fx  p99 %.2fx  rate %.2fx  -> target "
      "<= 1.5x: %s\n",
      c.p50_us / a.p50_us, c.mean_us / a.mean_us, c.p99_us / a.p99_us,
      a.rate / c.rate, c.p50_us <= 1.5 * a.p50_us ? "met" : "MISSED");
  std::printf(
      "ratio (d)/(a): p50 %.2fx (ping: libbaton + protocol + Asio, no lock)\n",
      d.p50_us / a.p50_us);
  std::printf(
      "(c) - (a) - (b) at p50: %.1f us spent in batond/libbaton beyond socket "
      "+ kernel lock\n",
      c.p50_us - a.p50_us - b.p50_us);
  std::printf(
      "(c) - (d) at p50: %.1f us for the lock table (lock + unlock, file "
      "records) over a ping\n",
      c.p50_us - d.p50_us);
  const Summary& e = result.row("raw2").median().summary;
  const Summary& f = result.row("raw1").median().summary;
  std::printf(
      "(c)/(e) p50 %.2fx: libbaton's own cost over the same messages sent "
      "raw\n",
      c.p50_us / e.p50_us);
  std::printf(
      "(e)/(f) p50 %.2fx: unlock in a write of its own vs in the same write as "
      "the next "
      "lock; (f)/(a) p50 %.2fx\n",
      e.p50_us / f.p50_us, f.p50_us / a.p50_us);
  auto anchor = k_anchor_echo.find(result.placement.key);
  if (anchor != k_anchor_echo.end())
    std::printf(
        "floor check: this run's echo p50 %.1f us vs FIGURES.md %.1f us "
        "(%.2fx)\n",
        a.p50_us, anchor->second.p50_us, a.p50_us / anchor->second.p50_us);
  auto redis = k_redis.find(result.placement.key);
  if (redis != k_redis.end())
    std::printf(
        "baton/Redis (quoted SET NX PX + DEL, %s): p50 %.2fx  p99 %.2fx  rate "
        "%.2fx "
        "(<1 is better than Redis)\n",
        result.placement.key.c_str(), c.p50_us / redis->second.p50_us,
        c.p99_us / redis->second.p99_us, redis->second.rate / c.rate);
  else
    std::printf("baton/Redis: no quoted Redis figure for unpinned runs\n");
}

void print_markdown(const std::vector<PlacementResult>& results) {
  std::printf(
      "\nMarkdown summary (median run of each; ratios within the same "
      "run):\n\n");
  std::printf(
      "| placement | echo (a) p50 / p99 | OFD pair (b) p50 | ping (d) p50 | "
      "baton lock+release (c) "
      "p50 / p99 / rate | (c)/(a) p50 | (c)/(a) mean | baton/Redis p50 |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : results) {
    const Summary& a = r.row("echo").median().summary;
    const Summary& b = r.row("ofd").median().summary;
    const Summary& c = r.row("lock").median().summary;
    const Summary& d = r.row("ping").median().summary;
    auto redis = k_redis.find(r.placement.key);
    char vs_redis[32] = "n/a";
    if (redis != k_redis.end())
      std::snprintf(vs_redis, sizeof vs_redis, "%.2fx",
                    c.p50_us / redis->second.p50_us);
    std::printf(
        "| %s | %s / %s | %s | %s | %s / %s / %s | %.2fx | %.2fx | %s |\n",
        r.placement.key.c_str(), format_us(a.p50_us).c_str(),
        format_us(a.p99_us).c_str(), format_us(b.p50_us).c_str(),
        format_us(d.p50_us).c_str(), format_us(c.p50_us).c_str(),
        format_us(c.p99_us).c_str(), format_rate(c.rate).c_str(),
        c.p50_us / a.p50_us, c.mean_us / a.mean_us, vs_redis);
  }
}

void print_header(const std::string& batond, long warmup, long iterations,
                  long repeats) {
  utsname name{};
  ::uname(&name);
  std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M %Z", std::localtime(&now));
  std::ifstream source(
      "/sys/devices/system/clocksource/clocksource0/current_clocksource");
  std::string clocksource;
  std::getline(source, clocksource);
  // The cost of the timing itself, for the smallest figures.
  const int k_probes = 100000;
  auto start = Clock::now();
  for (int i = 0; i < k_probes; ++i) (void)Clock::now();
  double timer_ns = static_cast<double>(nanos(Clock::now() - start)) / k_probes;
  std::printf(
      "lock_roundtrip_bench  %s  %s %s, %ld cpus, clocksource %s (now() costs "
      "%.0f ns)\n",
      date, name.sysname, name.release, ::sysconf(_SC_NPROCESSORS_ONLN),
      clocksource.c_str(), timer_ns);
  std::printf("batond: %s (--log-level warn --allow-local-locks)\n",
              batond.c_str());
  std::printf(
      "%ld warm-up + %ld timed iterations per measurement, %ld runs each, the "
      "run with "
      "the median p50 shown\n",
      warmup, iterations, repeats);
  std::printf(
      "srv cs / cli cs: context switches per operation (server: all threads); "
      "cpus: "
      "where client/server last ran\n");
}

}  // namespace
}  // namespace baton::bench

int main(int argc, char** argv) {
  using namespace baton::bench;
  if (has_flag(argc, argv, "--help") || has_flag(argc, argv, "-h")) {
    std::printf(
        "Usage: lock_roundtrip_bench [--batond PATH] [--iterations N] "
        "[--warmup N]\n"
        "                            [--repeats N] [--placements "
        "same,split,unpinned]\n"
        "                            [--only echo,ofd,lock,ping,raw2,raw1]\n"
        "Measures echo round trip, OFD pair, libbaton ping and lock+release "
        "per placement.\n");
    return 0;
  }
  const std::string batond = option(argc, argv, "--batond", BATON_BENCH_BATOND);
  const long iterations = number_option(argc, argv, "--iterations", 20000);
  const long warmup = number_option(argc, argv, "--warmup", 2000);
  const long repeats = number_option(argc, argv, "--repeats", 3);
  const auto placements =
      select_placements(option(argc, argv, "--placements", "all"));
  // --only echo,ofd,lock,ping,raw2,raw1: measure just those (for profiling).
  const std::string only = option(argc, argv, "--only", "");
  if (::access(batond.c_str(), X_OK) != 0)
    die("batond not executable: " + batond);

  print_header(batond, warmup, iterations, repeats);
  std::fflush(stdout);

  std::vector<PlacementResult> results;
  for (const Placement& placement : placements) {
    ScratchDir scratch("baton-bench");
    pin_to(placement.client_cpus);

    // (b) needs a file on the same filesystem as the daemon's root.
    std::string ofd_path = scratch.path() + "/ofd.lock";
    int ofd = ::open(ofd_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (ofd < 0) die_errno("open " + ofd_path);
    auto ofd_pair = [ofd] {
      struct flock lock {};
      lock.l_type = F_WRLCK;
      lock.l_whence = SEEK_SET;
      lock.l_len = 1;
      if (::fcntl(ofd, F_OFD_SETLK, &lock) != 0) die_errno("F_OFD_SETLK");
      lock.l_type = F_UNLCK;
      if (::fcntl(ofd, F_OFD_SETLK, &lock) != 0)
        die_errno("F_OFD_SETLK unlock");
    };

    EchoServer echo(scratch.path() + "/echo.sock", placement.server_cpus);
    Daemon daemon(batond, scratch.path() + "/root",
                  scratch.path() + "/baton.sock", placement.server_cpus,
                  scratch.path() + "/batond.log");
    daemon.wait_ready();
    baton::Client client;
    baton::ClientOptions options;
    options.socket_path = daemon.socket();
    std::error_code ec;
    client.connect(options, ec);
    if (ec)
      die("connect to batond: " + ec.message() +
          "; its log: " + daemon.read_log());

    auto ping = [&client] {
      std::error_code error;
      client.ping(error);
      if (error) die("ping: " + error.message());
    };
    auto lock_release = [&client] {
      std::error_code error;
      baton::Lock lock = client.lock("bench/roundtrip", {}, error);
      if (error)
        die("lock: " + error.message() + " (" + client.last_error_message() +
            ")");
      lock.release();
    };

    RawClient raw_two_writes(daemon.socket());
    RawClient raw_one_write(daemon.socket());

    PlacementResult result{
        placement,
        {{"echo", "(a) echo 32 B round trip (floor)", {}},
         {"ofd", "(b) OFD lock+unlock pair (floor)", {}},
         {"lock", "(c) libbaton lock + release", {}},
         {"ping", "(d) libbaton ping", {}},
         {"raw2", "(e) raw protocol: unlock; lock (2 writes)", {}},
         {"raw1", "(f) raw protocol: unlock+lock (1 write)", {}}}};
    // Interleaved, so that drift in the machine touches every row alike.
    const std::vector<std::pair<pid_t, std::function<void()>>> ops = {
        {echo.pid(), [&echo] { echo.round_trip(); }},
        {-1, ofd_pair},
        {daemon.pid(), lock_release},
        {daemon.pid(), ping},
        {daemon.pid(),
         [&] { raw_two_writes.cycle("bench/raw-two-writes", false); }},
        {daemon.pid(),
         [&] { raw_one_write.cycle("bench/raw-one-write", true); }},
    };
    for (long run = 0; run < repeats; ++run)
      for (std::size_t i = 0; i < ops.size(); ++i)
        if (only.empty() ||
            ("," + only + ",").find("," + result.rows[i].key + ",") !=
                std::string::npos)
          result.rows[i].runs.push_back(
              measure(warmup, iterations, ops[i].first, ops[i].second));
    if (!only.empty()) {
      // Profiling runs (see README): no table, the rows are incomplete.
      for (const Row& row : result.rows)
        for (const Measured& m : row.runs)
          std::printf("%s: p50 %s mean %s srv cpu %.1f us/op\n",
                      row.key.c_str(), format_us(m.summary.p50_us).c_str(),
                      format_us(m.summary.mean_us).c_str(), m.server_cpu_us);
      continue;
    }
    std::printf("\n(batond had %d threads during the %s runs)",
                thread_count(daemon.pid()), placement.key.c_str());
    client.close();
    std::string log = daemon.read_log();
    daemon.stop();
    ::close(ofd);
    print_placement(result);
    if (log.find("warn") != std::string::npos ||
        log.find("error") != std::string::npos) {
      // Only the --allow-local-locks notice is expected.
      std::size_t lines =
          static_cast<std::size_t>(std::count(log.begin(), log.end(), '\n'));
      if (lines > 1)
        std::printf("batond logged %zu lines at warn or above:\n%s", lines,
                    log.c_str());
    }
    std::fflush(stdout);
    results.push_back(std::move(result));
  }
  if (only.empty()) print_markdown(results);
  return 0;
}
