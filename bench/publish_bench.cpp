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
// too); 1 MiB. Within a run the two sides alternate publish by publish
// (ABBA order), so both see the same disk and the same neighbours. Each run
// gives a ratio baton/raw; the median of the runs' ratios is the figure.
// Use --dir to choose the filesystem (not tmpfs: fsync is free there).
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cinttypes>
#include <ctime>
#include <random>

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
    if (::renameat2(m_dir_fd, tmp.c_str(), m_dir_fd, leaf.c_str(),
                    no_replace ? RENAME_NOREPLACE : 0) != 0)
      die_errno("rename into " + m_dir + "/" + leaf);
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
  double ratio_p50 = 0;
  double ratio_mean = 0;
};

// One run of VARIANT: WARMUP + ITERATIONS publishes per side, alternating
// in ABBA order; each side's wall time counts only its own publishes.
Run run_variant(const Variant& variant, long warmup, int run_number,
                RawPublisher& raw, BatonPublisher& baton,
                const std::string& baton_dir, std::uint64_t& next_token,
                const std::string& data) {
  Steps raw_steps(RawPublisher::k_steps.size());
  Steps baton_steps(BatonPublisher::k_steps.size());
  Clock::duration raw_wall{}, baton_wall{};
  std::vector<std::int64_t> steps;
  for (long i = 0; i < warmup + variant.iterations; ++i) {
    const bool timed = i >= warmup;
    // Fresh names for create-only (each run its own), else one path.
    const std::string leaf =
        variant.no_replace ? variant.key + "." + std::to_string(run_number) +
                                 "." + std::to_string(i)
                           : variant.key + ".dat";
    auto do_raw = [&] {
      auto start = Clock::now();
      raw.publish(leaf, data, variant.no_replace, steps);
      auto took = Clock::now() - start;
      if (!timed) return;
      raw_wall += took;
      raw_steps.total.push_back(nanos(took));
      for (std::size_t s = 0; s < steps.size(); ++s)
        raw_steps.step[s].push_back(steps[s]);
    };
    auto do_baton = [&] {
      PublishOptions options;
      options.no_replace = variant.no_replace;
      if (variant.token) options.token = ++next_token;
      auto start = Clock::now();
      baton.publish(baton_dir + "/" + leaf, data, options, steps);
      auto took = Clock::now() - start;
      if (!timed) return;
      baton_wall += took;
      baton_steps.total.push_back(nanos(took));
      for (std::size_t s = 0; s < steps.size(); ++s)
        baton_steps.step[s].push_back(steps[s]);
    };
    // ABBA: raw first in iterations 0 and 3 (mod 4), baton in 1 and 2.
    if (i % 4 == 0 || i % 4 == 3) {
      do_raw();
      do_baton();
    } else {
      do_baton();
      do_raw();
    }
  }
  Run run;
  run.raw = finish(raw_steps, raw_wall);
  run.baton = finish(baton_steps, baton_wall);
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
        "MiB does a\nquarter). Exits 1 if anything fails.\n");
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
  Daemon daemon(batond, root, scratch.path() + "/batond.sock", {},
                scratch.path() + "/batond.log");
  daemon.wait_ready();
  std::filesystem::create_directories(root + "/raw");
  std::filesystem::create_directories(root + "/baton");
  RawPublisher raw(root + "/raw");
  BatonPublisher baton(daemon.socket());

  utsname name{};
  ::uname(&name);
  std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M %Z", std::localtime(&now));
  std::printf("publish_bench  %s  %s %s, %ld cpus\n", date, name.sysname,
              name.release, ::sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("filesystem: %s (%s)\n", filesystem_of(root).c_str(),
              root.c_str());
  std::printf("batond: %s, unpinned\n", batond.c_str());
  std::printf(
      "%ld warm-up + N timed publishes per side per run, alternating ABBA; "
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
      runs.push_back(run_variant(variant, warmup, static_cast<int>(r), raw,
                                 baton, "baton", next_token, data));
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
    std::printf("baton - raw at p50: %+.0f us per publish\n",
                shown->baton.summary.p50_us - shown->raw.summary.p50_us);
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
