// The lock service end to end: real batond processes sharing one root (each
// a "pod"), real clients (the baton CLI, libbaton in this process and in
// history_worker), real kills. Every wait is a bounded poll for a condition.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "baton/client.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/history_checker.hpp"
#include "tests/support/lock_probe.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/wait_until.hpp"

namespace baton::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const std::string k_history_worker = BATON_TEST_HISTORY_WORKER;

long long millis_since(Clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
}

bool file_exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

void touch(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + path);
  ::close(fd);
}

// The pid a command wrote with `echo $$ > PATH`, once the whole line is there.
pid_t wait_for_pid_file(const std::string& path, milliseconds timeout = 5s) {
  pid_t pid = -1;
  wait_until(
      [&] {
        std::string text = read_text_file(path);
        if (text.empty() || text.back() != '\n') return false;
        pid = static_cast<pid_t>(std::stol(text));
        return true;
      },
      timeout);
  return pid;
}

// A `baton` process and where its output went.
struct CliRun {
  Process process;
  std::string out_path;
  std::string err_path;
  std::string out() const { return read_text_file(out_path); }
  std::string err() const { return read_text_file(err_path); }
};

struct CliResult {
  std::optional<ExitStatus> status;  // nullopt: still running at the bound
  std::string out;
  std::string err;
  long long took_ms = 0;
  int code() const { return status ? status->shell_code() : -1; }
  std::string describe() const {
    return (status ? status->describe() : std::string("still running")) +
           " after " + std::to_string(took_ms) + " ms; stdout: '" + out +
           "'; stderr: '" + err + "'";
  }
};

class LockService : public ::testing::Test {
 protected:
  // Every daemon still running must stop cleanly: SIGTERM, exit 0 (under
  // ASan, a leak or memory error found at exit fails the test here).
  void TearDown() override {
    for (DaemonProcess& daemon : m_daemons) {
      if (!daemon.running()) continue;
      std::optional<ExitStatus> status = daemon.stop();
      EXPECT_TRUE(status && status->exited() && status->code() == 0)
          << "batond pod " << daemon.pod()
          << " on SIGTERM at the end of the test: "
          << (status ? status->describe()
                     : std::string("still running after 5 s"));
    }
    if (!HasFailure()) return;
    for (DaemonProcess& daemon : m_daemons) {
      std::string log = daemon.log();
      if (log.size() > 6000) log = "...\n" + log.substr(log.size() - 6000);
      std::fprintf(stderr, "---- batond pod %s (%s) log ----\n%s\n",
                   daemon.pod().c_str(), daemon.socket().c_str(), log.c_str());
    }
  }

  DaemonConfig config_for(const std::string& pod,
                          std::vector<std::string> flags = {}) {
    DaemonConfig config;
    config.root = m_root;
    config.socket = m_dir.file(pod + ".sock");
    config.pod = pod;
    config.node = "node-" + pod;
    config.extra_flags = std::move(flags);
    return config;
  }

  // Starts a daemon (a pod) on the shared root; throws if it is not ready.
  DaemonProcess& start_daemon(const std::string& pod,
                              std::vector<std::string> flags = {}) {
    DaemonProcess& daemon =
        m_daemons.emplace_back(config_for(pod, std::move(flags)));
    if (std::string error = daemon.start(); !error.empty())
      throw std::runtime_error(error);
    return daemon;
  }

  // Starts `baton --socket SOCKET ARGS...`.
  CliRun start_cli(const std::string& socket, std::vector<std::string> args) {
    std::string tag = m_dir.file("cli-" + std::to_string(++m_cli_runs));
    CliRun run{{}, tag + ".out", tag + ".err"};
    ProcessOptions options;
    options.argv = {baton_cli_path(), "--socket", socket};
    options.argv.insert(options.argv.end(), args.begin(), args.end());
    options.env = clean_environment();
    options.out = Output::file(run.out_path);
    options.err = Output::file(run.err_path);
    run.process = Process::spawn(options);
    return run;
  }

  // Runs `baton --socket SOCKET ARGS...` to the end (at most TIMEOUT).
  CliResult run_cli(const std::string& socket, std::vector<std::string> args,
                    milliseconds timeout = 10s) {
    auto start = Clock::now();
    CliRun run = start_cli(socket, std::move(args));
    CliResult result;
    result.status = run.process.wait(timeout);
    result.took_ms = millis_since(start);
    result.out = run.out();
    result.err = run.err();
    return result;
  }

  // `baton run --lock NAME [OPTIONS] -- sh -c 'echo $$ > MARKER; exec sleep
  // 30'`: MARKER appears (with the pid of the sleep) once the lock is held.
  CliRun hold_with_cli(const DaemonProcess& daemon, const std::string& name,
                       const std::string& marker,
                       std::vector<std::string> options = {},
                       const std::string& before = "") {
    std::vector<std::string> args = {"run", "--lock", name};
    args.insert(args.end(), options.begin(), options.end());
    args.insert(args.end(),
                {"--", "sh", "-c",
                 before + "echo $$ > '" + marker + "'; exec sleep 30"});
    return start_cli(daemon.socket(), args);
  }

  static Client connect(const DaemonProcess& daemon) {
    ClientOptions options;
    options.socket_path = daemon.socket();
    options.connect_timeout = 5s;
    options.request_timeout = 10s;
    Client client;
    client.connect(options);
    return client;
  }

  // The local waiters DAEMON reports for NAME (pids of the clients).
  static std::vector<int> waiters_on(const DaemonProcess& daemon,
                                     const std::string& name) {
    Client client = connect(daemon);
    Status status = client.status();
    for (const LockStatus& lock : status.locks) {
      if (lock.name != name) continue;
      std::vector<int> pids;
      for (const Holder& waiter : lock.waiters) pids.push_back(waiter.pid);
      return pids;
    }
    return {};
  }

  static bool has_waiters(const DaemonProcess& daemon, const std::string& name,
                          std::size_t count) {
    return waiters_on(daemon, name).size() == count;
  }

  // True when NAME can be taken at once through DAEMON (and is let go again).
  static bool lock_is_free(const DaemonProcess& daemon, const std::string& name,
                           LockMode mode = LockMode::exclusive) {
    Client client = connect(daemon);
    std::error_code ec;
    Lock lock = client.try_lock(name, mode, ec);
    return !ec;
  }

  std::string lock_file(const std::string& name) const {
    std::string file = name;
    std::replace(file.begin(), file.end(), '/', '+');
    return m_root + "/.baton/locks/" + file + ".lock";
  }

  Process start_worker(const DaemonProcess& daemon, const std::string& lock,
                       const std::string& worker, const std::string& mode,
                       long amount, const std::string& log,
                       const std::string& counter, const std::string& go) {
    ProcessOptions options;
    options.argv = {k_history_worker,
                    daemon.socket(),
                    lock,
                    std::to_string(amount),
                    log,
                    worker,
                    mode,
                    counter,
                    go};
    options.env = clean_environment();
    options.err = Output::file(m_dir.file("worker-" + worker + ".err"));
    return Process::spawn(options);
  }

  TempDir m_dir{"baton-it"};
  std::string m_root = m_dir.make_dir("root");
  std::deque<DaemonProcess> m_daemons;  // a deque: references stay valid
  int m_cli_runs = 0;
};

// Twelve libbaton clients in three pods take one exclusive lock in turn and
// log every entry and exit: the history shows no two holders ever overlapped,
// tokens only grew, and no read-modify-write of the shared counter was lost.
TEST_F(LockService, MutualExclusionAcrossPodsHoldsUnderContention) {
  constexpr int k_workers_per_pod = 4;
  constexpr long k_iterations = 150;
  const std::vector<std::string> pods = {"a", "b", "c"};
  std::vector<DaemonProcess*> daemons;
  for (const std::string& pod : pods) daemons.push_back(&start_daemon(pod));

  const std::string log = m_dir.file("history.log");
  const std::string counter = m_root + "/counter";
  const std::string go = m_dir.file("go");
  std::vector<std::pair<std::string, Process>> workers;
  for (std::size_t p = 0; p < pods.size(); ++p)
    for (int w = 0; w < k_workers_per_pod; ++w) {
      std::string id = pods[p] + std::to_string(w);
      workers.emplace_back(
          id, start_worker(*daemons[p], "shared/counter", id, "count",
                           k_iterations, log, counter, go));
    }
  auto start = Clock::now();
  touch(go);
  for (auto& [id, worker] : workers) {
    auto status = worker.wait(40s);
    ASSERT_TRUE(status) << "worker " << id << " still running after 40 s";
    EXPECT_EQ(status->code(), 0)
        << "worker " << id << ": " << status->describe() << ": "
        << read_text_file(m_dir.file("worker-" + id + ".err"));
  }
  const auto total =
      static_cast<std::size_t>(pods.size() * k_workers_per_pod * k_iterations);
  std::printf("%zu exclusive acquisitions across %zu pods in %lld ms\n", total,
              pods.size(), millis_since(start));

  HistoryReport report = check_history(
      read_text_file(log),
      {total, static_cast<std::size_t>(k_iterations), workers.size()});
  EXPECT_TRUE(report.ok()) << report.error;
  std::printf("the lock changed hands between workers %zu times\n",
              report.switches);
  // The workers really contended: they did not just run one after another.
  EXPECT_GE(report.switches, total / 10);
  std::string count = read_text_file(counter);
  ASSERT_FALSE(count.empty());
  EXPECT_EQ(std::stoull(count), total) << "lost updates of the shared counter";
}

// The negative control of the test above: the same workers without the lock
// overlap, and the history and the counter show it. Without this, a passing
// mutual-exclusion test could mean checks that cannot fail.
TEST_F(LockService, UnlockedWorkersAreCaughtOverlapping) {
  constexpr int k_workers = 4;
  constexpr long k_iterations = 2000;
  DaemonProcess& a = start_daemon("a");
  const std::string log = m_dir.file("history.log");
  const std::string counter = m_root + "/counter";
  const std::string go = m_dir.file("go");
  std::vector<Process> workers;
  for (int w = 0; w < k_workers; ++w)
    workers.push_back(start_worker(a, "unused", "u" + std::to_string(w),
                                   "unlocked", k_iterations, log, counter, go));
  touch(go);
  for (Process& worker : workers) {
    auto status = worker.wait(30s);
    ASSERT_TRUE(status);
    ASSERT_EQ(status->code(), 0) << status->describe();
  }
  HistoryReport report = check_history(read_text_file(log));
  EXPECT_FALSE(report.ok())
      << "no overlap found among " << k_workers << " unlocked workers";
  std::printf("unlocked workers: %s\n", report.error.c_str());
  EXPECT_LT(std::stoull(read_text_file(counter)),
            static_cast<unsigned long long>(k_workers * k_iterations))
      << "no lost update among unlocked workers";
}

// A daemon that dies loses nothing of the fencing: the token a restarted
// daemon, or another pod, hands out is greater than every earlier one.
TEST_F(LockService, TokensGrowStrictlyAcrossDaemonRestarts) {
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b");
  std::uint64_t previous = 0;
  std::string tokens;
  auto take = [&](DaemonProcess& daemon, const char* step) {
    Client client = connect(daemon);
    Lock lock = client.lock("fenced", {LockMode::exclusive, 5000ms, {}});
    EXPECT_GT(lock.token(), previous) << step;
    previous = lock.token();
    tokens += std::to_string(previous) + " (" + step + ")\n";
    return std::pair{std::move(client), std::move(lock)};
  };

  auto first = take(a, "first lock through a");
  Lock& held_a = first.second;
  a.kill9();  // while held
  EXPECT_TRUE(wait_until([&] { return held_a.lost(); }, 2s))
      << "a's holder never saw the loss";
  EXPECT_EQ(held_a.lost_reason(), errc::connection_lost);
  ASSERT_EQ(a.start(), "");
  take(a, "after a was killed and restarted");
  take(b, "through b");
  {
    auto held_b = take(b, "through b again");
    b.kill9();  // while held
  }
  ASSERT_EQ(b.start(), "");
  take(b, "after b was killed and restarted");
  take(a, "back through a");
  std::printf("tokens:\n%s", tokens.c_str());
}

// A holder killed with SIGKILL never says goodbye; its connection closes and
// a waiter in another pod gets the lock at once.
TEST_F(LockService, KillNineOfHolderReleasesAtOnce) {
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b");
  const std::string held_marker = m_dir.file("held");
  const std::string waiter_marker = m_dir.file("waiter");
  CliRun holder = hold_with_cli(a, "x", held_marker);
  ASSERT_GT(wait_for_pid_file(held_marker), 0) << holder.err();
  CliRun waiter = hold_with_cli(b, "x", waiter_marker);
  ASSERT_TRUE(wait_until([&] { return has_waiters(b, "x", 1); }, 5s))
      << waiter.err();

  auto killed = Clock::now();
  ASSERT_TRUE(holder.process.kill(SIGKILL));
  ASSERT_TRUE(wait_until([&] { return file_exists(waiter_marker); }, 2s))
      << "the waiter in pod b did not get the lock within 2 s of the holder's "
         "SIGKILL; "
      << waiter.err();
  std::printf(
      "waiter in pod b got the lock %lld ms after the holder's SIGKILL\n",
      millis_since(killed));
  EXPECT_EQ(holder.process.wait(2s)->signal(), SIGKILL);
}

// SIGKILL of `baton run` itself: CMD dies with it (PR_SET_PDEATHSIG), so no
// command ever runs on without the lock, and the lock is free.
TEST_F(LockService, KillNineOfWrapperKillsCommandAndReleases) {
  DaemonProcess& a = start_daemon("a");
  const std::string pid_file = m_dir.file("pid");
  CliRun holder = hold_with_cli(a, "x", pid_file);
  pid_t command = wait_for_pid_file(pid_file);
  ASSERT_GT(command, 0) << holder.err();
  ASSERT_TRUE(process_alive(command));
  EXPECT_FALSE(lock_is_free(a, "x"));

  ExitStatus status = holder.process.kill_and_wait();
  EXPECT_EQ(status.signal(), SIGKILL);
  EXPECT_TRUE(wait_until([&] { return !process_alive(command); }, 2s))
      << "CMD (pid " << command << ") outlived its baton run";
  EXPECT_TRUE(wait_until([&] { return lock_is_free(a, "x"); }, 2s));
}

// The holder's daemon dies: the kernel drops its OFD lock, so a waiter in
// another pod goes on; the holder's `baton run` sees the connection close,
// stops CMD and exits 74.
TEST_F(LockService, KillNineOfDaemonReleasesItsLocks) {
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b");
  const std::string held_marker = m_dir.file("held");
  const std::string waiter_marker = m_dir.file("waiter");
  CliRun holder = hold_with_cli(a, "x", held_marker, {"--kill-after", "1"});
  pid_t command = wait_for_pid_file(held_marker);
  ASSERT_GT(command, 0) << holder.err();
  CliRun waiter = hold_with_cli(b, "x", waiter_marker);
  ASSERT_TRUE(wait_until([&] { return has_waiters(b, "x", 1); }, 5s))
      << waiter.err();

  a.kill9();
  EXPECT_TRUE(wait_until([&] { return file_exists(waiter_marker); }, 2s))
      << "the waiter in pod b did not get the lock within 2 s of daemon a's "
         "death";
  auto status = holder.process.wait(3s);
  ASSERT_TRUE(status) << "baton run did not exit after its daemon died";
  EXPECT_EQ(status->code(), 74) << status->describe() << "; " << holder.err();
  EXPECT_NE(holder.err().find("lost"), std::string::npos) << holder.err();
  EXPECT_TRUE(wait_until([&] { return !process_alive(command); }, 2s))
      << "CMD (pid " << command << ") still runs after its lock was lost";
}

// -w gives up after its timeout, -n at once, both with 75 unless -E says
// otherwise; CMD never runs.
TEST_F(LockService, TimeoutExpiresWithBusy) {
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b");
  Client holder_client = connect(a);
  Lock held = holder_client.lock("busy");
  const std::string ran = m_dir.file("ran");
  const std::vector<std::string> command = {"--", "touch", ran};
  auto run = [&](const DaemonProcess& daemon,
                 std::vector<std::string> options) {
    std::vector<std::string> args = {"run", "--lock", "busy"};
    args.insert(args.end(), options.begin(), options.end());
    args.insert(args.end(), command.begin(), command.end());
    return run_cli(daemon.socket(), args);
  };

  CliResult timed = run(b, {"-w", "0.3"});
  EXPECT_EQ(timed.code(), 75) << timed.describe();
  EXPECT_GE(timed.took_ms, 300) << timed.describe();
  EXPECT_LT(timed.took_ms, 3000) << timed.describe();
  EXPECT_NE(timed.err.find("timed out"), std::string::npos) << timed.err;

  CliResult no_wait = run(b, {"-n"});
  EXPECT_EQ(no_wait.code(), 75) << no_wait.describe();
  EXPECT_LT(no_wait.took_ms, 1000) << no_wait.describe();
  EXPECT_NE(no_wait.err.find("busy"), std::string::npos) << no_wait.err;

  CliResult local_no_wait = run(a, {"-n"});  // held by a local client this time
  EXPECT_EQ(local_no_wait.code(), 75) << local_no_wait.describe();

  CliResult no_wait_e = run(b, {"-n", "-E", "42"});
  EXPECT_EQ(no_wait_e.code(), 42) << no_wait_e.describe();
  CliResult timed_e = run(a, {"-w", "0.3", "-E", "42"});
  EXPECT_EQ(timed_e.code(), 42) << timed_e.describe();
  EXPECT_GE(timed_e.took_ms, 300) << timed_e.describe();

  EXPECT_FALSE(file_exists(ran)) << "CMD ran without the lock";
  held.release();
  CliResult free = run(b, {"-n"});
  EXPECT_EQ(free.code(), 0) << free.describe();
  EXPECT_TRUE(file_exists(ran));
}

// A waiter killed while queued leaves the queue: status no longer lists it,
// and the waiters behind it are granted in their order.
TEST_F(LockService, DisconnectWhileWaitingLeavesNoTrace) {
  DaemonProcess& a = start_daemon("a");
  Client holder_client = connect(a);
  Lock held = holder_client.lock("queue");
  const std::string order = m_dir.file("order");
  auto waiter = [&](const std::string& name) {
    return start_cli(a.socket(), {"run", "--lock", "queue", "--", "sh", "-c",
                                  "echo " + name + " >> '" + order + "'"});
  };
  CliRun doomed = waiter("doomed");
  ASSERT_TRUE(wait_until([&] { return has_waiters(a, "queue", 1); }, 5s));
  CliRun second = waiter("second");
  ASSERT_TRUE(wait_until([&] { return has_waiters(a, "queue", 2); }, 5s));
  CliRun third = waiter("third");
  ASSERT_TRUE(wait_until([&] { return has_waiters(a, "queue", 3); }, 5s));
  EXPECT_EQ(waiters_on(a, "queue"),
            (std::vector<int>{doomed.process.pid(), second.process.pid(),
                              third.process.pid()}));

  doomed.process.kill_and_wait();
  EXPECT_TRUE(wait_until(
      [&] {
        return waiters_on(a, "queue") ==
               std::vector<int>{second.process.pid(), third.process.pid()};
      },
      2s))
      << "the killed waiter is still queued";

  held.release();
  for (CliRun* run : {&second, &third}) {
    auto status = run->process.wait(5s);
    ASSERT_TRUE(status);
    EXPECT_EQ(status->code(), 0) << status->describe() << "; " << run->err();
  }
  EXPECT_EQ(read_text_file(order), "second\nthird\n");
  EXPECT_TRUE(wait_until([&] { return connect(a).status().locks.empty(); }, 2s))
      << connect(a).status().json;

  // Across pods: pod a's only waiter, whose daemon is blocked in the kernel's
  // lock wait for pod b's holder, is killed. Pod a must stop waiting and must
  // not keep the file lock for nobody once b lets go.
  DaemonProcess& b = start_daemon("b");
  Client remote_client = connect(b);
  Lock remote = remote_client.lock("remote");
  const std::string ran = m_dir.file("ran");
  CliRun parked =
      start_cli(a.socket(), {"run", "--lock", "remote", "--", "touch", ran});
  ASSERT_TRUE(wait_until([&] { return has_waiters(a, "remote", 1); }, 5s))
      << parked.err();
  parked.process.kill_and_wait();
  // a's status still lists b's hold (local: false), but no waiter of its own.
  EXPECT_TRUE(wait_until([&] { return waiters_on(a, "remote").empty(); }, 2s))
      << connect(a).status().json;
  remote.release();
  EXPECT_TRUE(wait_until([&] { return lock_is_free(b, "remote"); }, 2s))
      << "pod a kept the lock after its waiter had gone: "
      << connect(a).status().json;
  EXPECT_FALSE(file_exists(ran));
}

// Shared holders in two pods hold at once; an exclusive request (in either
// pod) waits until the last of them, in whichever pod, lets go.
TEST_F(LockService, SharedHoldersCoexistAndExcludeWriters) {
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b");
  const LockOptions shared{LockMode::shared, 5000ms, {}};
  std::vector<Client> clients;
  std::vector<Lock> readers;
  for (DaemonProcess* daemon : {&a, &a, &b, &b}) {
    clients.push_back(connect(*daemon));
    readers.push_back(clients.back().lock("reports", shared));
    EXPECT_EQ(readers.back().token(), 0u);
  }
  EXPECT_FALSE(lock_is_free(a, "reports"));
  EXPECT_FALSE(lock_is_free(b, "reports"));
  EXPECT_TRUE(lock_is_free(b, "reports", LockMode::shared));

  const std::string wrote = m_dir.file("wrote");
  CliRun writer = start_cli(
      b.socket(), {"run", "-x", "--lock", "reports", "--", "touch", wrote});
  ASSERT_TRUE(wait_until([&] { return has_waiters(b, "reports", 1); }, 5s))
      << writer.err();
  // Release b's readers and one of a's: a's last reader still excludes b's
  // writer, across pods.
  for (int i : {2, 3, 0}) readers[i].release();
  EXPECT_FALSE(wait_until([&] { return file_exists(wrote); }, 300ms))
      << "the writer got the lock while a shared holder in pod a still held it";
  readers[1].release();
  EXPECT_TRUE(wait_until([&] { return file_exists(wrote); }, 2s))
      << "the writer did not get the lock once every reader had gone";
  auto status = writer.process.wait(5s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code(), 0) << writer.err();
}

// Readers in one pod whose holds overlap would keep its shared file lock
// forever and starve a writer in another pod. After --max-local-handovers
// readers joined while the writer waited, a new reader waits: the writer
// goes as soon as the admitted readers are done, then that reader.
TEST_F(LockService, OverlappingReadersLetAWriterInAnotherPodIn) {
  DaemonProcess& a = start_daemon("a", {"--max-local-handovers", "2"});
  DaemonProcess& b = start_daemon("b");
  const LockOptions shared{LockMode::shared, 10000ms, {}};
  constexpr int k_readers = 10;
  std::vector<Client> clients;
  for (int i = 0; i < k_readers; ++i) clients.push_back(connect(a));
  std::vector<Lock> readers(k_readers);
  readers[0] = clients[0].lock("reports", shared);

  const std::string wrote = m_dir.file("wrote");
  CliRun writer = start_cli(
      b.socket(), {"run", "-x", "--lock", "reports", "--", "touch", wrote});
  ASSERT_TRUE(wait_until([&] { return has_waiters(b, "reports", 1); }, 5s)) << writer.err();
  ASSERT_TRUE(wait_until([&] { return wait_is_advertised(lock_file("reports")); }, 5s))
      << "pod b never advertised its wait on the lock file";

  // Each reader arrives while the one before still reads: it is either
  // granted or queued behind the writer in another pod.
  int admitted = 1;
  std::future<Lock> held_back;
  for (int i = 1; i < k_readers; ++i) {
    auto next = std::async(std::launch::async, [&clients, &shared, i] {
      return clients[static_cast<std::size_t>(i)].lock("reports", shared);
    });
    ASSERT_TRUE(wait_until(
        [&] {
          return next.wait_for(0ms) == std::future_status::ready ||
                 has_waiters(a, "reports", 1);
        },
        5s))
        << "reader " << i << " was neither granted nor queued";
    if (next.wait_for(0ms) != std::future_status::ready) {
      held_back = std::move(next);
      break;
    }
    readers[static_cast<std::size_t>(i)] = next.get();
    readers[static_cast<std::size_t>(i - 1)].release();
    ++admitted;
  }
  ASSERT_TRUE(held_back.valid()) << "all " << k_readers
                                 << " readers joined while another pod's writer waited";
  EXPECT_LE(admitted, 4);
  EXPECT_FALSE(file_exists(wrote)) << "the writer ran beside a reader";
  readers[static_cast<std::size_t>(admitted - 1)].release();
  EXPECT_TRUE(wait_until([&] { return file_exists(wrote); }, 5s))
      << "the writer did not get in once the admitted readers were done";
  ASSERT_EQ(held_back.wait_for(5s), std::future_status::ready)
      << "the held-back reader never got the lock after the writer";
  Lock late = held_back.get();
  EXPECT_TRUE(file_exists(wrote));
  auto status = writer.process.wait(5s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code(), 0) << writer.err();
}

// Waiters on one daemon are granted in the order they arrived.
TEST_F(LockService, FifoWithinDaemon) {
  DaemonProcess& a = start_daemon("a");
  Client holder_client = connect(a);
  Lock held = holder_client.lock("fifo");
  const std::string order = m_dir.file("order");
  std::vector<CliRun> waiters;
  std::string expected;
  for (int i = 1; i <= 5; ++i) {
    std::string name = "w" + std::to_string(i);
    waiters.push_back(
        start_cli(a.socket(), {"run", "--lock", "fifo", "--", "sh", "-c",
                               "echo " + name + " >> '" + order + "'"}));
    ASSERT_TRUE(wait_until(
        [&] { return has_waiters(a, "fifo", static_cast<std::size_t>(i)); },
        5s));
    expected += name + "\n";
  }
  held.release();
  for (CliRun& waiter : waiters) {
    auto status = waiter.process.wait(5s);
    ASSERT_TRUE(status);
    EXPECT_EQ(status->code(), 0) << waiter.err();
  }
  EXPECT_EQ(read_text_file(order), expected);
}

// A release in pod a wakes pod b's waiter at once: the daemon waits in the
// kernel (F_OFD_SETLKW), not on a polling interval.
TEST_F(LockService, CrossPodHandoverIsFast) {
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b");
  Client holder_client = connect(a);
  std::vector<long long> delays_us;
  for (int round = 0; round < 10; ++round) {
    Lock held =
        holder_client.lock("handover", {LockMode::exclusive, 5000ms, {}});
    std::atomic<long long> granted_ns{0};
    std::string error;
    std::thread waiter([&] {
      try {
        Client client = connect(b);
        Lock lock = client.lock("handover", {LockMode::exclusive, 10000ms, {}});
        granted_ns = Clock::now().time_since_epoch().count();
      } catch (const std::exception& e) {
        error = e.what();
        granted_ns = -1;
      }
    });
    bool queued = wait_until([&] { return has_waiters(b, "handover", 1); }, 5s);
    auto released = Clock::now();
    held.release();
    waiter.join();
    ASSERT_TRUE(queued);
    ASSERT_GT(granted_ns.load(), 0) << error;
    delays_us.push_back(
        (Clock::time_point(Clock::duration(granted_ns.load())) - released) /
        std::chrono::microseconds(1));
  }
  std::sort(delays_us.begin(), delays_us.end());
  const long long median = delays_us[delays_us.size() / 2];
  std::string all;
  for (long long d : delays_us) all += std::to_string(d) + " ";
  std::printf("cross-pod hand-over, release to grant (us, sorted): %s\n",
              all.c_str());
  RecordProperty("handover_median_us", std::to_string(median));
  RecordProperty("handover_max_us", std::to_string(delays_us.back()));
  EXPECT_LT(median, 100000) << "median hand-over " << median << " us: " << all;
}

// Two pods hammer one lock for two seconds: neither keeps it to itself.
TEST_F(LockService, CrossPodFairness) {
  constexpr int k_workers_per_pod = 3;
  constexpr long k_duration_ms = 2000;
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b");
  const std::string log = m_dir.file("history.log");
  const std::string counter = m_root + "/counter";
  const std::string go = m_dir.file("go");
  std::vector<std::pair<std::string, Process>> workers;
  for (DaemonProcess* daemon : {&a, &b})
    for (int w = 0; w < k_workers_per_pod; ++w) {
      std::string id = daemon->pod() + std::to_string(w);
      workers.emplace_back(id, start_worker(*daemon, "fair", id, "for-ms",
                                            k_duration_ms, log, counter, go));
    }
  touch(go);
  for (auto& [id, worker] : workers) {
    auto status = worker.wait(20s);
    ASSERT_TRUE(status) << "worker " << id << " still running";
    EXPECT_EQ(status->code(), 0)
        << "worker " << id << ": "
        << read_text_file(m_dir.file("worker-" + id + ".err"));
  }
  HistoryReport report = check_history(read_text_file(log));
  ASSERT_TRUE(report.ok()) << report.error;
  std::size_t pod_a = 0;
  for (const auto& [worker, count] : report.per_worker)
    if (worker[0] == 'a') pod_a += count;
  const std::size_t total = report.acquisitions;
  ASSERT_GT(total, 0u);
  const double share_a =
      static_cast<double>(pod_a) / static_cast<double>(total);
  std::printf("%zu acquisitions in %ld ms: pod a %.1f%%, pod b %.1f%%\n", total,
              k_duration_ms, 100 * share_a, 100 * (1 - share_a));
  RecordProperty("acquisitions", std::to_string(total));
  RecordProperty("pod_a_share_percent", std::to_string(100 * share_a));
  EXPECT_GE(share_a, 0.2) << pod_a << " of " << total;
  EXPECT_LE(share_a, 0.8) << pod_a << " of " << total;
  EXPECT_EQ(std::stoull(read_text_file(counter)), total);
}

// The lock file deleted under a holder is a lost lock: the daemon notices
// within --lock-check-interval; `baton run` stops CMD (SIGKILL after
// --kill-after when CMD ignores SIGTERM) and exits 74; a libbaton holder sees
// lost() and its on_lost callback.
TEST_F(LockService, LockLossIsReportedToTheHolder) {
  DaemonProcess& a = start_daemon("a", {"--lock-check-interval", "0.1"});

  for (bool ignores_term : {false, true}) {
    SCOPED_TRACE(ignores_term ? "CMD ignores SIGTERM" : "CMD dies of SIGTERM");
    const std::string name = ignores_term ? "lossy/stubborn" : "lossy/meek";
    const std::string marker = m_dir.file(ignores_term ? "stubborn" : "meek");
    CliRun holder = hold_with_cli(a, name, marker, {"--kill-after", "1"},
                                  ignores_term ? "trap '' TERM; " : "");
    pid_t command = wait_for_pid_file(marker);
    ASSERT_GT(command, 0) << holder.err();
    ASSERT_TRUE(file_exists(lock_file(name)));

    auto deleted = Clock::now();
    ASSERT_EQ(::unlink(lock_file(name).c_str()), 0);
    auto status = holder.process.wait(4s);
    ASSERT_TRUE(status)
        << "baton run still runs 4 s after its lock file was deleted";
    EXPECT_EQ(status->code(), 74) << status->describe() << "; " << holder.err();
    EXPECT_NE(holder.err().find("lost"), std::string::npos) << holder.err();
    EXPECT_TRUE(wait_until([&] { return !process_alive(command); }, 2s));
    const long long took = millis_since(deleted);
    if (ignores_term) {
      EXPECT_GE(took, 1000) << "SIGKILL came before --kill-after";
    }
    std::printf("lock loss to baton run's exit: %lld ms\n", took);
  }

  Client client = connect(a);
  Lock lock = client.lock("lossy/library");
  std::atomic<int> callbacks{0};
  std::error_code reported;
  lock.on_lost([&](std::error_code ec) {
    ++callbacks;
    reported = ec;
  });
  EXPECT_FALSE(lock.lost());
  ASSERT_EQ(::unlink(lock_file("lossy/library").c_str()), 0);
  EXPECT_TRUE(wait_until([&] { return lock.lost(); }, 2s));
  EXPECT_EQ(callbacks.load(), 1);
  EXPECT_EQ(reported, errc::lock_lost);
  EXPECT_EQ(lock.lost_reason(), errc::lock_lost);
  EXPECT_NE(lock.lost_message().find("lossy+library.lock"), std::string::npos)
      << lock.lost_message();
  lock.release();
  // The session goes on: the name can be taken again.
  EXPECT_TRUE(client.try_lock("lossy/library").owns_lock());
}

// Signals sent to `baton run` reach CMD, and CMD's outcome is baton's.
TEST_F(LockService, SignalsAreForwarded) {
  DaemonProcess& a = start_daemon("a");
  struct Case {
    int signal;
    std::string before;  // shell code run first
    int expected;
  };
  const std::vector<Case> cases = {
      {SIGUSR1, "trap 'exit 3' USR1; ", 3},
      {SIGTERM, "", 128 + SIGTERM},
      {SIGINT, "trap 'exit 5' INT; ", 5},
      {SIGHUP, "", 128 + SIGHUP},
  };
  int n = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(::strsignal(c.signal));
    const std::string marker = m_dir.file("sig" + std::to_string(++n));
    // With a trap, a loop of short sleeps, so the shell gets to run it.
    std::vector<std::string> args = {
        "run",
        "--lock",
        "sig",
        "--",
        "sh",
        "-c",
        c.before + "echo $$ > '" + marker + "'; " +
            (c.before.empty() ? "exec sleep 30"
                              : "while :; do sleep 0.05; done")};
    CliRun run = start_cli(a.socket(), args);
    ASSERT_GT(wait_for_pid_file(marker), 0) << run.err();
    ASSERT_TRUE(run.process.kill(c.signal));
    auto status = run.process.wait(5s);
    ASSERT_TRUE(status) << "baton run still runs after the signal";
    EXPECT_TRUE(status->exited()) << status->describe();
    EXPECT_EQ(status->code(), c.expected)
        << status->describe() << "; " << run.err();
    EXPECT_TRUE(wait_until([&] { return lock_is_free(a, "sig"); }, 2s));
  }
}

// Every exit status of `baton run` that a Job's podFailurePolicy may match
// (74 and the -E override are covered above).
TEST_F(LockService, EveryExitCode) {
  DaemonProcess& a = start_daemon("a");
  const std::string not_executable = m_dir.file("not-executable");
  touch(not_executable);  // mode 0644: EACCES even for root
  struct Case {
    std::vector<std::string> args;
    int expected;
    const char* what;
  };
  const std::vector<Case> cases = {
      {{"run", "--lock", "x", "--", "true"}, 0, "CMD succeeds"},
      {{"run", "--lock", "x", "--", "sh", "-c", "exit 7"}, 7, "CMD's own code"},
      {{"run", "--lock", "x", "--", "sh", "-c", "kill -KILL $$"},
       128 + SIGKILL,
       "CMD killed by a signal"},
      {{"run", "--lock", "x", "--", "baton-test-no-such-command"},
       127,
       "no such command"},
      {{"run", "--lock", "x", "--", m_dir.file("missing")},
       127,
       "no such file"},
      {{"run", "--lock", "x", "--", not_executable}, 126, "not executable"},
      {{"run", "--lock", "x", "--", m_dir.path()}, 126, "a directory"},
      {{"run", "--bogus", "--lock", "x", "--", "true"}, 64, "unknown option"},
      {{"run", "--", "true"}, 64, "no --lock"},
      {{"run", "--lock", "x"}, 64, "no command"},
      {{"run", "--lock", "../x", "--", "true"}, 64, "lock name with .."},
      {{"run", "--lock", "a//b", "--", "true"},
       64,
       "lock name with an empty component"},
      {{"run", "--lock", std::string(201, 'n'), "--", "true"},
       64,
       "lock name too long"},
      {{"run", "--lock", "x", "-w", "soon", "--", "true"}, 64, "bad timeout"},
      {{"bogus-command"}, 64, "unknown command"},
  };
  for (const Case& c : cases) {
    CliResult result = run_cli(a.socket(), c.args);
    EXPECT_EQ(result.code(), c.expected) << c.what << ": " << result.describe();
    if (c.expected == 64) {
      EXPECT_NE(result.err.find("Try 'baton"), std::string::npos) << c.what;
    }
    if (c.expected >= 64 && c.expected != 128 + SIGKILL) {
      EXPECT_FALSE(result.err.empty()) << c.what << ": no message";
    }
  }

  // No daemon on the socket: 69 once the connect timeout has passed.
  CliResult unreachable =
      run_cli(m_dir.file("nobody.sock"),
              {"run", "--lock", "x", "--connect-timeout", "0.2", "--", "true"});
  EXPECT_EQ(unreachable.code(), 69) << unreachable.describe();
  EXPECT_LT(unreachable.took_ms, 3000) << unreachable.describe();
  EXPECT_NE(unreachable.err.find("nobody.sock"), std::string::npos)
      << unreachable.err;

  // Busy: 75.
  Client holder_client = connect(a);
  Lock held = holder_client.lock("x");
  CliResult busy =
      run_cli(a.socket(), {"run", "--lock", "x", "-n", "--", "true"});
  EXPECT_EQ(busy.code(), 75) << busy.describe();
}

// --connect-timeout is how long baton keeps trying to reach a daemon that is
// not up yet (a sidecar still starting): it must not give up before it.
TEST_F(LockService, ConnectTimeoutIsWaitedInFull) {
  for (const char* timeout : {"0.2", "0.5"}) {
    CliResult result = run_cli(
        m_dir.file("nobody.sock"),
        {"run", "--lock", "x", "--connect-timeout", timeout, "--", "true"});
    EXPECT_EQ(result.code(), 69) << result.describe();
    EXPECT_GE(result.took_ms, std::lround(std::stod(timeout) * 1000))
        << "gave up before --connect-timeout " << timeout << ": "
        << result.describe();
  }
}

// One daemon per socket: a second one on a live socket exits non-zero naming
// it, and the first goes on serving; the socket left by a daemon killed with
// SIGKILL does not stop its successor.
TEST_F(LockService, SecondDaemonOnBusySocketIsRefused) {
  DaemonProcess& first = start_daemon("a");
  DaemonConfig config = config_for("a");
  config.pod = "intruder";
  config.log_path = m_dir.file("intruder.log");
  DaemonProcess second(config);
  second.spawn();
  auto status = second.process().wait(5s);
  ASSERT_TRUE(status) << "a second daemon on a busy socket is still running";
  EXPECT_NE(status->code(), 0) << status->describe();
  EXPECT_NE(second.log().find(first.socket()), std::string::npos)
      << "no message naming the socket: " << second.log();
  EXPECT_TRUE(first.running());
  EXPECT_TRUE(first.ping());
  CliResult served =
      run_cli(first.socket(), {"run", "--lock", "x", "--", "true"});
  EXPECT_EQ(served.code(), 0) << served.describe();

  first.kill9();
  ASSERT_TRUE(file_exists(first.socket())) << "expected a stale socket file";
  EXPECT_FALSE(first.ping());
  config.pod = "successor";
  config.log_path = m_dir.file("successor.log");
  DaemonProcess successor(config);
  ASSERT_EQ(successor.start(), "");
  CliResult after =
      run_cli(successor.socket(), {"run", "--lock", "x", "--", "true"});
  EXPECT_EQ(after.code(), 0) << after.describe();
  EXPECT_EQ(successor.stop_expecting_success(), "");
}

// SIGTERM with a holder and a waiter: the waiter is refused, the holders hear
// lock_lost once the grace has run out, and the daemon exits 0 within 2 s.
TEST_F(LockService, SigtermExitsZeroWithinTwoSeconds) {
  DaemonProcess& a = start_daemon("a");
  Client client = connect(a);
  Lock held = client.lock("term");
  const std::string held_marker = m_dir.file("held");
  CliRun cli_holder =
      hold_with_cli(a, "term/cli", held_marker, {"--kill-after", "1"});
  pid_t command = wait_for_pid_file(held_marker);
  ASSERT_GT(command, 0) << cli_holder.err();
  const std::string ran = m_dir.file("ran");
  CliRun waiter =
      start_cli(a.socket(), {"run", "--lock", "term", "--", "touch", ran});
  ASSERT_TRUE(wait_until([&] { return has_waiters(a, "term", 1); }, 5s));

  auto start = Clock::now();
  ASSERT_TRUE(a.process().kill(SIGTERM));
  auto status = a.process().wait(5s);
  const long long took = millis_since(start);
  ASSERT_TRUE(status) << "batond still runs 5 s after SIGTERM";
  EXPECT_EQ(status->code(), 0) << status->describe();
  EXPECT_LT(took, 2000);
  std::printf("batond exited %lld ms after SIGTERM\n", took);

  EXPECT_TRUE(wait_until([&] { return held.lost(); }, 1s));
  EXPECT_EQ(held.lost_reason(), errc::lock_lost)
      << held.lost_reason().message();
  auto holder_status = cli_holder.process.wait(3s);
  ASSERT_TRUE(holder_status);
  EXPECT_EQ(holder_status->code(), 74) << cli_holder.err();
  EXPECT_TRUE(wait_until([&] { return !process_alive(command); }, 2s));
  auto waiter_status = waiter.process.wait(3s);
  ASSERT_TRUE(waiter_status);
  EXPECT_EQ(waiter_status->code(), 75) << waiter.err();
  EXPECT_FALSE(file_exists(ran));
  EXPECT_FALSE(file_exists(a.socket())) << "the socket file was left behind";
}

// --exit-when-idle: probes (ping, status) do not count as clients; once the
// last lock client has gone, the daemon exits 0.
TEST_F(LockService, ExitWhenIdle) {
  DaemonProcess& a = start_daemon("a", {"--exit-when-idle"});
  EXPECT_EQ(run_cli(a.socket(), {"ping"}).code(), 0);
  EXPECT_EQ(run_cli(a.socket(), {"status"}).code(), 0);
  EXPECT_FALSE(wait_until([&] { return !a.running(); }, 300ms))
      << "the daemon exited after a ping";
  CliResult run = run_cli(a.socket(), {"run", "--lock", "x", "--", "true"});
  EXPECT_EQ(run.code(), 0) << run.describe();
  auto status = a.process().wait(3s);
  ASSERT_TRUE(status) << "the daemon still runs after its last client";
  EXPECT_EQ(status->code(), 0) << status->describe();
}

// `baton status` on one daemon shows the holder another pod recorded.
TEST_F(LockService, StatusShowsHoldersAcrossPods) {
  DaemonProcess& a = start_daemon("etl-a");
  DaemonProcess& b = start_daemon("etl-b");
  Client client = connect(a);
  Lock held = client.lock("nightly/backup");

  CliResult json_status = run_cli(b.socket(), {"status", "--json"});
  ASSERT_EQ(json_status.code(), 0) << json_status.describe();
  nlohmann::json report = nlohmann::json::parse(json_status.out);
  EXPECT_EQ(report["server"]["pod"], "etl-b");
  const nlohmann::json* entry = nullptr;
  for (const auto& lock : report["locks"])
    if (lock["name"] == "nightly/backup") entry = &lock;
  ASSERT_NE(entry, nullptr) << json_status.out;
  ASSERT_EQ((*entry)["holders"].size(), 1u) << json_status.out;
  const nlohmann::json& holder = (*entry)["holders"][0];
  EXPECT_EQ(holder["pod"], "etl-a") << json_status.out;
  EXPECT_EQ(holder["node"], "node-etl-a") << json_status.out;
  EXPECT_EQ(holder["token"], held.token()) << json_status.out;
  EXPECT_EQ(holder["pid"], ::getpid()) << json_status.out;
  EXPECT_EQ(holder["mode"], "exclusive") << json_status.out;
  EXPECT_EQ(holder["local"], false) << json_status.out;

  CliResult human = run_cli(b.socket(), {"status"});
  EXPECT_EQ(human.code(), 0) << human.describe();
  EXPECT_NE(human.out.find("nightly/backup"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("etl-a"), std::string::npos) << human.out;

  held.release();
  EXPECT_TRUE(wait_until([&] { return connect(b).status().locks.empty(); }, 2s))
      << connect(b).status().json;
}


// SIGTERM to a holder's batond: the holders hear at once that their locks
// go at the end of --shutdown-grace; the daemon keeps the lock until they
// released it, so another pod's waiter never runs while a command that
// stops within the grace still runs; then batond exits 0.
TEST_F(LockService, SigtermTellsHoldersAtOnceAndKeepsTheLockUntilTheyStop) {
  const long long grace_ms = 3000;
  DaemonProcess& a = start_daemon("a", {"--shutdown-grace", "3"});
  DaemonProcess& b = start_daemon("b");
  const std::string log = m_dir.file("order.log");
  const std::string marker = m_dir.file("holder");
  const std::string stamp = "$(date +%s.%N)";
  // CMD takes half a second to stop on SIGTERM: well within the grace.
  CliRun holder = start_cli(
      a.socket(),
      {"run", "--lock", "stop/x", "--kill-after", "10", "--", "sh", "-c",
       "trap 'echo term " + stamp + " >> " + log + "; sleep 0.5; echo end " + stamp +
           " >> " + log + "; exit 0' TERM; echo $$ > '" + marker +
           "'; while :; do sleep 0.05; done"});
  ASSERT_GT(wait_for_pid_file(marker), 0) << holder.err();
  Client library_client = connect(a);
  Lock library_lock = library_client.lock("stop/library");
  CliRun next = start_cli(b.socket(), {"run", "--lock", "stop/x", "--", "sh", "-c",
                                       "echo start " + stamp + " >> " + log});
  ASSERT_TRUE(wait_until([&] { return has_waiters(b, "stop/x", 1); }, 5s)) << next.err();

  auto term = Clock::now();
  ASSERT_TRUE(a.process().kill(SIGTERM));
  // Told at once: CMD got SIGTERM and the library holder saw the loss well
  // before the grace ran out (the old daemon said nothing until then).
  EXPECT_TRUE(wait_until([&] { return library_lock.lost(); }, milliseconds(grace_ms / 2)))
      << "the libbaton holder was not told within half the grace";
  EXPECT_EQ(library_lock.lost_reason(), errc::lock_lost);
  EXPECT_NE(library_lock.lost_message().find("revoked"), std::string::npos)
      << library_lock.lost_message();
  const long long library_told_ms = millis_since(term);
  library_lock.release();  // still unlocks: the daemon kept it until now
  EXPECT_TRUE(wait_until([&] { return read_text_file(log).find("term") != std::string::npos; },
                         milliseconds(grace_ms / 2)))
      << "CMD got no SIGTERM within half the grace; " << holder.err();
  const long long command_told_ms = millis_since(term);

  auto holder_status = holder.process.wait(10s);
  ASSERT_TRUE(holder_status);
  EXPECT_EQ(holder_status->code(), 74) << holder.err();
  auto status = a.process().wait(milliseconds(grace_ms + 3000));
  const long long exit_ms = millis_since(term);
  ASSERT_TRUE(status) << "batond still runs after the grace";
  EXPECT_EQ(status->code(), 0) << status->describe();
  // Both holders released within the grace, so it did not wait it out.
  EXPECT_LT(exit_ms, grace_ms) << "batond waited the whole grace";
  auto next_status = next.process.wait(10s);
  ASSERT_TRUE(next_status);
  EXPECT_EQ(next_status->code(), 0) << next.err();

  // The order on the shared root: the next holder only after CMD ended.
  std::vector<std::pair<std::string, double>> events;
  std::istringstream lines(read_text_file(log));
  std::string what;
  double when = 0;
  while (lines >> what >> when) events.emplace_back(what, when);
  ASSERT_EQ(events.size(), 3u) << read_text_file(log);
  EXPECT_EQ(events[0].first, "term");
  EXPECT_EQ(events[1].first, "end") << read_text_file(log);
  EXPECT_EQ(events[2].first, "start") << read_text_file(log);
  std::printf("SIGTERM to batond: libbaton holder told after %lld ms, CMD after %lld ms; "
              "batond exited after %lld ms; next holder started %.0f ms after CMD ended\n",
              library_told_ms, command_told_ms, exit_ms,
              (events[2].second - events[1].second) * 1000);
}

}  // namespace
}  // namespace baton::test
