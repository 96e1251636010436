// Helpers shared by the benchmarks: CPU placement, latency summaries,
// starting and stopping batond, scratch directories. Header-only; the
// benchmarks are single files plus this.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace baton::bench {

using Clock = std::chrono::steady_clock;

[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "bench: %s\n", what.c_str());
  std::exit(1);
}

[[noreturn]] inline void die_errno(const std::string& what) {
  die(what + ": " + std::strerror(errno));
}

inline std::int64_t nanos(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

// Where client and server run. An empty CPU list means "every CPU".
struct Placement {
  std::string key;    // same, split, unpinned
  std::string label;  // for the table
  std::vector<int> client_cpus;
  std::vector<int> server_cpus;
};

inline std::vector<Placement> standard_placements() {
  return {
      {"same", "same vCPU (client cpu 0, server cpu 0)", {0}, {0}},
      {"split", "different vCPUs (client cpu 0, server cpu 1)", {0}, {1}},
      {"unpinned", "unpinned (client and server on any cpu)", {}, {}},
  };
}

inline std::vector<Placement> select_placements(const std::string& wanted) {
  std::vector<Placement> chosen;
  for (const Placement& p : standard_placements())
    if (wanted.empty() || wanted == "all" ||
        ("," + wanted + ",").find("," + p.key + ",") != std::string::npos)
      chosen.push_back(p);
  if (chosen.empty())
    die("no placement matches '" + wanted + "' (same,split,unpinned)");
  return chosen;
}

// Pins the calling thread (or, after fork, the process) to CPUS; empty:
// every online CPU.
inline void pin_to(const std::vector<int>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpus.empty()) {
    long online = ::sysconf(_SC_NPROCESSORS_ONLN);
    for (long cpu = 0; cpu < online; ++cpu)
      CPU_SET(static_cast<int>(cpu), &set);
  } else {
    for (int cpu : cpus) CPU_SET(cpu, &set);
  }
  if (::sched_setaffinity(0, sizeof set, &set) != 0)
    die_errno("sched_setaffinity");
}

inline std::string cpus_text(const std::vector<int>& cpus) {
  if (cpus.empty()) return "any";
  std::string text;
  for (int cpu : cpus) {
    if (!text.empty()) text += ',';
    text += std::to_string(cpu);
  }
  return text;
}

// Latencies of one measured run, in nanoseconds.
struct Summary {
  double p50_us = 0;
  double p99_us = 0;
  double max_us = 0;
  double mean_us = 0;
  double rate = 0;  // operations per second of wall time
  std::size_t count = 0;
};

inline Summary summarize(std::vector<std::int64_t> samples,
                         Clock::duration wall) {
  Summary s;
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) {
    auto index = static_cast<std::size_t>(
        q * static_cast<double>(samples.size() - 1) + 0.5);
    return static_cast<double>(samples[index]) / 1e3;
  };
  s.count = samples.size();
  s.p50_us = at(0.50);
  s.p99_us = at(0.99);
  s.max_us = static_cast<double>(samples.back()) / 1e3;
  double total = 0;
  for (auto v : samples) total += static_cast<double>(v);
  s.mean_us = total / static_cast<double>(samples.size()) / 1e3;
  double seconds = std::chrono::duration<double>(wall).count();
  s.rate = seconds > 0 ? static_cast<double>(samples.size()) / seconds : 0;
  return s;
}

// The run whose p50 is the median of RUNS (runs are kept whole, so p99 and
// rate belong to the same run as the p50).
inline const Summary& median_run(const std::vector<Summary>& runs) {
  std::vector<std::size_t> order(runs.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return runs[a].p50_us < runs[b].p50_us;
  });
  return runs[order[order.size() / 2]];
}

inline std::string format_us(double us) {
  char text[32];
  if (us >= 10000)
    std::snprintf(text, sizeof text, "%.1f ms", us / 1e3);
  else if (us >= 100)
    std::snprintf(text, sizeof text, "%.0f us", us);
  else
    std::snprintf(text, sizeof text, "%.1f us", us);
  return text;
}

inline std::string format_rate(double rate) {
  char text[32];
  if (rate >= 1e6)
    std::snprintf(text, sizeof text, "%.2f M/s", rate / 1e6);
  else if (rate >= 1e3)
    std::snprintf(text, sizeof text, "%.1f k/s", rate / 1e3);
  else
    std::snprintf(text, sizeof text, "%.0f /s", rate);
  return text;
}

// Voluntary + involuntary context switches of every thread of PID so far.
inline std::uint64_t context_switches(pid_t pid) {
  std::uint64_t total = 0;
  std::error_code ec;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(dir, ec)) {
    std::ifstream status(task.path() / "status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0 ||
          line.rfind("nonvoluntary_ctxt_switches:", 0) == 0)
        total +=
            std::strtoull(line.substr(line.find(':') + 1).c_str(), nullptr, 10);
    }
  }
  return total;
}

// CPU time (sum_exec_runtime) and run-queue delay of every thread of PID
// so far, in nanoseconds, from /proc/PID/task/*/schedstat.
struct SchedTimes {
  std::uint64_t cpu_ns = 0;
  std::uint64_t wait_ns = 0;
};

inline SchedTimes sched_times(pid_t pid) {
  SchedTimes total;
  std::error_code ec;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(dir, ec)) {
    std::ifstream stat(task.path() / "schedstat");
    std::uint64_t cpu = 0, wait = 0;
    if (stat >> cpu >> wait) {
      total.cpu_ns += cpu;
      total.wait_ns += wait;
    }
  }
  return total;
}

inline int thread_count(pid_t pid) {
  int count = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(
           "/proc/" + std::to_string(pid) + "/task", ec);
       it != std::filesystem::directory_iterator(); ++it)
    ++count;
  return count;
}

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it
// when this goes out of scope.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix) {
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base && *base ? base : "/tmp") + "/" + prefix + ".XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (!::mkdtemp(buffer.data())) die_errno("mkdtemp " + pattern);
    m_path = buffer.data();
  }
  // The same, under BASE (the filesystem being measured), not $TMPDIR.
  ScratchDir(const std::string& prefix, const std::string& base) {
    std::string pattern = base + "/" + prefix + ".XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (!::mkdtemp(buffer.data())) die_errno("mkdtemp " + pattern);
    m_path = buffer.data();
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return m_path; }

 private:
  std::string m_path;
};

// "ext4 on /dev/vda at /" for PATH: the mount that holds it (the longest
// mount point that prefixes its real path), from /proc/self/mounts.
inline std::string filesystem_of(const std::string& path) {
  std::error_code ec;
  std::string real = std::filesystem::canonical(path, ec).string();
  if (ec) real = path;
  std::ifstream mounts("/proc/self/mounts");
  std::string device, point, type, rest;
  std::string best_device, best_point, best_type;
  while (mounts >> device >> point >> type && std::getline(mounts, rest)) {
    bool under =
        point == "/" || real == point || real.rfind(point + "/", 0) == 0;
    if (under && point.size() >= best_point.size()) {
      best_device = device;
      best_point = point;
      best_type = type;
    }
  }
  if (best_type.empty()) return "unknown filesystem";
  return best_type + " on " + best_device + " at " + best_point;
}

// Whether PATH is on a network filesystem, as batond judges its root
// (it then reads its records past the page cache).
inline bool is_network_filesystem(const std::string& path) {
  const std::string type = filesystem_of(path);
  for (const char* prefix : {"nfs", "fuse", "ceph", "cifs", "smb", "9p", "lustre", "gpfs"})
    if (type.rfind(prefix, 0) == 0) return true;
  return false;
}

// A batond child process, pinned to CPUS before exec (its threads inherit
// the mask), stopped with SIGTERM when this goes out of scope.
class Daemon {
 public:
  Daemon(const std::string& batond, const std::string& root,
         const std::string& socket, const std::vector<int>& cpus,
         const std::string& log_path,
         const std::vector<std::string>& extra = {})
      : m_socket(socket) {
    std::filesystem::create_directories(root);
    std::vector<std::string> args = {
        batond, "--root",      root,   "--socket",
        socket, "--log-level", "warn", "--allow-local-locks"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    m_pid = ::fork();
    if (m_pid < 0) die_errno("fork");
    if (m_pid == 0) {
      pin_to(cpus);
      int log = ::open(log_path.c_str(),
                       O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (log >= 0) {
        ::dup2(log, STDOUT_FILENO);
        ::dup2(log, STDERR_FILENO);
      }
      ::execv(argv[0], argv.data());
      std::fprintf(stderr, "bench: exec %s: %s\n", argv[0],
                   std::strerror(errno));
      ::_exit(127);
    }
    m_log = log_path;
  }
  ~Daemon() { stop(); }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  pid_t pid() const { return m_pid; }
  const std::string& socket() const { return m_socket; }

  // Waits (bounded) until the socket accepts connections.
  void wait_ready(
      std::chrono::milliseconds limit = std::chrono::milliseconds(10000)) {
    auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(m_pid, &status, WNOHANG) == m_pid) {
        m_pid = -1;
        die("batond exited during start-up; its log: " + read_log());
      }
      struct stat st {};
      if (::stat(m_socket.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return;
      ::usleep(2000);
    }
    die("batond did not create " + m_socket +
        " in time; its log: " + read_log());
  }

  std::string read_log() const {
    std::ifstream in(m_log);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  void stop() {
    if (m_pid <= 0) return;
    ::kill(m_pid, SIGTERM);
    int status = 0;
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (::waitpid(m_pid, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        ::kill(m_pid, SIGKILL);
        ::waitpid(m_pid, &status, 0);
        break;
      }
      ::usleep(1000);
    }
    m_pid = -1;
  }

 private:
  pid_t m_pid = -1;
  std::string m_socket;
  std::string m_log;
};

// Sends SIGTERM to PID when the bench exits through std::exit (die()),
// which skips the destructors that would stop its daemons. Up to 8 pids.
inline void stop_at_exit(pid_t pid) {
  static pid_t pids[8] = {};
  static int count = 0;
  if (count == 0)
    std::atexit([] {
      // Only children not reaped yet: a reaped pid may be someone else's.
      for (int i = 0; i < count; ++i)
        if (pids[i] > 0 && ::waitpid(pids[i], nullptr, WNOHANG) == 0)
          ::kill(pids[i], SIGTERM);
    });
  if (count < 8) pids[count++] = pid;
}

// "--name value" or "--name=value" from ARGV, else FALLBACK.
inline std::string option(int argc, char** argv, const std::string& name,
                          const std::string& fallback) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == name && i + 1 < argc) return argv[i + 1];
    if (arg.rfind(name + "=", 0) == 0) return arg.substr(name.size() + 1);
  }
  return fallback;
}

inline bool has_flag(int argc, char** argv, const std::string& name) {
  for (int i = 1; i < argc; ++i)
    if (argv[i] == name) return true;
  return false;
}

inline long number_option(int argc, char** argv, const std::string& name,
                          long fallback) {
  std::string text = option(argc, argv, name, "");
  if (text.empty()) return fallback;
  char* end = nullptr;
  long value = std::strtol(text.c_str(), &end, 10);
  if (*end != '\0' || value <= 0)
    die("bad value for " + name + ": '" + text + "'");
  return value;
}

}  // namespace baton::bench
