// wait(): a waiter on one daemon sees publishes made through another, by
// inotify when both share a kernel and by polling when it cannot see the
// change; timeouts; waiting for a path to exist.
#include <sys/mount.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "baton/client.hpp"
#include "tests/handoff/content.hpp"
#include "tests/handoff/handoff_fixture.hpp"
#include "tests/support/wait_until.hpp"

namespace baton::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

long long ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<milliseconds>(to - from).count();
}

struct WaitResult {
  std::uint64_t version = 0;
  std::error_code ec;
  Clock::time_point returned;
};

// Starts CLIENT.wait(PATH, OPTIONS) on a thread.
std::future<WaitResult> wait_async(Client& client, std::string path,
                                   WaitOptions options) {
  return std::async(std::launch::async, [&client, path, options] {
    WaitResult result;
    result.version = client.wait(path, options, result.ec);
    result.returned = Clock::now();
    return result;
  });
}

// Waiter on pod b, publisher on pod a, one node: inotify wakes the waiter
// well before b's 5 s poll interval, every round, with the new version.
TEST_F(Handoff, WaitNewerThanAcrossDaemons) {
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b", {"--poll-interval", "5"});
  Client publisher = connect(a.socket());
  Client waiter = connect(b.socket());
  const std::string path = "waited/report";
  std::uint64_t version = publish(publisher, path, "version 1");
  long long worst = 0;
  for (int round = 0; round < 10; ++round) {
    WaitOptions options;
    options.newer_than = version;
    options.timeout = 20s;
    std::future<WaitResult> pending = wait_async(waiter, path, options);
    // Gives the wait time to block in the daemon, so the round measures a
    // wake-up (without it the round still passes, by the first check).
    std::this_thread::sleep_for(50ms);
    const std::uint64_t published =
        publish(publisher, path, "version " + std::to_string(version + 1));
    const Clock::time_point committed = Clock::now();
    ASSERT_EQ(pending.wait_for(10s), std::future_status::ready)
        << "round " << round;
    WaitResult result = pending.get();
    ASSERT_FALSE(result.ec) << "round " << round << ": " << result.ec.message();
    EXPECT_EQ(published, version + 1);
    EXPECT_EQ(result.version, published) << "round " << round;
    worst = std::max(worst, ms_between(committed, result.returned));
    version = published;
  }
  std::printf(
      "wait across daemons (inotify): worst wake-up %lld ms after the commit\n",
      worst);
  EXPECT_LT(worst, 1000) << "a waiter waited for its 5 s poll, not for inotify";
}

// The polling path, on one machine: pods whose batond has no inotify (a
// seccomp filter, tests/handoff/seccomp_exec.cpp, makes inotify_init fail) see
// a publish through pod a only by polling. With --poll-interval 0.1 the waiter
// wakes promptly; with 30 s it does not notice before its own deadline, which
// shows the first one's answer came from polling.
TEST_F(Handoff, WaitNewerThanByPolling) {
  DaemonProcess& a = start_daemon("a");
  const std::string polling = start_filtered_daemon("polling", {"--no-inotify"},
                                                    {"--poll-interval", "0.1"});
  const std::string blind = start_filtered_daemon("blind", {"--no-inotify"},
                                                  {"--poll-interval", "30"});
  for (const char* pod : {"polling", "blind"})
    ASSERT_NE(filtered_daemon_log(pod).find("inotify unavailable"),
              std::string::npos)
        << "pod " << pod << " still has inotify:\n"
        << filtered_daemon_log(pod);
  Client publisher = connect(a.socket());
  Client polling_client = connect(polling);
  Client blind_client = connect(blind);
  const std::string path = "polled/report";
  const std::uint64_t version = publish(publisher, path, "version 1");

  WaitOptions options;
  options.newer_than = version;
  options.timeout = 20s;
  std::future<WaitResult> polled = wait_async(polling_client, path, options);
  WaitOptions blind_options;
  blind_options.newer_than = version;
  blind_options.timeout = 2s;
  const Clock::time_point blind_started = Clock::now();
  std::future<WaitResult> unseen =
      wait_async(blind_client, path, blind_options);
  std::this_thread::sleep_for(200ms);  // both waits block (see above)
  const std::uint64_t published = publish(publisher, path, "version 2");
  const Clock::time_point committed = Clock::now();

  ASSERT_EQ(polled.wait_for(10s), std::future_status::ready);
  WaitResult result = polled.get();
  ASSERT_FALSE(result.ec) << result.ec.message();
  EXPECT_EQ(result.version, published);
  const long long latency = ms_between(committed, result.returned);
  std::printf("wait by polling (0.1 s): woke %lld ms after the commit\n",
              latency);
  EXPECT_LT(latency, 1000);

  ASSERT_EQ(unseen.wait_for(10s), std::future_status::ready);
  WaitResult late = unseen.get();
  // It may answer at its deadline either way (it checks once more then).
  EXPECT_TRUE(late.ec == make_error_code(errc::timed_out) ||
              (!late.ec && late.version == published))
      << late.ec.message();
  EXPECT_GE(ms_between(blind_started, late.returned), 1900)
      << "a pod without inotify and a 30 s poll saw the publish at once: the "
         "polling case above proves nothing";
}

// Pod c reaches the same volume through another mount (a bind mount of the
// root): waits, reads and publishes agree across the two paths. inotify
// still sees this change (one inode), so this is not the polling case; it
// shows that nothing depends on the root's path.
TEST_F(Handoff, WaitNewerThanThroughAnotherMount) {
  const std::string mount_point = dir().make_dir("other-mount");
  if (::geteuid() != 0 || ::mount(root().c_str(), mount_point.c_str(), nullptr,
                                  MS_BIND, nullptr) != 0)
    GTEST_SKIP() << "cannot bind-mount the root (needs root): "
                 << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mount_point};
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& c = start_daemon("c", {"--poll-interval", "0.1"}, mount_point);
  Client publisher = connect(a.socket());
  Client waiter = connect(c.socket());
  const std::string path = "mounted/report";
  const std::uint64_t version = publish(publisher, path, "version 1");
  WaitOptions options;
  options.newer_than = version;
  options.timeout = 10s;
  std::future<WaitResult> pending = wait_async(waiter, path, options);
  std::this_thread::sleep_for(50ms);
  const std::uint64_t published = publish(publisher, path, "version 2");
  ASSERT_EQ(pending.wait_for(10s), std::future_status::ready);
  WaitResult result = pending.get();
  ASSERT_FALSE(result.ec) << result.ec.message();
  EXPECT_EQ(result.version, published);
  OpenedFile opened = waiter.open(path);
  std::string data;
  ASSERT_TRUE(read_all(opened.fd, data));
  EXPECT_EQ(data, "version 2");
  EXPECT_EQ(opened.version, published);
  EXPECT_EQ(publish(waiter, path, "version 3"), published + 1);
  EXPECT_EQ(read_file(root() + "/" + path), "version 3");
}

// A wait that nothing satisfies ends with timed_out, near its timeout, with
// a one-line message; for a newer version and for a path that never comes.
TEST_F(Handoff, WaitTimesOut) {
  DaemonProcess& a = start_daemon("a");
  Client client = connect(a.socket());
  const std::uint64_t version = publish(client, "timed/report", "v1");
  WaitOptions options;
  options.newer_than = version;
  options.timeout = 300ms;
  for (const char* path : {"timed/report", "timed/never"}) {
    SCOPED_TRACE(path);
    std::error_code ec;
    const Clock::time_point start = Clock::now();
    client.wait(path, options, ec);
    const long long took = ms_between(start, Clock::now());
    EXPECT_EQ(ec, make_error_code(errc::timed_out)) << ec.message();
    EXPECT_GE(took, 290);
    EXPECT_LT(took, 2300);
    EXPECT_FALSE(client.last_error_message().empty());
    EXPECT_EQ(client.last_error_message().find('\n'), std::string::npos);
    options.newer_than.reset();  // the second path: wait for existence
  }
}

// Waiting for a path that does not exist yet: it returns once a publish
// through another pod creates it (with that version), or once a plain file
// appears there (version 0, seen by polling: it has no version record).
TEST_F(Handoff, WaitForExistence) {
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b", {"--poll-interval", "0.2"});
  Client publisher = connect(a.socket());
  Client waiter = connect(b.socket());
  WaitOptions options;
  options.timeout = 10s;

  std::future<WaitResult> pending =
      wait_async(waiter, "later/published", options);
  std::this_thread::sleep_for(50ms);
  EXPECT_NE(pending.wait_for(0ms), std::future_status::ready)
      << "wait returned before the path existed";
  const std::uint64_t version = publish(publisher, "later/published", "here");
  Clock::time_point committed = Clock::now();
  ASSERT_EQ(pending.wait_for(10s), std::future_status::ready);
  WaitResult result = pending.get();
  ASSERT_FALSE(result.ec) << result.ec.message();
  EXPECT_EQ(result.version, version);
  EXPECT_LT(ms_between(committed, result.returned), 1000);

  pending = wait_async(waiter, "later/plain", options);
  std::this_thread::sleep_for(50ms);
  EXPECT_NE(pending.wait_for(0ms), std::future_status::ready);
  write_file(root() + "/later/plain", "written without baton");
  committed = Clock::now();
  ASSERT_EQ(pending.wait_for(10s), std::future_status::ready);
  result = pending.get();
  ASSERT_FALSE(result.ec) << result.ec.message();
  EXPECT_EQ(result.version, 0u);
  EXPECT_LT(ms_between(committed, result.returned), 1500);
}

}  // namespace
}  // namespace baton::test
