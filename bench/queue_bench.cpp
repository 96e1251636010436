// queue_bench: spool-queue throughput through two batonds on one root, next
// to the raw Maildir recipe on the same filesystem, in one run.
//
// Each round, T producer threads enqueue ITEMS items (producer i through
// daemon A or B, alternately), then T consumer threads drain the queue with
// claim + read + ack (consumer i through the other daemon than producer i,
// so with T = 1 every item crosses daemons). The floor does the same by
// hand: enqueue = create in tmp/, write, fsync, rename into new/, fsync
// new/; a consumer lists new/ (sorted) once per pass and, for each name,
// renames new/ -> cur/ (the winner takes it), reads it and unlinks it.
//
// Every item carries its sequence number; after each drain the bench checks
// that each number was consumed exactly once and that new/, cur/ and tmp/
// are empty. Any lost or doubled item fails the bench (exit 1).
//
// Rounds alternate which side goes first; each run gives ratios, and the
// median of the runs' ratios is the figure. See bench/README.md.
#include <dirent.h>
#include <fcntl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cinttypes>
#include <ctime>
#include <memory>
#include <mutex>
#include <thread>

#include "baton/client.hpp"
#include "bench/bench_support.hpp"

#ifndef BATON_BENCH_BATOND
#define BATON_BENCH_BATOND "batond"
#endif

namespace baton::bench {
namespace {

// The content of item SEQ: its number on the first line, padded to SIZE.
std::string item_content(std::size_t seq, std::size_t size) {
  std::string text = "seq=" + std::to_string(seq) + "\n";
  if (text.size() < size) text.resize(size, 'x');
  return text;
}

// The sequence number in CONTENT, or -1 when it is not an item of ours.
long parse_seq(const std::string& content, std::size_t size) {
  if (content.size() != size || content.rfind("seq=", 0) != 0) return -1;
  char* end = nullptr;
  long seq = std::strtol(content.c_str() + 4, &end, 10);
  return *end == '\n' ? seq : -1;
}

void write_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die_errno("write");
    done += static_cast<std::size_t>(n);
  }
}

std::string read_all(int fd, std::size_t expected) {
  std::string data(expected + 1, '\0');
  std::size_t done = 0;
  for (;;) {
    ssize_t n = ::pread(fd, data.data() + done, data.size() - done,
                        static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die_errno("read item");
    if (n == 0 || done + static_cast<std::size_t>(n) == data.size()) {
      done += static_cast<std::size_t>(n);
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  data.resize(done);
  return data;
}

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> names;
  DIR* dir = ::opendir(path.c_str());
  if (!dir) die_errno("opendir " + path);
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

// Who consumed what: each item's count, and the first problem seen.
class Ledger {
 public:
  explicit Ledger(std::size_t items) : m_counts(items) {}
  void consumed(const std::string& content, std::size_t size,
                const std::string& where) {
    long seq = parse_seq(content, size);
    if (seq < 0 || static_cast<std::size_t>(seq) >= m_counts.size()) {
      problem("a foreign or damaged item (" + std::to_string(content.size()) +
              " bytes) from " + where);
      return;
    }
    if (m_counts[static_cast<std::size_t>(seq)].fetch_add(1) != 0)
      problem("item " + std::to_string(seq) + " consumed twice (" + where +
              ")");
  }
  void problem(const std::string& what) {
    std::lock_guard lock(m_mutex);
    if (m_problem.empty()) m_problem = what;
  }
  // Empty when every item was consumed exactly once.
  std::string verdict() {
    std::size_t missing = 0;
    for (auto& count : m_counts)
      if (count.load() == 0) ++missing;
    std::lock_guard lock(m_mutex);
    if (!m_problem.empty()) return m_problem;
    if (missing) return std::to_string(missing) + " items never consumed";
    return {};
  }

 private:
  std::vector<std::atomic<int>> m_counts;
  std::mutex m_mutex;
  std::string m_problem;
};

struct Phase {
  double rate = 0;  // items per second of wall time
  Summary latency;  // per item (enqueue + write + commit, or claim..ack)
};

// Runs BODY(thread) on THREADS threads from one start; returns the wall
// time from the start to the last thread's end.
template <typename Body>
Clock::duration run_threads(int threads, Body body) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load()) go.wait(false);
      body(t);
    });
  while (ready.load() != threads) std::this_thread::yield();
  auto start = Clock::now();
  go.store(true);
  go.notify_all();
  for (auto& thread : pool) thread.join();
  return Clock::now() - start;
}

Phase finish(std::vector<std::vector<std::int64_t>>& per_thread,
             Clock::duration wall) {
  std::vector<std::int64_t> all;
  for (auto& samples : per_thread)
    all.insert(all.end(), samples.begin(), samples.end());
  Phase phase;
  phase.latency = summarize(std::move(all), wall);
  phase.rate = phase.latency.rate;
  return phase;
}

// The share of ITEMS that producer T of THREADS enqueues: [first, last).
std::pair<std::size_t, std::size_t> share(std::size_t items, int threads,
                                          int t) {
  const auto n = static_cast<std::size_t>(threads);
  const auto i = static_cast<std::size_t>(t);
  return {items * i / n, items * (i + 1) / n};
}

// ---- the floor: Maildir by hand ----

struct RawQueue {
  std::string dir;
  int tmp = -1, fresh = -1, cur = -1;
  explicit RawQueue(const std::string& path) : dir(path) {
    for (const char* sub : {"tmp", "new", "cur"})
      std::filesystem::create_directories(path + "/" + sub);
    tmp = open_dir(path + "/tmp");
    fresh = open_dir(path + "/new");
    cur = open_dir(path + "/cur");
  }
  ~RawQueue() {
    for (int fd : {tmp, fresh, cur}) ::close(fd);
  }
  RawQueue(const RawQueue&) = delete;
  RawQueue& operator=(const RawQueue&) = delete;
  static int open_dir(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) die_errno("open " + path);
    return fd;
  }
};

Phase raw_enqueue(RawQueue& queue, std::size_t items, std::size_t size,
                  int threads) {
  std::vector<std::vector<std::int64_t>> samples(
      static_cast<std::size_t>(threads));
  auto wall = run_threads(threads, [&](int t) {
    auto [first, last] = share(items, threads, t);
    for (std::size_t seq = first; seq < last; ++seq) {
      auto start = Clock::now();
      // Names sort in enqueue order, as baton's ids do.
      char name[96];
      std::snprintf(name, sizeof name, "%020" PRId64 ".%d.%zu",
                    nanos(std::chrono::system_clock::now().time_since_epoch()),
                    t, seq);
      int fd = ::openat(queue.tmp, name,
                        O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0) die_errno("create in " + queue.dir + "/tmp");
      write_all(fd, item_content(seq, size));
      if (::fsync(fd) != 0) die_errno("fsync item");
      ::close(fd);
      if (::renameat(queue.tmp, name, queue.fresh, name) != 0)
        die_errno("rename into new/");
      if (::fsync(queue.fresh) != 0) die_errno("fsync new/");
      samples[static_cast<std::size_t>(t)].push_back(
          nanos(Clock::now() - start));
    }
  });
  return finish(samples, wall);
}

Phase raw_drain(RawQueue& queue, std::size_t size, int threads,
                Ledger& ledger) {
  std::vector<std::vector<std::int64_t>> samples(
      static_cast<std::size_t>(threads));
  auto wall = run_threads(threads, [&](int t) {
    for (;;) {
      auto names = list_dir(queue.dir + "/new");
      if (names.empty()) return;  // pre-filled: empty means drained
      for (const std::string& name : names) {
        auto start = Clock::now();
        if (::renameat(queue.fresh, name.c_str(), queue.cur, name.c_str()) !=
            0) {
          if (errno == ENOENT) continue;  // another consumer won it
          die_errno("rename into cur/");
        }
        int fd = ::openat(queue.cur, name.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) die_errno("open claimed item");
        ledger.consumed(read_all(fd, size), size, "raw consumer");
        ::close(fd);
        if (::unlinkat(queue.cur, name.c_str(), 0) != 0)
          die_errno("unlink claimed item");
        samples[static_cast<std::size_t>(t)].push_back(
            nanos(Clock::now() - start));
      }
    }
  });
  return finish(samples, wall);
}

// ---- baton ----

std::unique_ptr<Client> connect_to(const std::string& socket) {
  auto client = std::make_unique<Client>();
  ClientOptions options;
  options.socket_path = socket;
  client->connect(options);
  return client;
}

Phase baton_enqueue(const std::array<std::string, 2>& sockets,
                    const std::string& queue, std::size_t items,
                    std::size_t size, int threads, Ledger& ledger) {
  std::vector<std::vector<std::int64_t>> samples(
      static_cast<std::size_t>(threads));
  std::vector<std::unique_ptr<Client>> clients;
  for (int t = 0; t < threads; ++t)
    clients.push_back(connect_to(sockets[static_cast<std::size_t>(t % 2)]));
  auto wall = run_threads(threads, [&](int t) {
    Client& client = *clients[static_cast<std::size_t>(t)];
    auto [first, last] = share(items, threads, t);
    for (std::size_t seq = first; seq < last; ++seq) {
      auto start = Clock::now();
      std::error_code ec;
      PendingItem item = client.enqueue(queue, ec);
      if (!ec) write_all(item.fd(), item_content(seq, size));
      if (!ec) item.commit(ec);
      if (ec) {
        ledger.problem("enqueue: " + ec.message() + " (" +
                       client.last_error_message() + ")");
        return;
      }
      samples[static_cast<std::size_t>(t)].push_back(
          nanos(Clock::now() - start));
    }
  });
  return finish(samples, wall);
}

Phase baton_drain(const std::array<std::string, 2>& sockets,
                  const std::string& queue, std::size_t size, int threads,
                  Ledger& ledger) {
  std::vector<std::vector<std::int64_t>> samples(
      static_cast<std::size_t>(threads));
  std::vector<std::unique_ptr<Client>> clients;
  for (int t = 0; t < threads; ++t)
    clients.push_back(
        connect_to(sockets[static_cast<std::size_t>((t + 1) % 2)]));
  auto wall = run_threads(threads, [&](int t) {
    Client& client = *clients[static_cast<std::size_t>(t)];
    for (;;) {
      auto start = Clock::now();
      std::error_code ec;
      // No wait: the queue was filled before, so "none" means drained.
      QueueItem item = client.claim(queue, std::chrono::milliseconds(0), ec);
      if (ec == errc::timed_out) return;
      if (!ec) ledger.consumed(read_all(item.fd(), size), size, "baton claim");
      if (!ec) item.ack(ec);
      if (ec) {
        ledger.problem("claim/ack: " + ec.message() + " (" +
                       client.last_error_message() + ")");
        return;
      }
      samples[static_cast<std::size_t>(t)].push_back(
          nanos(Clock::now() - start));
    }
  });
  return finish(samples, wall);
}

// Anything left in the queue's directories after a drain is a lost item.
void check_empty(const std::string& dir, Ledger& ledger) {
  for (const char* sub : {"tmp", "new", "cur"}) {
    auto names = list_dir(dir + "/" + sub);
    if (!names.empty())
      ledger.problem(std::to_string(names.size()) + " files left in " + dir +
                     "/" + sub + " (first: " + names.front() + ")");
  }
}

struct RoundResult {
  Phase enqueue;
  Phase drain;
};

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace
}  // namespace baton::bench

int main(int argc, char** argv) {
  using namespace baton::bench;
  if (has_flag(argc, argv, "--help") || has_flag(argc, argv, "-h")) {
    std::printf(
        "Usage: queue_bench [--batond PATH] [--dir DIR] [--items N] "
        "[--repeats N]\n"
        "                   [--threads 1,2,4] [--sizes 64,4096]\n"
        "Spool enqueue and claim+ack throughput through two batonds vs the "
        "raw Maildir\nrecipe, on the filesystem of DIR (default $TMPDIR or "
        "/var/tmp; not tmpfs).\nEach round: T producers enqueue N items, "
        "then T consumers drain them.\nExits 1 if an item is lost or "
        "consumed twice.\n");
    return 0;
  }
  const std::string batond = option(argc, argv, "--batond", BATON_BENCH_BATOND);
  const char* tmpdir = std::getenv("TMPDIR");
  const std::string dir =
      option(argc, argv, "--dir", tmpdir && *tmpdir ? tmpdir : "/var/tmp");
  const auto items =
      static_cast<std::size_t>(number_option(argc, argv, "--items", 400));
  const long repeats = number_option(argc, argv, "--repeats", 3);
  auto numbers = [&](const std::string& name, const std::string& fallback) {
    std::vector<long> values;
    std::stringstream text(option(argc, argv, name, fallback));
    for (std::string part; std::getline(text, part, ',');) {
      char* end = nullptr;
      long value = std::strtol(part.c_str(), &end, 10);
      if (part.empty() || *end != '\0' || value <= 0)
        die("bad value for " + name + ": '" + part + "'");
      values.push_back(value);
    }
    return values;
  };
  const std::vector<long> thread_counts = numbers("--threads", "1,2,4");
  const std::vector<long> sizes = numbers("--sizes", "64,4096");
  if (::access(batond.c_str(), X_OK) != 0)
    die("batond not executable: " + batond);

  ScratchDir scratch("baton-queue");
  ScratchDir data_dir("baton-queue", dir);
  const std::string root = data_dir.path() + "/root";
  Daemon a(batond, root, scratch.path() + "/a.sock", {},
           scratch.path() + "/a.log", {"--pod-name", "pod-a"});
  stop_at_exit(a.pid());
  a.wait_ready();
  Daemon b(batond, root, scratch.path() + "/b.sock", {},
           scratch.path() + "/b.log", {"--pod-name", "pod-b"});
  stop_at_exit(b.pid());
  b.wait_ready();
  const std::array<std::string, 2> sockets = {a.socket(), b.socket()};

  utsname name{};
  ::uname(&name);
  std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M %Z", std::localtime(&now));
  std::printf("queue_bench  %s  %s %s, %ld cpus\n", date, name.sysname,
              name.release, ::sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("filesystem: %s (%s)\n", filesystem_of(root).c_str(),
              root.c_str());
  std::printf("batond: %s, two daemons on one root, unpinned\n",
              batond.c_str());
  std::printf(
      "%zu items per round; round = T producers enqueue, then T consumers "
      "claim+read+ack;\n%ld runs, ratios are medians of the runs' ratios; "
      "every item checked consumed exactly once\n",
      items, repeats);

  bool lost = false;
  std::vector<std::string> table;
  int queue_number = 0;
  for (long size_value : sizes) {
    const auto size = static_cast<std::size_t>(size_value);
    for (long threads_value : thread_counts) {
      const int threads = static_cast<int>(threads_value);
      std::vector<RoundResult> raw_runs, baton_runs;
      for (long r = 0; r < repeats; ++r) {
        const std::string queue = "q" + std::to_string(queue_number++);
        const bool raw_first = (r + threads_value) % 2 == 0;
        for (int pass = 0; pass < 2; ++pass) {
          Ledger ledger(items);
          if ((pass == 0) == raw_first) {
            RawQueue raw(root + "/raw-" + queue);
            RoundResult result;
            result.enqueue = raw_enqueue(raw, items, size, threads);
            result.drain = raw_drain(raw, size, threads, ledger);
            check_empty(raw.dir, ledger);
            raw_runs.push_back(result);
          } else {
            RoundResult result;
            result.enqueue =
                baton_enqueue(sockets, queue, items, size, threads, ledger);
            result.drain = baton_drain(sockets, queue, size, threads, ledger);
            check_empty(root + "/" + queue, ledger);
            baton_runs.push_back(result);
          }
          std::string verdict = ledger.verdict();
          if (!verdict.empty()) {
            std::printf(
                "LOST OR DOUBLED ITEMS (%s side, %zu B, %d threads): %s\n",
                (pass == 0) == raw_first ? "raw" : "baton", size, threads,
                verdict.c_str());
            lost = true;
          }
        }
      }
      std::vector<double> enqueue_ratio, drain_ratio;
      for (long r = 0; r < repeats; ++r) {
        const auto i = static_cast<std::size_t>(r);
        enqueue_ratio.push_back(baton_runs[i].enqueue.rate /
                                raw_runs[i].enqueue.rate);
        drain_ratio.push_back(baton_runs[i].drain.rate /
                              raw_runs[i].drain.rate);
      }
      auto median_rate = [](std::vector<RoundResult>& runs, bool drain) {
        std::vector<double> rates;
        for (auto& run : runs)
          rates.push_back(drain ? run.drain.rate : run.enqueue.rate);
        return median(rates);
      };
      auto median_p50 = [](std::vector<RoundResult>& runs, bool drain) {
        std::vector<double> values;
        for (auto& run : runs)
          values.push_back(drain ? run.drain.latency.p50_us
                                 : run.enqueue.latency.p50_us);
        return median(values);
      };
      const double raw_enq = median_rate(raw_runs, false);
      const double baton_enq = median_rate(baton_runs, false);
      const double raw_drain_rate = median_rate(raw_runs, true);
      const double baton_drain_rate = median_rate(baton_runs, true);
      std::printf("\n== %zu B items, %d producer%s then %d consumer%s ==\n",
                  size, threads, threads == 1 ? "" : "s", threads,
                  threads == 1 ? "" : "s");
      std::printf("%-30s %12s %10s %12s %10s\n", "what (medians of runs)",
                  "enqueue", "p50/item", "claim+ack", "p50/item");
      std::printf("%-30s %12s %10s %12s %10s\n", "raw Maildir (floor)",
                  format_rate(raw_enq).c_str(),
                  format_us(median_p50(raw_runs, false)).c_str(),
                  format_rate(raw_drain_rate).c_str(),
                  format_us(median_p50(raw_runs, true)).c_str());
      std::printf("%-30s %12s %10s %12s %10s\n", "baton, two daemons",
                  format_rate(baton_enq).c_str(),
                  format_us(median_p50(baton_runs, false)).c_str(),
                  format_rate(baton_drain_rate).c_str(),
                  format_us(median_p50(baton_runs, true)).c_str());
      std::printf(
          "throughput baton/raw (median of %ld runs' ratios): enqueue "
          "%.2fx, claim+ack %.2fx\n",
          repeats, median(enqueue_ratio), median(drain_ratio));
      char line[512];
      std::snprintf(line, sizeof line,
                    "| %zu B | %d | %s / %s | %.2fx | %s / %s | %.2fx |", size,
                    threads, format_rate(raw_enq).c_str(),
                    format_rate(baton_enq).c_str(), median(enqueue_ratio),
                    format_rate(raw_drain_rate).c_str(),
                    format_rate(baton_drain_rate).c_str(), median(drain_ratio));
      table.push_back(line);
    }
  }

  std::printf("\nMarkdown summary (%s; throughput, higher is better):\n\n",
              filesystem_of(root).c_str());
  std::printf(
      "| item | threads (producers, then consumers) | enqueue raw / baton | "
      "baton/raw | claim+ack raw / baton | baton/raw |\n"
      "|---|---|---|---|---|---|\n");
  for (const std::string& line : table) std::printf("%s\n", line.c_str());
  if (lost) {
    std::printf("\nFAILED: items were lost or consumed twice (see above)\n");
    return 1;
  }
  std::printf("\nexactly-once: every item of every round consumed once\n");
  return 0;
}
