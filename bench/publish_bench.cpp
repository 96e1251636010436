// publish_bench: what a durable publish through batond costs next to the
// raw recipe on the same filesystem, in one run.
//
//   raw (floor): open a temporary file in the destination's directory,
//       write, fsync, close, rename over the destination, fsync the
//       directory (kept open, as a long-lived writer would);
//   baton: Client::publish (the daemon creates the staging file and passes
//       its descriptor), write into that descriptor, Publisher::commit.
//
// Variants: 4 KiB replacing one path; the same with a fencing token; 4 KiB
// create-only onto fresh names (renameat2 RENAME_NOREPLACE for the floor
// too); 1 MiB. Within a run the sides take turns publish by publish, in
// every order in rotation, so all see the same disk and the same
// neighbours. Each run gives a ratio baton/raw; the median of the runs'
// ratios is the figure.
// Use --dir to choose the filesystem (not tmpfs: fsync is free there).
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cinttypes>
#include <ctime>
#include <functional>
#include <future>
#include <random>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "baton/client.hpp"
#include "bench/bench_support.hpp"

#ifndef BATON_BENCH_BATOND
#define BATON_BENCH_BATOND "batond"
#endif

namespace baton::bench {
namespace {

struct Variant {
  std::string key;
  std::string label;
  std::size_t bytes;
  bool token;
  bool no_replace;
  long iterations;
};

// Time spent in each step of one publish, in nanoseconds.
struct Steps {
  std::vector<std::int64_t> total;
  std::vector<std::vector<std::int64_t>> step;  // [step][sample]
  explicit Steps(std::size_t steps) : step(steps) {}
};

// rename(2), create-only when NO_REPLACE; where RENAME_NOREPLACE is not
// supported (GlusterFS FUSE, older NFS servers) link + unlink, which is
// create-only too, as batond does.
void move_into(int dir_fd, const std::string& from, const std::string& to,
               bool no_replace) {
  int rc = ::renameat2(dir_fd, from.c_str(), dir_fd, to.c_str(),
                       no_replace ? RENAME_NOREPLACE : 0);
  if (rc != 0 && errno == EINVAL && no_replace) {
    rc = ::linkat(dir_fd, from.c_str(), dir_fd, to.c_str(), 0);
    if (rc == 0) ::unlinkat(dir_fd, from.c_str(), 0);
  }
  if (rc != 0) die_errno("rename " + from + " to " + to);
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

// The floor: what a careful program does by hand.
class RawPublisher {
 public:
  static inline const std::vector<std::string> k_steps = {
      "create", "write", "fsync", "rename", "dir fsync"};

  explicit RawPublisher(const std::string& dir) : m_dir(dir) {
    m_dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (m_dir_fd < 0) die_errno("open " + dir);
  }
  ~RawPublisher() { ::close(m_dir_fd); }
  RawPublisher(const RawPublisher&) = delete;
  RawPublisher& operator=(const RawPublisher&) = delete;

  void publish(const std::string& leaf, const std::string& data,
               bool no_replace, std::vector<std::int64_t>& steps) {
    const std::string tmp = ".tmp." + leaf;
    auto t0 = Clock::now();
    int fd = ::openat(m_dir_fd, tmp.c_str(),
                      O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) die_errno("create " + m_dir + "/" + tmp);
    auto t1 = Clock::now();
    write_all(fd, data);
    auto t2 = Clock::now();
    if (::fsync(fd) != 0) die_errno("fsync");
    ::close(fd);
    auto t3 = Clock::now();
    move_into(m_dir_fd, tmp, leaf, no_replace);
    auto t4 = Clock::now();
    if (::fsync(m_dir_fd) != 0) die_errno("fsync " + m_dir);
    auto t5 = Clock::now();
    steps = {nanos(t1 - t0), nanos(t2 - t1), nanos(t3 - t2), nanos(t4 - t3),
             nanos(t5 - t4)};
  }

 private:
  std::string m_dir;
  int m_dir_fd = -1;
};

// Diagnostic, not a floor: the filesystem calls batond makes for one
// publish (daemon/publish.cpp, StagedFile::create, writer_fd and commit, as
// of the commit "publish: run the intent's fdatasync on a kept companion
// thread"), made here in-process with no socket, no daemon and no offload
// pool. Records are read past the page cache only on a network filesystem,
// as batond does. baton - replay is what the IPC and the daemon add; replay - raw is
// what baton's on-disk protocol (staging rename, version record) adds.
// Keep it in step with publish.cpp, or its row stops meaning anything.
class ReplayPublisher {
 public:
  static inline const std::vector<std::string> k_steps = {
      "stage",         "write",  "record read", "intent write",
      "fsync||intent", "rename", "dir fsync",   "final record"};

  ReplayPublisher(const std::string& root, bool network)
      : m_root_path(root), m_network(network), m_companion([this] { run_companion(); }) {
    m_root = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (m_root < 0) die_errno("open " + root);
    std::filesystem::create_directories(root + "/.baton/versions");
  }
  ~ReplayPublisher() {
    {
      std::lock_guard lock(m_mutex);
      m_stopping = true;
    }
    m_wake.notify_all();
    m_companion.join();
    ::close(m_root);
  }
  ReplayPublisher(const ReplayPublisher&) = delete;
  ReplayPublisher& operator=(const ReplayPublisher&) = delete;

  void publish(const std::string& dir, const std::string& leaf,
               const std::string& data, bool no_replace,
               std::vector<std::int64_t>& steps) {
    auto t0 = Clock::now();
    // StagedFile::create: the directory, the symlink check, the sweep's
    // fstat, a fresh file, its lock, the rename to the staging name; then
    // writer_fd's second open file description.
    int dir_fd = beneath(dir.c_str(), O_RDONLY | O_DIRECTORY);
    struct stat info {};
    ::fstatat(dir_fd, leaf.c_str(), &info, AT_SYMLINK_NOFOLLOW);
    ::fstat(dir_fd, &info);
    const std::string suffix = std::to_string(++m_counter) + "." + leaf;
    const std::string fresh = ".replay-new." + suffix;
    const std::string stage = ".replay-stage." + suffix;
    int fd = ::openat(dir_fd, fresh.c_str(),
                      O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) die_errno("create " + fresh);
    lock(fd, F_OFD_SETLK);
    if (::renameat(dir_fd, fresh.c_str(), dir_fd, stage.c_str()) != 0)
      die_errno("rename " + fresh);
    std::string self = "/proc/self/fd/" + std::to_string(fd);
    int writer = ::open(self.c_str(), O_WRONLY | O_CLOEXEC);
    if (writer < 0) die_errno("open " + self);
    auto t1 = Clock::now();
    write_all(writer, data);
    ::close(writer);
    auto t2 = Clock::now();
    // commit: open and read the record (past the page cache), lock it,
    // read it again.
    char name[64];
    std::snprintf(name, sizeof name, ".baton/versions/%s-0.v", leaf.c_str());
    int record = beneath(name, O_RDWR | O_CREAT);
    char text[1153];
    read_record(record, text, sizeof text);
    lock(record, F_OFD_SETLKW);
    read_record(record, text, 128);
    auto t3 = Clock::now();
    ::fchmod(fd, 0644);
    ::fstat(fd, &info);
    std::string header(127, ' ');
    header += '\n';
    if (::pwrite(record, header.data(), header.size(), 0) != 128)
      die_errno("pwrite record");
    auto t4 = Clock::now();
    std::future<int> intent = sync_beside(record);
    if (::fsync(fd) != 0) die_errno("fsync");
    if (intent.get() != 0) die("fdatasync record failed");
    auto t5 = Clock::now();
    move_into(dir_fd, stage, leaf, no_replace);
    auto t6 = Clock::now();
    if (::fsync(dir_fd) != 0) die_errno("fsync dir");
    auto t7 = Clock::now();
    std::string whole = header + dir + "/" + leaf + "\n";
    if (::pwrite(record, whole.data(), whole.size(), 0) < 0)
      die_errno("pwrite record");
    ::close(record);
    ::close(fd);
    ::close(dir_fd);
    auto t8 = Clock::now();
    steps = {nanos(t1 - t0), nanos(t2 - t1), nanos(t3 - t2), nanos(t4 - t3),
             nanos(t5 - t4), nanos(t6 - t5), nanos(t7 - t6), nanos(t8 - t7)};
  }

 private:
  int beneath(const char* path, int flags) {
    open_how how{};
    how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
    how.mode = (flags & O_CREAT) ? 0644 : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    int fd = static_cast<int>(
        ::syscall(SYS_openat2, m_root, path, &how, sizeof how));
    if (fd < 0) die_errno("openat2 " + m_root_path + "/" + path);
    return fd;
  }
  static void lock(int fd, int command) {
    struct flock request {};
    request.l_type = F_WRLCK;
    request.l_whence = SEEK_SET;
    request.l_len = 1;
    if (::fcntl(fd, command, &request) != 0) die_errno("OFD lock");
  }
  void read_record(int fd, char* buffer, std::size_t size) const {
    if (m_network) ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // as publish.cpp
    if (::pread(fd, buffer, size, 0) < 0) die_errno("pread record");
  }
  // batond's companion thread: fdatasync(FD) while the caller fsyncs.
  std::future<int> sync_beside(int fd) {
    std::packaged_task<int()> task([fd] { return ::fdatasync(fd) == 0 ? 0 : errno; });
    std::future<int> done = task.get_future();
    {
      std::lock_guard lock(m_mutex);
      m_task = std::move(task);
    }
    m_wake.notify_all();
    return done;
  }
  void run_companion() {
    std::unique_lock lock(m_mutex);
    for (;;) {
      m_wake.wait(lock, [this] { return m_stopping || m_task.valid(); });
      if (m_stopping) return;
      std::packaged_task<int()> task = std::move(m_task);
      lock.unlock();
      task();
      lock.lock();
    }
  }

  std::string m_root_path;
  bool m_network;
  int m_root = -1;
  std::uint64_t m_counter = 0;
  std::mutex m_mutex;
  std::condition_variable m_wake;
  std::packaged_task<int()> m_task;
  bool m_stopping = false;
  std::thread m_companion;  // last: it uses the members above
};

// Through libbaton and batond.
class BatonPublisher {
 public:
  static inline const std::vector<std::string> k_steps = {"begin", "write",
                                                          "commit"};

  explicit BatonPublisher(const std::string& socket) {
    ClientOptions options;
    options.socket_path = socket;
    m_client.connect(options);
  }

  void publish(const std::string& path, const std::string& data,
               const PublishOptions& options,
               std::vector<std::int64_t>& steps) {
    auto t0 = Clock::now();
    Publisher publisher = m_client.publish(path, options);
    auto t1 = Clock::now();
    write_all(publisher.fd(), data);
    auto t2 = Clock::now();
    publisher.commit();
    auto t3 = Clock::now();
    steps = {nanos(t1 - t0), nanos(t2 - t1), nanos(t3 - t2)};
  }

  // One round trip with no work in the daemon, for comparison.
  std::int64_t ping() {
    auto start = Clock::now();
    m_client.ping();
    return nanos(Clock::now() - start);
  }

  // One round trip whose small filesystem work (the version record and
  // the path looked up) runs on the daemon's thread pool, as a publish's
  // two requests do: wait minus ping is roughly the hop to the pool.
  std::int64_t wait_existing(const std::string& path) {
    auto start = Clock::now();
    m_client.wait(path);
    return nanos(Clock::now() - start);
  }

 private:
  Client m_client;
};

struct SideRun {
  Summary summary;
  std::vector<double> step_mean_us;
};

SideRun finish(const Steps& steps, Clock::duration wall) {
  SideRun run;
  run.summary = summarize(steps.total, wall);
  for (const auto& samples : steps.step) {
    double total = 0;
    for (auto v : samples) total += static_cast<double>(v);
    run.step_mean_us.push_back(
        samples.empty() ? 0
                        : total / static_cast<double>(samples.size()) / 1e3);
  }
  return run;
}

struct Run {
  SideRun raw;
  SideRun baton;
  SideRun replay;              // diagnostic
  Summary ping;                // diagnostic: libbaton ping, between publishes
  Summary wait;                // diagnostic: libbaton wait for an existing path
  double daemon_cpu_us = 0;    // batond's CPU time per baton publish
  double daemon_switches = 0;  // batond's context switches per publish
  double ratio_p50 = 0;
  double ratio_mean = 0;
};

// One side's timed publishes.
struct Side {
  std::function<void(const std::string& leaf, std::vector<std::int64_t>&)>
      publish;
  Steps steps;
  Clock::duration wall{};
};

// One run of VARIANT: WARMUP + ITERATIONS publishes per side, the sides
// taking turns in every order in rotation (raw, baton, replay; raw,
// replay, baton; ...), so each sees the disk after each other equally
// often. Each side's wall time counts only its own publishes.
Run run_variant(const Variant& variant, long warmup, int run_number,
                pid_t daemon, RawPublisher& raw, BatonPublisher& baton,
                ReplayPublisher& replay, std::uint64_t& next_token,
                const std::string& data) {
  std::vector<Side> sides;
  sides.push_back({[&](const std::string& leaf, auto& steps) {
                     raw.publish(leaf, data, variant.no_replace, steps);
                   },
                   Steps(RawPublisher::k_steps.size())});
  sides.push_back({[&](const std::string& leaf, auto& steps) {
                     PublishOptions options;
                     options.no_replace = variant.no_replace;
                     if (variant.token) options.token = ++next_token;
                     baton.publish("baton/" + leaf, data, options, steps);
                   },
                   Steps(BatonPublisher::k_steps.size())});
  sides.push_back({[&](const std::string& leaf, auto& steps) {
                     replay.publish("replay", leaf, data, variant.no_replace,
                                    steps);
                   },
                   Steps(ReplayPublisher::k_steps.size())});
  static const int k_orders[6][3] = {{0, 1, 2}, {1, 2, 0}, {2, 0, 1},
                                     {2, 1, 0}, {1, 0, 2}, {0, 2, 1}};
  std::vector<std::int64_t> steps;
  std::vector<std::int64_t> pings, waits;
  Clock::duration ping_wall{}, wait_wall{};
  SchedTimes cpu_before{};
  std::uint64_t switches_before = 0;
  for (long i = 0; i < warmup + variant.iterations; ++i) {
    if (i == warmup) {
      cpu_before = sched_times(daemon);
      switches_before = context_switches(daemon);
    }
    // Fresh names for create-only (each run its own), else one path.
    const std::string leaf =
        variant.no_replace ? variant.key + "." + std::to_string(run_number) +
                                 "." + std::to_string(i)
                           : variant.key + ".dat";
    for (int which : k_orders[i % 6]) {
      Side& side = sides[static_cast<std::size_t>(which)];
      auto start = Clock::now();
      side.publish(leaf, steps);
      auto took = Clock::now() - start;
      if (i < warmup) continue;
      side.wall += took;
      side.steps.total.push_back(nanos(took));
      for (std::size_t s = 0; s < steps.size(); ++s)
        side.steps.step[s].push_back(steps[s]);
    }
    if (i >= warmup) {
      pings.push_back(baton.ping());
      ping_wall += std::chrono::nanoseconds(pings.back());
      waits.push_back(baton.wait_existing("baton/" + leaf));
      wait_wall += std::chrono::nanoseconds(waits.back());
    }
  }
  const double publishes = static_cast<double>(variant.iterations);
  Run run;
  // Pings cost batond a little too; both figures include them.
  run.daemon_cpu_us =
      static_cast<double>(sched_times(daemon).cpu_ns - cpu_before.cpu_ns) /
      1e3 / publishes;
  run.daemon_switches =
      static_cast<double>(context_switches(daemon) - switches_before) /
      publishes;
  run.ping = summarize(std::move(pings), ping_wall);
  run.wait = summarize(std::move(waits), wait_wall);
  run.raw = finish(sides[0].steps, sides[0].wall);
  run.baton = finish(sides[1].steps, sides[1].wall);
  run.replay = finish(sides[2].steps, sides[2].wall);
  run.ratio_p50 = run.baton.summary.p50_us / run.raw.summary.p50_us;
  run.ratio_mean = run.baton.summary.mean_us / run.raw.summary.mean_us;
  return run;
}

std::string steps_text(const std::vector<std::string>& names,
                       const std::vector<double>& means) {
  std::string text;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!text.empty()) text += ", ";
    text += names[i] + " " + format_us(means[i]);
  }
  return text;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

std::string bytes_text(std::size_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
    return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= 1024 && bytes % 1024 == 0)
    return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " B";
}

}  // namespace
}  // namespace baton::bench

int main(int argc, char** argv) {
  using namespace baton::bench;
  if (has_flag(argc, argv, "--help") || has_flag(argc, argv, "-h")) {
    std::printf(
        "Usage: publish_bench [--batond PATH] [--dir DIR] [--iterations N]\n"
        "                     [--warmup N] [--repeats N] "
        "[--variants 4k,token,no-replace,1m]\n"
        "Durable publish through batond vs open/write/fsync/rename/fsync-dir "
        "by hand,\non the filesystem of DIR (default $TMPDIR or /var/tmp; not "
        "tmpfs).\n"
        "--iterations: publishes per side per run for 4 KiB (default 200; 1 "
        "MiB does a\nquarter). Exits 1 if anything fails.\n"
        "--baton-only N: N 4 KiB publishes through batond and nothing else "
        "(its pid\nfirst), for perf or strace to attach to.\n"
        "--cpus LIST: pin the bench and batond to these CPUs (e.g. 0: both on "
        "one vCPU);\ndefault unpinned.\n");
    return 0;
  }
  const std::string batond = option(argc, argv, "--batond", BATON_BENCH_BATOND);
  const char* tmpdir = std::getenv("TMPDIR");
  const std::string dir =
      option(argc, argv, "--dir", tmpdir && *tmpdir ? tmpdir : "/var/tmp");
  const long iterations = number_option(argc, argv, "--iterations", 200);
  const long warmup = number_option(argc, argv, "--warmup", 20);
  const long repeats = number_option(argc, argv, "--repeats", 5);
  const std::string wanted =
      option(argc, argv, "--variants", "4k,token,no-replace,1m");
  if (::access(batond.c_str(), X_OK) != 0)
    die("batond not executable: " + batond);

  const std::vector<Variant> all = {
      {"4k", "4 KiB, replace", 4096, false, false, iterations},
      {"token", "4 KiB, replace, --token", 4096, true, false, iterations},
      {"no-replace", "4 KiB, --no-replace (fresh names)", 4096, false, true,
       iterations},
      {"1m", "1 MiB, replace", 1u << 20, false, false,
       std::max(1L, iterations / 4)},
  };
  std::vector<Variant> variants;
  for (const Variant& v : all)
    if (("," + wanted + ",").find("," + v.key + ",") != std::string::npos)
      variants.push_back(v);
  if (variants.empty())
    die("no variant matches '" + wanted + "' (4k,token,no-replace,1m)");

  // The daemon's socket and log stay local; only the root is measured.
  ScratchDir scratch("baton-publish");
  ScratchDir data_dir("baton-publish", dir);
  const std::string root = data_dir.path() + "/root";
  // Every side runs in this thread, so pinning it pins all of them.
  std::vector<int> cpus;
  {
    std::stringstream text(option(argc, argv, "--cpus", ""));
    for (std::string part; std::getline(text, part, ',');)
      cpus.push_back(static_cast<int>(std::strtol(part.c_str(), nullptr, 10)));
  }
  pin_to(cpus);
  Daemon daemon(batond, root, scratch.path() + "/batond.sock", cpus,
                scratch.path() + "/batond.log");
  stop_at_exit(daemon.pid());
  daemon.wait_ready();
  std::filesystem::create_directories(root + "/raw");
  std::filesystem::create_directories(root + "/baton");
  std::filesystem::create_directories(root + "/replay");
  RawPublisher raw(root + "/raw");
  BatonPublisher baton(daemon.socket());
  ReplayPublisher replay(root, is_network_filesystem(root));
  if (const long only = number_option(argc, argv, "--baton-only", 0)) {
    std::printf("batond pid %d, bench pid %d\n", daemon.pid(), ::getpid());
    std::fflush(stdout);
    std::string data(4096, 'b');
    std::vector<std::int64_t> steps;
    std::vector<std::int64_t> totals;
    auto start = Clock::now();
    for (long i = 0; i < only; ++i) {
      auto t0 = Clock::now();
      baton.publish("baton/only.dat", data, {}, steps);
      totals.push_back(nanos(Clock::now() - t0));
    }
    Summary s = summarize(std::move(totals), Clock::now() - start);
    std::printf("%ld publishes: p50 %s, mean %s, %s\n", only,
                format_us(s.p50_us).c_str(), format_us(s.mean_us).c_str(),
                format_rate(s.rate).c_str());
    return 0;
  }

  utsname name{};
  ::uname(&name);
  std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M %Z", std::localtime(&now));
  std::printf("publish_bench  %s  %s %s, %ld cpus\n", date, name.sysname,
              name.release, ::sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("filesystem: %s (%s)\n", filesystem_of(root).c_str(),
              root.c_str());
  std::printf("batond: %s; bench and batond on cpus %s\n", batond.c_str(),
              cpus_text(cpus).c_str());
  std::printf(
      "%ld warm-up + N timed publishes per side per run, sides in rotating "
      "order; "
      "%ld runs;\nthe run with the median baton p50 is shown whole, the "
      "ratio is the median of the runs' ratios\n",
      warmup, repeats);

  std::mt19937_64 random(42);
  std::uint64_t next_token = 0;
  std::vector<std::string> table;
  for (const Variant& variant : variants) {
    std::string data(variant.bytes, '\0');
    for (char& c : data) c = static_cast<char>(random());
    std::vector<Run> runs;
    for (long r = 0; r < repeats; ++r)
      runs.push_back(run_variant(variant, warmup, static_cast<int>(r),
                                 daemon.pid(), raw, baton, replay, next_token,
                                 data));
    std::vector<double> ratios_p50, ratios_mean, ratios_rate;
    for (const Run& run : runs) {
      ratios_p50.push_back(run.ratio_p50);
      ratios_mean.push_back(run.ratio_mean);
      ratios_rate.push_back(run.raw.summary.rate / run.baton.summary.rate);
    }
    // The run with the median baton p50, shown whole.
    std::vector<const Run*> order;
    for (const Run& run : runs) order.push_back(&run);
    std::sort(order.begin(), order.end(), [](const Run* a, const Run* b) {
      return a->baton.summary.p50_us < b->baton.summary.p50_us;
    });
    const Run* shown = order[order.size() / 2];

    std::printf("\n== %s: %ld timed publishes per side per run ==\n",
                variant.label.c_str(), variant.iterations);
    std::printf("%-34s %9s %9s %9s %9s %10s  %s\n", "what", "p50", "p99", "max",
                "mean", "rate", "mean per step");
    auto row = [&](const char* what, const SideRun& side,
                   const std::vector<std::string>& names) {
      std::printf("%-34s %9s %9s %9s %9s %10s  %s\n", what,
                  format_us(side.summary.p50_us).c_str(),
                  format_us(side.summary.p99_us).c_str(),
                  format_us(side.summary.max_us).c_str(),
                  format_us(side.summary.mean_us).c_str(),
                  format_rate(side.summary.rate).c_str(),
                  steps_text(names, side.step_mean_us).c_str());
    };
    row("raw recipe (floor)", shown->raw, RawPublisher::k_steps);
    row("baton publish + write + commit", shown->baton,
        BatonPublisher::k_steps);
    row("(diag) batond's calls in-process", shown->replay,
        ReplayPublisher::k_steps);
    std::printf(
        "(diag) between publishes: libbaton ping p50 %s, wait for an "
        "existing path (inline on a local\n  root, one hop to the daemon's "
        "pool on a network one) p50 %s; a publish makes 2 round trips,\n  "
        "its commit through the pool; batond per baton "
        "publish: %.0f us of CPU, %.1f context switches (ping, wait "
        "included)\n",
        format_us(shown->ping.p50_us).c_str(),
        format_us(shown->wait.p50_us).c_str(), shown->daemon_cpu_us,
        shown->daemon_switches);
    std::string each;
    for (double r : ratios_p50) {
      char text[16];
      std::snprintf(text, sizeof text, " %.2fx", r);
      each += text;
    }
    const double p50 = median(ratios_p50);
    const double mean = median(ratios_mean);
    const double rate = median(ratios_rate);
    const double p99 = shown->baton.summary.p99_us / shown->raw.summary.p99_us;
    const bool met = p50 <= 1.1;
    std::printf(
        "ratio baton/raw (median of %ld runs): p50 %.2fx  mean %.2fx  "
        "time per publish from rate %.2fx  (p50 of each run:%s)  -> target "
        "<= 1.1x: %s\n",
        repeats, p50, mean, rate, each.c_str(), met ? "met" : "MISSED");
    std::vector<double> replay_raw, baton_replay;
    for (const Run& run : runs) {
      replay_raw.push_back(run.replay.summary.p50_us / run.raw.summary.p50_us);
      baton_replay.push_back(run.baton.summary.p50_us /
                             run.replay.summary.p50_us);
    }
    std::printf(
        "baton - raw at p50: %+.0f us per publish, of which on-disk protocol "
        "(replay - raw) %+.0f us,\n  IPC + daemon (baton - replay) %+.0f us; "
        "replay/raw p50 %.2fx, baton/replay p50 %.2fx (medians of runs)\n",
        shown->baton.summary.p50_us - shown->raw.summary.p50_us,
        shown->replay.summary.p50_us - shown->raw.summary.p50_us,
        shown->baton.summary.p50_us - shown->replay.summary.p50_us,
        median(replay_raw), median(baton_replay));
    char line[512];
    std::snprintf(line, sizeof line,
                  "| %s | %s | %s / %s / %s | %s / %s / %s | %.2fx | %.2fx | "
                  "%.2fx |",
                  variant.label.c_str(), bytes_text(variant.bytes).c_str(),
                  format_us(shown->raw.summary.p50_us).c_str(),
                  format_us(shown->raw.summary.p99_us).c_str(),
                  format_rate(shown->raw.summary.rate).c_str(),
                  format_us(shown->baton.summary.p50_us).c_str(),
                  format_us(shown->baton.summary.p99_us).c_str(),
                  format_rate(shown->baton.summary.rate).c_str(), p50, p99,
                  mean);
    table.push_back(line);
  }

  std::printf(
      "\nMarkdown summary (%s; ratios: median over runs for p50 and "
      "mean, the shown run for p99):\n\n",
      filesystem_of(root).c_str());
  std::printf(
      "| variant | size | raw p50 / p99 / rate | baton p50 / p99 / rate | "
      "baton/raw p50 | p99 | mean |\n|---|---|---|---|---|---|---|\n");
  for (const std::string& line : table) std::printf("%s\n", line.c_str());
  return 0;
}
