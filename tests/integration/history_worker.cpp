// A client that contends for one exclusive lock and leaves a history the
// tests check (tests/support/history_checker.hpp):
//
//   history_worker SOCKET LOCK ITERATIONS LOG WORKER MODE COUNTER [GO_FILE]
//
// Each round: lock LOCK (exclusive) through libbaton on SOCKET; append
// "enter WORKER TOKEN NS" to LOG; read-modify-write the decimal counter in
// COUNTER (pread, a little work, pwrite of the value plus one); append
// "exit WORKER TOKEN NS"; release. Every line is one write(2) on an O_APPEND
// descriptor; NS is CLOCK_MONOTONIC. MODE "count" runs ITERATIONS rounds;
// "for-ms" runs rounds for ITERATIONS milliseconds; "unlocked" runs
// ITERATIONS rounds without taking the lock (token: the round number), the
// negative control that shows the checks catch overlaps. With GO_FILE, the
// worker first connects, then waits (up to 10 s) for GO_FILE to exist, so
// that all workers start contending together.
//
// Exit status: 0 done; 2 usage; 3 a lock request failed or the lock was
// lost; 4 an I/O error on LOG or COUNTER. The reason goes to stderr.
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "baton/client.hpp"

namespace {

constexpr int k_exit_usage = 2;
constexpr int k_exit_lock = 3;
constexpr int k_exit_io = 4;
constexpr std::size_t k_counter_width = 20;

std::uint64_t monotonic_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1000000000u +
         static_cast<std::uint64_t>(now.tv_nsec);
}

bool write_line(int fd, const std::string& line) {
  ssize_t n;
  do {
    n = ::write(fd, line.data(), line.size());
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(line.size());
}

// Reads the counter, works a little, writes it back plus one: a lost update
// shows as a final count below the number of rounds.
bool increment(int fd) {
  char text[k_counter_width + 1] = {};
  ssize_t n = ::pread(fd, text, k_counter_width, 0);
  if (n < 0) return false;
  unsigned long long value = n == 0 ? 0 : std::strtoull(text, nullptr, 10);
  // Widen the window between read and write, as a real job's work would.
  volatile unsigned sink = 0;
  for (unsigned i = 0; i < 20000; ++i) sink = sink + i;
  std::snprintf(text, sizeof text, "%0*llu", static_cast<int>(k_counter_width),
                value + 1);
  return ::pwrite(fd, text, k_counter_width, 0) ==
         static_cast<ssize_t>(k_counter_width);
}

bool wait_for_file(const char* path) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(10);
  struct stat info {};
  while (::stat(path, &info) != 0) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8 && argc != 9) {
    std::fprintf(
        stderr,
        "usage: history_worker SOCKET LOCK ITERATIONS LOG WORKER MODE COUNTER "
        "[GO_FILE]\n");
    return k_exit_usage;
  }
  const std::string socket = argv[1];
  const std::string lock_name = argv[2];
  const long iterations = std::strtol(argv[3], nullptr, 10);
  const char* log_path = argv[4];
  const std::string worker = argv[5];
  const std::string mode = argv[6];
  const char* counter_path = argv[7];
  const char* go_file = argc == 9 ? argv[8] : nullptr;
  const bool locked = mode != "unlocked";
  if (iterations <= 0 || (mode != "count" && mode != "for-ms" && locked)) {
    std::fprintf(
        stderr,
        "history_worker: bad ITERATIONS or MODE (count|for-ms|unlocked)\n");
    return k_exit_usage;
  }

  int log_fd =
      ::open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int counter_fd = ::open(counter_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (log_fd < 0 || counter_fd < 0) {
    std::fprintf(stderr, "history_worker %s: open: %s\n", worker.c_str(),
                 std::strerror(errno));
    return k_exit_io;
  }

  baton::Client client;
  baton::ClientOptions options;
  options.socket_path = socket;
  options.connect_timeout = std::chrono::seconds(10);
  std::error_code ec;
  client.connect(options, ec);
  if (ec) {
    std::fprintf(stderr, "history_worker %s: connect %s: %s\n", worker.c_str(),
                 socket.c_str(), ec.message().c_str());
    return k_exit_lock;
  }
  if (go_file && !wait_for_file(go_file)) {
    std::fprintf(stderr, "history_worker %s: %s never appeared\n",
                 worker.c_str(), go_file);
    return k_exit_usage;
  }

  const auto end =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(iterations);
  for (long round = 0;; ++round) {
    if (mode == "for-ms" ? std::chrono::steady_clock::now() >= end
                         : round >= iterations)
      break;
    baton::Lock lock;
    if (locked) lock = client.lock(lock_name, {}, ec);
    if (ec) {
      std::fprintf(stderr, "history_worker %s: lock '%s' (round %ld): %s\n",
                   worker.c_str(), lock_name.c_str(), round,
                   ec.message().c_str());
      return k_exit_lock;
    }
    const std::string token = std::to_string(locked ? lock.token() : round + 1);
    if (!write_line(log_fd, "enter " + worker + " " + token + " " +
                                std::to_string(monotonic_ns()) + "\n") ||
        !increment(counter_fd) ||
        !write_line(log_fd, "exit " + worker + " " + token + " " +
                                std::to_string(monotonic_ns()) + "\n")) {
      std::fprintf(stderr, "history_worker %s: write: %s\n", worker.c_str(),
                   std::strerror(errno));
      return k_exit_io;
    }
    if (locked && lock.lost()) {
      std::fprintf(stderr, "history_worker %s: lock '%s' token %s lost: %s\n",
                   worker.c_str(), lock_name.c_str(), token.c_str(),
                   lock.lost_reason().message().c_str());
      return k_exit_lock;
    }
    lock.release();
  }
  client.close();
  return 0;
}
