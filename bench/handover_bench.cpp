// handover_bench: how fast one lock moves between two daemons on one root,
// next to the raw OFD lock moving between two threads, in one run.
//
// Two batonds share a root (as two pods share a volume); client A talks to
// daemon A, client B to daemon B. Two modes:
//
//   ping-pong: strict turns. The waiter's request is queued in its daemon
//     (libbaton's on_queued has fired) before the holder releases; we time
//     release() in the holder -> lock() returning in the waiter. The raw
//     floor does the same with F_OFD_SETLKW on two open file descriptions.
//   free-running: both clients loop lock + release as fast as they can for
//     a fixed time; we count grants, hand-overs (grants to the other side)
//     and the longest wait. This is the unfair case of FIGURES.md.
//
// Placements: side A and side B (daemon and client each) on cpu 0 / cpu 0,
// cpu 0 / cpu 1, or unpinned. See bench/README.md.
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <ctime>
#include <functional>
#include <thread>

#include "baton/client.hpp"
#include "bench/bench_support.hpp"

#ifndef BATON_BENCH_BATOND
#define BATON_BENCH_BATOND "batond"
#endif

namespace baton::bench {
namespace {

constexpr const char* k_lock_name = "bench/handover";

// Waits until A holds exactly VALUE (futex-backed; no spinning, which on a
// shared vCPU would steal the time the other side needs).
void wait_for(std::atomic<int>& a, int value) {
  for (int seen = a.load(); seen != value; seen = a.load()) a.wait(seen);
}

void publish(std::atomic<int>& a, int value) {
  a.store(value);
  a.notify_all();
}

std::int64_t now_ns() { return nanos(Clock::now().time_since_epoch()); }

// One side's way of taking and giving up the lock. lock() calls on_queued
// (if it has to wait) once the request is known to be waiting.
struct Side {
  std::function<void(const std::function<void()>& on_queued)> lock;
  std::function<void()> release;
};

struct PingPongResult {
  Summary summary;  // release -> grant, rate = hand-overs per second
};

// Strict turns between two sides for HANDOVERS hand-overs.
PingPongResult ping_pong(std::array<Side, 2>& sides,
                         const std::array<std::vector<int>, 2>& cpus,
                         int handovers) {
  std::array<std::atomic<int>, 2> queued{-1,
                                         -1};  // grant number a side waits for
  std::array<std::atomic<int>, 2> granted{-1,
                                          -1};  // grant number a side got last
  std::atomic<std::int64_t> released_at{0};
  std::array<std::vector<std::int64_t>, 2> samples;
  Clock::time_point start;

  auto run = [&](int me) {
    pin_to(cpus[static_cast<std::size_t>(me)]);
    const auto i = static_cast<std::size_t>(me);
    const auto other = 1 - i;
    int g;  // the grant this side holds
    if (me == 0) {
      sides[i].lock([] { die("side A had to wait for a free lock"); });
      g = 0;
      start = Clock::now();
      publish(granted[i], 0);
    } else {
      wait_for(granted[other], 0);
      if (handovers < 1) return;
      sides[i].lock([&] { publish(queued[i], 1); });
      samples[i].push_back(now_ns() - released_at.load());
      g = 1;
      publish(granted[i], 1);
    }
    for (;;) {
      if (g + 1 <= handovers) wait_for(queued[other], g + 1);
      released_at.store(now_ns());
      sides[i].release();
      if (g + 2 > handovers) return;
      wait_for(granted[other], g + 1);
      const int want = g + 2;
      bool waited = false;
      sides[i].lock([&] {
        waited = true;
        publish(queued[i], want);
      });
      samples[i].push_back(now_ns() - released_at.load());
      if (!waited)
        die("a request was granted while the other side held the lock");
      g = want;
      publish(granted[i], g);
    }
  };
  std::thread b(run, 1);
  run(0);
  b.join();
  auto wall = Clock::now() - start;
  std::vector<std::int64_t> all = samples[0];
  all.insert(all.end(), samples[1].begin(), samples[1].end());
  return {summarize(std::move(all), wall)};
}

struct FreeRunResult {
  double grants_per_s = 0;
  double handovers_per_s = 0;
  Summary wait;  // lock() latency of every grant
  std::array<long, 2> grants{0, 0};
};

// Both sides loop lock + release for DURATION.
FreeRunResult free_run(std::array<Side, 2>& sides,
                       const std::array<std::vector<int>, 2>& cpus,
                       std::chrono::milliseconds duration) {
  std::atomic<bool> stop{false};
  std::atomic<int> last_holder{-1};
  std::atomic<long> handovers{0};
  std::array<std::vector<std::int64_t>, 2> waits;
  std::array<long, 2> grants{0, 0};
  auto run = [&](int me) {
    pin_to(cpus[static_cast<std::size_t>(me)]);
    const auto i = static_cast<std::size_t>(me);
    waits[i].reserve(1 << 20);
    while (!stop.load(std::memory_order_relaxed)) {
      auto asked = Clock::now();
      sides[i].lock([] {});
      waits[i].push_back(nanos(Clock::now() - asked));
      ++grants[i];
      if (last_holder.exchange(me) != me) handovers.fetch_add(1);
      sides[i].release();
    }
  };
  auto start = Clock::now();
  std::thread b(run, 1);
  std::thread a(run, 0);
  std::this_thread::sleep_for(duration);
  stop = true;
  a.join();
  b.join();
  auto wall = Clock::now() - start;
  double seconds = std::chrono::duration<double>(wall).count();
  FreeRunResult r;
  r.grants = grants;
  r.grants_per_s = static_cast<double>(grants[0] + grants[1]) / seconds;
  r.handovers_per_s = static_cast<double>(handovers.load()) / seconds;
  std::vector<std::int64_t> all = waits[0];
  all.insert(all.end(), waits[1].begin(), waits[1].end());
  r.wait = summarize(std::move(all), wall);
  return r;
}

// The raw floor: two open file descriptions of one file, F_OFD_SETLKW.
struct RawSides {
  explicit RawSides(const std::string& path) {
    for (int& fd : fds) {
      fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) die_errno("open " + path);
    }
  }
  ~RawSides() {
    for (int fd : fds) ::close(fd);
  }
  RawSides(const RawSides&) = delete;
  RawSides& operator=(const RawSides&) = delete;

  static void set(int fd, short type, int command) {
    struct flock lock {};
    lock.l_type = type;
    lock.l_whence = SEEK_SET;
    lock.l_len = 1;
    while (::fcntl(fd, command, &lock) != 0) {
      if (errno != EINTR) die_errno("fcntl OFD");
    }
  }

  std::array<Side, 2> sides() {
    std::array<Side, 2> out;
    for (std::size_t i = 0; i < 2; ++i) {
      int fd = fds[i];
      out[i].lock = [fd](const std::function<void()>& on_queued) {
        struct flock probe {};
        probe.l_type = F_WRLCK;
        probe.l_whence = SEEK_SET;
        probe.l_len = 1;
        if (::fcntl(fd, F_OFD_SETLK, &probe) == 0) return;
        if (errno != EAGAIN && errno != EACCES) die_errno("F_OFD_SETLK");
        // About to block: as close to "queued" as a raw lock gets.
        on_queued();
        set(fd, F_WRLCK, F_OFD_SETLKW);
      };
      out[i].release = [fd] { set(fd, F_UNLCK, F_OFD_SETLK); };
    }
    return out;
  }

  std::array<int, 2> fds{-1, -1};
};

struct BatonSides {
  BatonSides(const std::string& socket_a, const std::string& socket_b) {
    for (std::size_t i = 0; i < 2; ++i) {
      ClientOptions options;
      options.socket_path = i == 0 ? socket_a : socket_b;
      std::error_code ec;
      clients[i].connect(options, ec);
      if (ec) die("connect " + options.socket_path + ": " + ec.message());
    }
  }

  std::array<Side, 2> sides() {
    std::array<Side, 2> out;
    for (std::size_t i = 0; i < 2; ++i) {
      out[i].lock = [this, i](const std::function<void()>& on_queued) {
        LockOptions options;
        options.on_queued = [&on_queued](const QueueInfo&) { on_queued(); };
        std::error_code ec;
        held[i] = clients[i].lock(k_lock_name, options, ec);
        if (ec)
          die("lock: " + ec.message() + " (" + clients[i].last_error_message() +
              ")");
      };
      out[i].release = [this, i] { held[i].release(); };
    }
    return out;
  }

  std::array<Client, 2> clients;
  std::array<Lock, 2> held;
};

struct PlacementSides {
  std::string key;
  std::string label;
  std::array<std::vector<int>, 2> cpus;
};

}  // namespace
}  // namespace baton::bench

int main(int argc, char** argv) {
  using namespace baton::bench;
  if (has_flag(argc, argv, "--help") || has_flag(argc, argv, "-h")) {
    std::printf(
        "Usage: handover_bench [--batond PATH] [--handovers N] [--seconds S] "
        "[--repeats N]\n"
        "                      [--placements same,split,unpinned]\n"
        "Cross-daemon hand-over of one lock vs raw OFD locks between two "
        "threads.\n");
    return 0;
  }
  const std::string batond = option(argc, argv, "--batond", BATON_BENCH_BATOND);
  const int handovers =
      static_cast<int>(number_option(argc, argv, "--handovers", 2000));
  const auto duration = std::chrono::milliseconds(
      1000 * number_option(argc, argv, "--seconds", 1));
  const long repeats = number_option(argc, argv, "--repeats", 3);
  const std::string wanted = option(argc, argv, "--placements", "all");
  if (::access(batond.c_str(), X_OK) != 0)
    die("batond not executable: " + batond);

  std::vector<PlacementSides> placements;
  for (const Placement& p : select_placements(wanted))
    placements.push_back(
        {p.key,
         p.key == "same" ? "same vCPU (both daemons and both clients on cpu 0)"
         : p.key == "split" ? "split (daemon A + client A on cpu 0, B on cpu 1)"
                            : "unpinned",
         p.key == "same"    ? std::array<std::vector<int>, 2>{{{0}, {0}}}
         : p.key == "split" ? std::array<std::vector<int>, 2>{{{0}, {1}}}
                            : std::array<std::vector<int>, 2>{}});

  std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M %Z", std::localtime(&now));
  std::printf("handover_bench  %s  batond %s\n", date, batond.c_str());
  std::printf(
      "ping-pong: %d hand-overs per run; free-running: %lld ms per run; %ld "
      "runs, "
      "median (by p50) shown\n",
      handovers, static_cast<long long>(duration.count()), repeats);
  std::printf(
      "FIGURES.md, OFD lock contended by 2..64 processes: with sched_yield "
      "155-225 k "
      "hand-overs/s (max wait 3-14 ms);\n  without it 16-75 k hand-overs/s "
      "(max wait up "
      "to 830 ms)\n");

  for (const PlacementSides& placement : placements) {
    ScratchDir scratch("baton-handover");
    std::string root = scratch.path() + "/root";
    Daemon a(batond, root, scratch.path() + "/a.sock", placement.cpus[0],
             scratch.path() + "/a.log", {"--pod-name", "pod-a"});
    a.wait_ready();
    Daemon b(batond, root, scratch.path() + "/b.sock", placement.cpus[1],
             scratch.path() + "/b.log", {"--pod-name", "pod-b"});
    b.wait_ready();
    RawSides raw(scratch.path() + "/raw.lock");
    BatonSides baton(a.socket(), b.socket());
    auto raw_sides = raw.sides();
    auto baton_sides = baton.sides();

    // Warm up both paths (lock files, token blocks, thread pools).
    ping_pong(raw_sides, placement.cpus, 200);
    ping_pong(baton_sides, placement.cpus, 200);

    std::vector<Summary> raw_pp, baton_pp;
    std::vector<FreeRunResult> raw_free, baton_free;
    std::array<std::uint64_t, 2> switches_before{context_switches(a.pid()),
                                                 context_switches(b.pid())};
    for (long run = 0; run < repeats; ++run) {
      raw_pp.push_back(ping_pong(raw_sides, placement.cpus, handovers).summary);
      baton_pp.push_back(
          ping_pong(baton_sides, placement.cpus, handovers).summary);
    }
    std::array<std::uint64_t, 2> switches_after{context_switches(a.pid()),
                                                context_switches(b.pid())};
    for (long run = 0; run < repeats; ++run) {
      raw_free.push_back(free_run(raw_sides, placement.cpus, duration));
      baton_free.push_back(free_run(baton_sides, placement.cpus, duration));
    }
    double daemon_switches =
        static_cast<double>((switches_after[0] - switches_before[0]) +
                            (switches_after[1] - switches_before[1])) /
        static_cast<double>(repeats * handovers);

    std::printf("\n== %s ==\n", placement.label.c_str());
    std::printf("%-44s %12s %10s %10s %10s  %s\n", "ping-pong (strict turns)",
                "hand-overs/s", "p50", "p99", "max",
                "release->grant p50 of each run");
    auto print_pp = [](const char* what, const std::vector<Summary>& runs) {
      const Summary& m = median_run(runs);
      std::string each;
      for (const auto& r : runs) {
        if (!each.empty()) each += ' ';
        each += format_us(r.p50_us);
      }
      std::printf("%-44s %12s %10s %10s %10s  %s\n", what,
                  format_rate(m.rate).c_str(), format_us(m.p50_us).c_str(),
                  format_us(m.p99_us).c_str(), format_us(m.max_us).c_str(),
                  each.c_str());
    };
    print_pp("raw OFD, 2 threads, F_OFD_SETLKW (floor)", raw_pp);
    print_pp("baton, 2 daemons on one root", baton_pp);
    const Summary& rp = median_run(raw_pp);
    const Summary& bp = median_run(baton_pp);
    std::printf(
        "baton/raw: release->grant p50 %.1fx, p99 %.1fx; hand-over rate %.2fx "
        "of raw; "
        "daemon context switches per hand-over %.1f\n",
        bp.p50_us / rp.p50_us, bp.p99_us / rp.p99_us, bp.rate / rp.rate,
        daemon_switches);

    std::printf("%-44s %12s %12s %10s %10s %10s  %s\n",
                "free-running (both loop lock+release)", "grants/s",
                "hand-overs/s", "wait p50", "wait p99", "max wait",
                "grants A/B");
    auto print_free = [](const char* what,
                         const std::vector<FreeRunResult>& runs) {
      std::vector<Summary> waits;
      for (const auto& r : runs) waits.push_back(r.wait);
      const Summary& chosen = median_run(waits);
      const FreeRunResult* m = &runs.front();
      for (const auto& r : runs)
        if (r.wait.p50_us == chosen.p50_us && r.wait.mean_us == chosen.mean_us)
          m = &r;
      std::printf(
          "%-44s %12s %12s %10s %10s %10s  %ld/%ld\n", what,
          format_rate(m->grants_per_s).c_str(),
          format_rate(m->handovers_per_s).c_str(),
          format_us(m->wait.p50_us).c_str(), format_us(m->wait.p99_us).c_str(),
          format_us(m->wait.max_us).c_str(), m->grants[0], m->grants[1]);
    };
    print_free("raw OFD, 2 threads", raw_free);
    print_free("baton, 2 daemons on one root", baton_free);
    std::printf("(batond threads after the runs: A %d, B %d)\n",
                thread_count(a.pid()), thread_count(b.pid()));
    for (std::size_t i = 0; i < 2; ++i) baton.held[i].release();
    for (auto& client : baton.clients) client.close();
    for (Daemon* d : {&a, &b}) {
      std::string log = d->read_log();
      if (std::count(log.begin(), log.end(), '\n') > 1)
        std::printf("batond log:\n%s", log.c_str());
    }
    std::fflush(stdout);
  }
  return 0;
}
