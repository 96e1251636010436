// `baton status` and the queued notice tell the truth about who holds a lock:
// three daemons (three pods) on one root, shared holders in two of them, one
// leaving in each way a pod can leave (unlock and disconnect, SIGKILL of the
// client, SIGKILL of its daemon). And a client in another PID namespace is
// shown by the identity it reports. Every wait is a bounded poll.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "baton/client.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/wait_until.hpp"

namespace baton::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

// A `baton run` holding a lock until told to go: it writes its command's pid
// to MARKER once the lock is held, and its command ends when GO exists.
struct Holding {
  Process process;
  std::string marker;
  std::string go;
  std::string err_path;
};

// The holders of NAME as DAEMON reports them: "pod:reported pid" each.
std::multiset<std::string> holders_of(const DaemonProcess& daemon,
                                      const std::string& name) {
  ClientOptions options;
  options.socket_path = daemon.socket();
  options.connect_timeout = 5s;
  options.request_timeout = 10s;
  Client client;
  client.connect(options);
  std::multiset<std::string> found;
  for (const LockStatus& lock : client.status().locks) {
    if (lock.name != name) continue;
    for (const Holder& holder : lock.holders)
      found.insert(holder.pod + ":" + std::to_string(holder.reported.pid));
  }
  return found;
}

std::string describe(const std::multiset<std::string>& holders) {
  std::string text = "{";
  for (const std::string& holder : holders) text += " " + holder;
  return text + " }";
}

class StatusHolders : public ::testing::Test {
 protected:
  void TearDown() override {
    for (Holding& holding : m_holdings) touch(holding.go);
    for (DaemonProcess& daemon : m_daemons) {
      if (!daemon.running()) continue;
      std::optional<ExitStatus> status = daemon.stop();
      EXPECT_TRUE(status && status->exited() && status->code() == 0)
          << "batond pod " << daemon.pod() << " on SIGTERM: "
          << (status ? status->describe()
                     : std::string("still running after 5 s"));
    }
    if (!HasFailure()) return;
    for (DaemonProcess& daemon : m_daemons) {
      std::string log = daemon.log();
      if (log.size() > 6000) log = "...\n" + log.substr(log.size() - 6000);
      std::fprintf(stderr, "---- batond pod %s log ----\n%s\n",
                   daemon.pod().c_str(), log.c_str());
    }
    for (Holding& holding : m_holdings)
      std::fprintf(stderr, "---- %s ----\n%s\n", holding.err_path.c_str(),
                   read_text_file(holding.err_path).c_str());
  }

  static void touch(const std::string& path) {
    if (FILE* file = std::fopen(path.c_str(), "a")) std::fclose(file);
  }

  DaemonProcess& start_daemon(const std::string& pod) {
    DaemonConfig config;
    config.root = m_root;
    config.socket = m_dir.file(pod + ".sock");
    config.pod = pod;
    config.node = "node-" + pod;
    DaemonProcess& daemon = m_daemons.emplace_back(std::move(config));
    if (std::string error = daemon.start(); !error.empty())
      throw std::runtime_error(error);
    return daemon;
  }

  // PREFIX (e.g. unshare ...), then `baton --socket S run --shared --lock
  // NAME -- sh -c ...` until GO exists.
  Holding& hold_shared(const DaemonProcess& daemon, const std::string& name,
                       std::vector<std::string> prefix = {}) {
    const std::string tag =
        m_dir.file("holder-" + std::to_string(m_holdings.size()));
    Holding& holding = m_holdings.emplace_back();
    holding.marker = tag + ".held";
    holding.go = tag + ".go";
    holding.err_path = tag + ".err";
    ProcessOptions options;
    options.argv = std::move(prefix);
    for (std::string arg :
         {baton_cli_path(), std::string("--socket"), daemon.socket(),
          std::string("run"), std::string("--shared"), std::string("--lock"),
          name, std::string("--"), std::string("sh"), std::string("-c"),
          "echo $$ > '" + holding.marker + "'; while [ ! -e '" + holding.go +
              "' ]; do sleep 0.02; done"})
      options.argv.push_back(std::move(arg));
    options.env = clean_environment();
    options.err = Output::file(holding.err_path);
    holding.process = Process::spawn(options);
    return holding;
  }

  static bool held(const Holding& holding) {
    std::string text = read_text_file(holding.marker);
    return !text.empty() && text.back() == '\n';
  }

  TempDir m_dir{"baton-status"};
  std::string m_root = m_dir.make_dir("root");
  std::deque<DaemonProcess> m_daemons;
  std::deque<Holding> m_holdings;
};

enum class Leave { unlock_and_disconnect, kill_client, kill_daemon };

class SharedHolderLeaves : public StatusHolders,
                           public ::testing::WithParamInterface<Leave> {};

// A and B hold `rd` shared (B last, so an old single record names B); every
// pod's status lists both with their reported pids. B leaves: C's status
// lists only A, and an exclusive waiter in C is told A holds it, never B.
TEST_P(SharedHolderLeaves, StatusListsEveryLiveHolderAndNoDepartedOne) {
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b");
  DaemonProcess& c = start_daemon("c");
  Holding& in_a = hold_shared(a, "rd");
  ASSERT_TRUE(wait_until([&] { return held(in_a); }, 5s))
      << "a's reader never got rd";
  Holding& in_b = hold_shared(b, "rd");
  ASSERT_TRUE(wait_until([&] { return held(in_b); }, 5s))
      << "b's reader never got rd";

  const std::string pa = "a:" + std::to_string(in_a.process.pid());
  const std::string pb = "b:" + std::to_string(in_b.process.pid());
  const std::multiset<std::string> both{pa, pb};
  for (DaemonProcess* daemon : {&c, &a, &b}) {
    EXPECT_EQ(holders_of(*daemon, "rd"), both)
        << "pod " << daemon->pod() << " reports "
        << describe(holders_of(*daemon, "rd"));
  }

  switch (GetParam()) {
    case Leave::unlock_and_disconnect:
      touch(
          in_b.go);  // its command ends: baton run unlocks, disconnects, exits
      ASSERT_TRUE(in_b.process.wait(5s)) << "b's baton run did not finish";
      break;
    case Leave::kill_client:
      in_b.process.kill_and_wait();
      break;
    case Leave::kill_daemon:
      b.kill9();
      break;
  }
  const std::multiset<std::string> only_a{pa};
  EXPECT_TRUE(wait_until([&] { return holders_of(c, "rd") == only_a; }, 5s))
      << "pod c reports " << describe(holders_of(c, "rd")) << ", not "
      << describe(only_a);
  EXPECT_TRUE(wait_until([&] { return holders_of(a, "rd") == only_a; }, 5s))
      << "pod a reports " << describe(holders_of(a, "rd")) << ", not "
      << describe(only_a);

  // An exclusive waiter in C: its queued notice names the live holder.
  ClientOptions options;
  options.socket_path = c.socket();
  options.connect_timeout = 5s;
  Client client;
  client.connect(options);
  std::optional<QueueInfo> queued;
  LockOptions exclusive;
  exclusive.timeout = 300ms;
  exclusive.on_queued = [&](const QueueInfo& info) { queued = info; };
  std::error_code ec;
  Lock lock = client.lock("rd", exclusive, ec);
  EXPECT_EQ(ec, errc::timed_out) << ec.message();
  ASSERT_TRUE(queued) << "the waiter in pod c was never told it is queued";
  ASSERT_TRUE(queued->holder)
      << "the waiter in pod c was not told who holds rd";
  EXPECT_EQ(
      queued->holder->pod + ":" + std::to_string(queued->holder->reported.pid),
      pa)
      << "the waiter in pod c was told pod " << queued->holder->pod << " pid "
      << queued->holder->reported.pid << " holds rd";
  EXPECT_EQ(queued->holder->mode, LockMode::shared);
}

INSTANTIATE_TEST_SUITE_P(, SharedHolderLeaves,
                         ::testing::Values(Leave::unlock_and_disconnect,
                                           Leave::kill_client,
                                           Leave::kill_daemon),
                         [](const ::testing::TestParamInfo<Leave>& leave) {
                           switch (leave.param) {
                             case Leave::unlock_and_disconnect:
                               return "Disconnect";
                             case Leave::kill_client:
                               return "KillNineOfClient";
                             case Leave::kill_daemon:
                               return "KillNineOfDaemon";
                           }
                           return "Unknown";
                         });

// A client in another PID namespace (as every client of a sidecar is):
// SO_PEERCRED gives the daemon another pid than the client's own, so status
// shows the pid and host the client reported, marked as reported.
TEST_F(StatusHolders, ClientInAnotherPidNamespaceIsShownAsReported) {
  if (::geteuid() != 0) GTEST_SKIP() << "unshare --pid needs root";
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& c = start_daemon("c");
  // unshare --fork: baton is pid 1 of the new namespace, on host job-abc.
  Holding& inside = hold_shared(
      a, "rd",
      {"unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--uts",
       "sh", "-c", "hostname job-abc && exec \"$0\" \"$@\""});
  ASSERT_TRUE(wait_until([&] { return held(inside); }, 5s))
      << "the reader in its own PID namespace never got rd: "
      << read_text_file(inside.err_path);

  for (DaemonProcess* daemon : {&a, &c}) {
    ClientOptions options;
    options.socket_path = daemon->socket();
    Client client;
    client.connect(options);
    std::vector<Holder> holders;
    for (const LockStatus& lock : client.status().locks)
      if (lock.name == "rd") holders = lock.holders;
    ASSERT_EQ(holders.size(), 1u) << "pod " << daemon->pod();
    EXPECT_EQ(holders[0].reported.pid, 1) << "pod " << daemon->pod();
    EXPECT_NE(holders[0].pid, 1)
        << "pod " << daemon->pod()
        << ": SO_PEERCRED cannot give the namespace's pid";
    EXPECT_EQ(holders[0].reported.host, "job-abc") << "pod " << daemon->pod();
    EXPECT_EQ(holders[0].reported.program, "baton") << "pod " << daemon->pod();

    // And as a person reads it: baton status marks the pid as reported.
    const std::string out_path = m_dir.file("status-" + daemon->pod() + ".out");
    ProcessOptions cli;
    cli.argv = {baton_cli_path(), "--socket", daemon->socket(), "status"};
    cli.env = clean_environment();
    cli.out = Output::file(out_path);
    Process status = Process::spawn(cli);
    auto exit = status.wait(10s);
    ASSERT_TRUE(exit && exit->code() == 0);
    const std::string out = read_text_file(out_path);
    EXPECT_NE(out.find("a/node-a/1(reported)"), std::string::npos) << out;
    EXPECT_NE(out.find("job-abc:baton"), std::string::npos) << out;
  }
}

}  // namespace
}  // namespace baton::test
