// A claimed queue item has one owner. A claim can be lost: after a network
// partition the brick (or NFS server) drops the consumer's lock, another pod
// gives the item back and claims it again, and the old consumer's daemon
// still believes it holds the item. Here, on a local root, the loss is made
// by hand: the item's file in cur/ is removed, or replaced by a fresh copy
// in new/ that another pod then claims. The old consumer must be told
// (claim_lost; `baton claim -- CMD` stops CMD and exits 74), and its ack or
// nack must touch nothing of the new owner's.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "baton/client.hpp"
#include "tests/handoff/content.hpp"
#include "tests/handoff/handoff_fixture.hpp"
#include "tests/support/wait_until.hpp"

namespace baton::test {
namespace {

using namespace std::chrono_literals;

std::string enqueue_text(Client& client, const std::string& queue, const std::string& text) {
  PendingItem item = client.enqueue(queue);
  if (!write_all(item.fd(), text)) throw std::runtime_error("cannot write an item");
  return item.commit();
}

std::string read_item(const QueueItem& item) {
  std::string data;
  if (!read_all(item.fd(), data)) throw std::runtime_error("cannot read " + item.id());
  return data;
}

// The one file in DIR; fails the test when there is not exactly one.
std::string only_file(const std::string& dir) {
  std::vector<std::string> names = list_dir(dir);
  EXPECT_EQ(names.size(), 1u) << dir << ": " << join(names);
  return names.empty() ? std::string() : names.front();
}

// What another pod does to an item whose consumer lost its lock: gives it
// back to new/ (here as a fresh copy: this consumer's daemon still locks
// the old inode, as a partitioned node's daemon believes it does).
void give_back_behind_the_consumers_back(const std::string& queue_dir, const std::string& id) {
  const std::string claimed = only_file(queue_dir + "/cur");
  ASSERT_FALSE(claimed.empty());
  std::optional<std::string> content = read_file(queue_dir + "/cur/" + claimed);
  ASSERT_TRUE(content);
  ASSERT_EQ(::unlink((queue_dir + "/cur/" + claimed).c_str()), 0);
  write_file(queue_dir + "/new/" + id, *content);
}

// The stale consumer's ack is refused (lock_lost) and removes nothing: the
// item another pod claimed meanwhile stays in cur/, and that pod completes
// it. Before claims had names of their own, the stale ack removed
// cur/<id>, the new owner's file.
TEST_F(Handoff, AckOfALostClaimIsRefusedAndTouchesNothing) {
  // Pod a never checks its claims in time: only the ack's own check fences.
  DaemonProcess& a = start_daemon("a", {"--lock-check-interval", "600"});
  DaemonProcess& b = start_daemon("b");
  Client ca = connect(a.socket());
  Client cb = connect(b.socket());
  const std::string queue = "fenced";
  const std::string queue_dir = root() + "/" + queue;
  const std::string id = enqueue_text(ca, queue, "the item");

  QueueItem stale = ca.claim(queue, 5s);
  ASSERT_EQ(stale.id(), id);
  give_back_behind_the_consumers_back(queue_dir, id);
  QueueItem owner = cb.claim(queue, 5s);
  ASSERT_EQ(owner.id(), id) << "pod b did not get the item given back";
  EXPECT_EQ(read_item(owner), "the item");
  const std::string owners_file = only_file(queue_dir + "/cur");

  std::error_code ec;
  stale.ack(ec);
  EXPECT_EQ(ec, make_error_code(errc::lock_lost))
      << "the stale consumer's ack answered: " << ec.message() << " "
      << ca.last_error_message();
  EXPECT_EQ(list_dir(queue_dir + "/cur"), std::vector<std::string>{owners_file})
      << "the stale ack touched the new owner's item";
  EXPECT_EQ(list_dir(queue_dir + "/new"), std::vector<std::string>{});

  // A stale nack neither: a second round, nacked this time.
  owner.ack();
  const std::string id2 = enqueue_text(ca, queue, "the second item");
  QueueItem stale2 = ca.claim(queue, 5s);
  ASSERT_EQ(stale2.id(), id2);
  give_back_behind_the_consumers_back(queue_dir, id2);
  QueueItem owner2 = cb.claim(queue, 5s);
  ASSERT_EQ(owner2.id(), id2);
  const std::string owners_file2 = only_file(queue_dir + "/cur");
  stale2.nack();
  ca.ping();  // the nack was handled before this reply
  EXPECT_EQ(list_dir(queue_dir + "/cur"), std::vector<std::string>{owners_file2})
      << "the stale nack moved the new owner's item";
  EXPECT_EQ(list_dir(queue_dir + "/new"), std::vector<std::string>{})
      << "the stale nack gave the item back a second time";
  owner2.ack();
  for (const char* sub : {"tmp", "new", "cur"})
    EXPECT_EQ(list_dir(queue_dir + "/" + sub), std::vector<std::string>{}) << sub;
}

// The daemon checks its claims as it checks its locks: a claimed item whose
// file left cur/ is reported (claim_lost) within the check interval, and
// its ack is then refused.
TEST_F(Handoff, LostClaimIsReportedToTheConsumer) {
  DaemonProcess& a = start_daemon("a", {"--lock-check-interval", "0.05"});
  Client ca = connect(a.socket());
  const std::string queue = "reported";
  const std::string queue_dir = root() + "/" + queue;
  enqueue_text(ca, queue, "x");
  QueueItem item = ca.claim(queue, 5s);
  ASSERT_TRUE(item);
  EXPECT_TRUE(ca.process_events() == std::error_code());
  EXPECT_FALSE(item.lost()) << "a claim reported lost while it holds: " << item.lost_message();

  const std::string claimed = only_file(queue_dir + "/cur");
  ASSERT_EQ(::unlink((queue_dir + "/cur/" + claimed).c_str()), 0);
  ASSERT_TRUE(wait_until(
      [&] {
        ca.process_events();
        return item.lost();
      },
      10s))
      << "the daemon never reported the lost claim";
  EXPECT_EQ(item.lost_reason(), make_error_code(errc::lock_lost));
  EXPECT_NE(item.lost_message().find(item.id()), std::string::npos) << item.lost_message();
  std::error_code ec;
  item.ack(ec);
  EXPECT_EQ(ec, make_error_code(errc::lock_lost)) << ec.message();
}

// `baton claim QUEUE -- CMD` whose claim is lost stops CMD and exits 74,
// as `baton run` does for a lost lock.
TEST_F(Handoff, BatonClaimStopsItsCommandWhenTheClaimIsLost) {
  DaemonProcess& a = start_daemon("a", {"--lock-check-interval", "0.05"});
  Client ca = connect(a.socket());
  const std::string queue = "stopped";
  const std::string queue_dir = root() + "/" + queue;
  enqueue_text(ca, queue, "x");
  const std::string pid_file = dir().file("cmd.pid");
  ProcessOptions options;
  options.argv = {baton_cli_path(), "--socket", a.socket(), "claim", queue, "--timeout", "5",
                  "--kill-after", "2", "--", "sh", "-c",
                  "echo $$ > " + pid_file + ".tmp && mv " + pid_file + ".tmp " + pid_file +
                      " && exec sleep 600"};
  options.env = environment_without({"BATON_"});
  options.err = Output::append_to(dir().file("claim.err"));
  Process claim = Process::spawn(options);
  pid_t cmd = -1;
  struct KillCmd {
    pid_t& pid;
    ~KillCmd() {
      if (pid > 0) ::kill(pid, SIGKILL);
    }
  } kill_cmd{cmd};
  ASSERT_TRUE(wait_until(
      [&] {
        std::istringstream in(read_file(pid_file).value_or(""));
        return static_cast<bool>(in >> cmd);
      },
      10s))
      << "baton claim never ran its command";
  const std::string claimed = only_file(queue_dir + "/cur");
  ASSERT_EQ(::unlink((queue_dir + "/cur/" + claimed).c_str()), 0);
  std::optional<ExitStatus> status = claim.wait(15s);
  ASSERT_TRUE(status) << "baton claim went on after its claim was lost";
  EXPECT_EQ(status->shell_code(), 74) << read_file(dir().file("claim.err")).value_or("");
  EXPECT_TRUE(wait_until([&] { return ::kill(cmd, 0) != 0; }, 5s))
      << "the command outlived its lost claim";
  EXPECT_NE(read_file(dir().file("claim.err")).value_or("").find("lost"), std::string::npos);
}

}  // namespace
}  // namespace baton::test
