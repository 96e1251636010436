// Spool queues end to end: consumers in two pods, one killed mid-item;
// FIFO order; items given back by dead consumers and dead daemons; claim
// timeouts and wake-ups.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <map>
#include <set>
#include <sstream>
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

struct Processed {
  std::uint64_t index;
  std::string id;
  std::string consumer;
};

// The lines "INDEX ID NAME" of consumer logs.
std::vector<Processed> read_logs(const std::vector<std::string>& logs) {
  std::vector<Processed> all;
  for (const std::string& log : logs) {
    std::istringstream in(read_text_file(log));
    Processed p;
    while (in >> p.index >> p.id >> p.consumer) all.push_back(p);
  }
  return all;
}

std::string enqueue(Client& client, const std::string& queue,
                    std::uint64_t index, std::size_t size = 500) {
  PendingItem item = client.enqueue(queue);
  if (!write_all(item.fd(), make_item_content(index, size)))
    throw std::runtime_error("cannot write item " + std::to_string(index));
  return item.commit();
}

// The index of a claimed item, checked whole; throws if it is not.
std::uint64_t item_index(const QueueItem& item) {
  std::string data;
  if (!read_all(item.fd(), data))
    throw std::runtime_error("cannot read " + item.id());
  ContentCheck check = check_item_content(data);
  if (!check.whole) throw std::runtime_error(item.id() + ": " + check.error);
  return check.version;
}

void expect_queue_empty(const std::string& queue_dir) {
  for (const char* sub : {"tmp", "new", "cur"})
    EXPECT_EQ(list_dir(queue_dir + "/" + sub), std::vector<std::string>{})
        << queue_dir << "/" << sub << " is not empty";
}

// 300 (x soak_factor) items enqueued through two pods while three consumers per
// pod claim, verify and acknowledge them; one consumer is killed -9 holding an
// item half read. Every item is acknowledged exactly once, by a consumer that
// finished it (the killed one's item by someone else); none is lost; the
// queue ends empty.
TEST_F(Handoff, SpoolExactlyOnce) {
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b");
  const std::string queue = "jobs/incoming";
  const int items = 300 * soak_factor();
  const std::string stop_file = dir().file("stop");
  const auto started = Clock::now();

  struct Consumer {
    std::string name;
    std::string log;
    Process* process;
  };
  std::vector<Consumer> consumers;
  for (DaemonProcess* daemon : {&a, &b}) {
    for (int i = 0; i < 3; ++i) {
      const std::string name = daemon->pod() + std::to_string(i);
      const bool victim = name == "a0";
      std::vector<std::string> args = {
          "consume",     "--socket", daemon->socket(),
          "--queue",     queue,      "--name",
          name,          "--log",    dir().file(name + ".log"),
          "--stop-file", stop_file};
      if (victim) args.push_back("--hold-first");
      consumers.push_back(
          {name, dir().file(name + ".log"), &start_worker(args)});
    }
  }
  Process& enqueue_a = start_worker(
      {"enqueue", "--socket", a.socket(), "--queue", queue, "--first", "0",
       "--count", std::to_string(items / 2), "--size", "2000"});
  Process& enqueue_b =
      start_worker({"enqueue", "--socket", b.socket(), "--queue", queue,
                    "--first", std::to_string(items / 2), "--count",
                    std::to_string(items / 2), "--size", "2000"});

  // The victim holds its first item, half read: kill it there.
  Process& victim = *consumers[0].process;
  std::optional<std::string> holding = victim.read_stdout_line(15s);
  ASSERT_TRUE(holding && holding->starts_with("holding "))
      << worker_stderr(victim);
  std::istringstream held_line(holding->substr(8));
  std::uint64_t held_index = 0;
  std::string held_id;
  held_line >> held_index >> held_id;
  victim.kill_and_wait();

  std::map<std::uint64_t, std::string> enqueued;  // index -> item id
  for (Process* enqueuer : {&enqueue_a, &enqueue_b}) {
    std::optional<ExitStatus> status = enqueuer->wait(30s * soak_factor());
    std::string out = enqueuer->read_stdout(1s);
    ASSERT_TRUE(status && status->exited() && status->code() == 0)
        << "enqueuer: " << (status ? status->describe() : "still running")
        << "\n"
        << worker_stderr(*enqueuer);
    std::istringstream in(out);
    std::string word, id;
    std::uint64_t index;
    while (in >> word >> index >> id) enqueued[index] = id;
  }
  ASSERT_EQ(enqueued.size(), static_cast<std::size_t>(items));
  EXPECT_EQ(enqueued[held_index], held_id);

  std::vector<std::string> logs;
  for (const Consumer& consumer : consumers) logs.push_back(consumer.log);
  const bool all_done = wait_until(
      [&] { return read_logs(logs).size() >= static_cast<std::size_t>(items); },
      30s * soak_factor(), 10ms);
  write_file(stop_file, "");
  for (std::size_t i = 1; i < consumers.size(); ++i) {
    std::optional<ExitStatus> status = consumers[i].process->wait(10s);
    EXPECT_TRUE(status && status->exited() && status->code() == 0)
        << "consumer " << consumers[i].name << ": "
        << (status ? status->describe() : "still running") << "\n"
        << consumers[i].process->read_stdout(100ms)
        << worker_stderr(*consumers[i].process);
  }
  EXPECT_TRUE(all_done) << "only " << read_logs(logs).size() << " of " << items
                        << " items were processed";

  // The checker, over the whole history.
  std::map<std::uint64_t, std::vector<Processed>> by_index;
  std::map<std::string, int> per_consumer;
  for (const Processed& p : read_logs(logs)) {
    by_index[p.index].push_back(p);
    ++per_consumer[p.consumer];
  }
  for (int index = 0; index < items; ++index) {
    auto it = by_index.find(index);
    if (it == by_index.end()) {
      ADD_FAILURE() << "item " << index << " (" << enqueued[index]
                    << ") was lost";
      continue;
    }
    EXPECT_EQ(it->second.size(), 1u) << "item " << index << " was acknowledged "
                                     << it->second.size() << " times";
    for (const Processed& p : it->second)
      EXPECT_EQ(p.id, enqueued[index])
          << "item " << index << " under another id";
  }
  EXPECT_EQ(by_index.size(), static_cast<std::size_t>(items))
      << "unknown items processed";
  EXPECT_EQ(per_consumer.count("a0"), 0u)
      << "the killed consumer acknowledged items";
  ASSERT_EQ(by_index[held_index].size(), 1u);
  EXPECT_NE(by_index[held_index].front().consumer, "a0");
  std::printf("item %llu, held by the killed consumer, was processed by %s\n",
              static_cast<unsigned long long>(held_index),
              by_index[held_index].front().consumer.c_str());
  for (const auto& [name, count] : per_consumer)
    std::printf("  %s: %d items\n", name.c_str(), count);
  expect_queue_empty(root() + "/" + queue);
  std::printf("%d items, 6 consumers in 2 pods, in %lld ms\n", items,
              ms_between(started, Clock::now()));
}

// One consumer sees items in enqueue order, whichever pod enqueued them.
TEST_F(Handoff, SpoolFifo) {
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b");
  Client producers[2] = {connect(a.socket()), connect(b.socket())};
  const std::string queue = "fifo";
  std::vector<std::string> ids;
  for (int index = 0; index < 30; ++index)
    ids.push_back(enqueue(producers[index % 2], queue, index));
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()))
      << "ids do not sort in enqueue order";
  Client consumer = connect(b.socket());
  for (int index = 0; index < 30; ++index) {
    QueueItem item = consumer.claim(queue, 5s);
    EXPECT_EQ(item.id(), ids[index]);
    EXPECT_EQ(item_index(item), static_cast<std::uint64_t>(index));
    item.ack();
  }
  std::error_code ec;
  consumer.claim(queue, 0ms, ec);
  EXPECT_EQ(ec, make_error_code(errc::timed_out));
  expect_queue_empty(root() + "/" + queue);
}

// A daemon remembers the names it listed in new/ between claims. An item
// another pod gives back meanwhile is older than those names: it must come
// next once the listing is older than --poll-interval, and every item must
// still come out exactly once.
TEST_F(Handoff, ClaimSeesAnItemAnotherPodReturnedAfterTheRescanInterval) {
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b", {"--poll-interval", "0.2"});
  Client ca = connect(a.socket());
  Client cb = connect(b.socket());
  const std::string queue = "returned";
  std::vector<std::string> ids;
  for (int index = 0; index < 6; ++index) ids.push_back(enqueue(ca, queue, index));

  std::set<std::string> done;
  {
    QueueItem first = ca.claim(queue, 5s);  // pod a holds item 0
    ASSERT_EQ(first.id(), ids[0]);
    QueueItem second = cb.claim(queue, 5s);  // pod b lists 1..5, takes 1
    ASSERT_EQ(second.id(), ids[1]);
    second.ack();
    done.insert(ids[1]);
  }  // pod a gives item 0 back
  std::this_thread::sleep_for(300ms);
  QueueItem returned = cb.claim(queue, 5s);
  EXPECT_EQ(returned.id(), ids[0]) << "the returned item was not seen after the rescan interval";
  EXPECT_EQ(item_index(returned), 0u);
  done.insert(returned.id());
  returned.ack();
  for (;;) {
    std::error_code ec;
    QueueItem item = cb.claim(queue, 0ms, ec);
    if (ec) {
      EXPECT_EQ(ec, make_error_code(errc::timed_out)) << ec.message();
      break;
    }
    EXPECT_TRUE(done.insert(item.id()).second) << item.id() << " came out twice";
    item.ack();
  }
  EXPECT_EQ(done, std::set<std::string>(ids.begin(), ids.end()));
  expect_queue_empty(root() + "/" + queue);
}

// A consumer that stalls between locking an item in new/ and moving it
// (an NFS server that stopped answering) must not make other claims spin on
// that item: they time out as on an empty queue, and take it once free.
TEST_F(Handoff, ClaimGoesPastAnItemAnotherConsumerLockedButDidNotMove) {
  DaemonProcess& a = start_daemon("a");
  Client client = connect(a.socket());
  const std::string queue = "stalled";
  const std::string id = enqueue(client, queue, 3);
  int stalled = ::open((root() + "/" + queue + "/new/" + id).c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(stalled, 0);
  struct flock lock{};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_len = 1;
  ASSERT_EQ(::fcntl(stalled, F_OFD_SETLK, &lock), 0);

  std::error_code ec;
  const Clock::time_point start = Clock::now();
  client.claim(queue, 300ms, ec);
  EXPECT_EQ(ec, make_error_code(errc::timed_out)) << ec.message();
  EXPECT_LT(ms_between(start, Clock::now()), 5000) << "the claim spun on the locked item";
  client.ping(ec);
  EXPECT_FALSE(ec) << "the daemon stopped answering: " << ec.message();

  ::close(stalled);  // the stalled consumer died: the item is free again
  QueueItem item = client.claim(queue, 5s);
  EXPECT_EQ(item.id(), id);
  EXPECT_EQ(item_index(item), 3u);
  item.ack();
  expect_queue_empty(root() + "/" + queue);
}

// Claims take only items: dot-files in new/ (editors' files, NFS's
// ".nfsXXXX" silly renames) are never handed out.
TEST_F(Handoff, ClaimSkipsDotFiles) {
  DaemonProcess& a = start_daemon("a");
  Client client = connect(a.socket());
  const std::string queue = "dotted";
  const std::string id = enqueue(client, queue, 1);
  for (const char* name : {".nfs0000000000001a2b00000001", ".hidden", ".000"})
    write_file(root() + "/" + queue + "/new/" + name, "not an item");
  QueueItem item = client.claim(queue, 5s);
  EXPECT_EQ(item.id(), id);
  item.ack();
  std::error_code ec;
  client.claim(queue, 0ms, ec);
  EXPECT_EQ(ec, make_error_code(errc::timed_out)) << "a dot-file was claimed";
  EXPECT_EQ(list_dir(root() + "/" + queue + "/new"),
            (std::vector<std::string>{".000", ".hidden",
                                      ".nfs0000000000001a2b00000001"}));
}

// A queue inside another queue's own directories would be scanned and swept
// as its items, and a file is no queue: both refused as invalid paths, and
// nothing is created.
TEST_F(Handoff, QueueInsideAQueueOrOnAFileIsRefused) {
  DaemonProcess& a = start_daemon("a");
  Client client = connect(a.socket());
  enqueue(client, "outer", 1);
  write_file(root() + "/plain", "not a queue");
  for (const char* queue : {"outer/new", "outer/cur/deeper", "outer/tmp", "plain", "plain/q"}) {
    std::error_code ec;
    client.claim(queue, 0ms, ec);
    EXPECT_EQ(ec, make_error_code(errc::invalid_path)) << queue << ": " << ec.message();
    EXPECT_EQ(client.last_error_message().find('\n'), std::string::npos);
    client.enqueue(queue, ec);
    EXPECT_EQ(ec, make_error_code(errc::invalid_path)) << queue << ": " << ec.message();
  }
  EXPECT_EQ(list_dir(root() + "/outer/new").size(), 1u) << "a queue was made inside outer/new";
  // A directory merely named like one is fine where no queue owns it.
  enqueue(client, "inbox/new", 2);
  QueueItem item = client.claim("inbox/new", 5s);
  EXPECT_TRUE(item);
}

// A claimed item that is not acknowledged goes back to the queue: when the
// QueueItem is dropped, when the consumer process is killed -9, and when
// the consumer's daemon is killed -9 (another pod takes it back from cur/).
TEST_F(Handoff, AbandonedClaimReturnsToQueue) {
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b");
  Client ca = connect(a.socket());
  Client cb = connect(b.socket());
  const std::string queue = "abandoned";
  const std::string id = enqueue(ca, queue, 7);

  {
    QueueItem item = ca.claim(queue, 5s);
    ASSERT_EQ(item.id(), id);
  }  // dropped: nack
  {
    QueueItem item = cb.claim(queue, 5s);
    EXPECT_EQ(item.id(), id) << "the dropped item did not come back";
    EXPECT_EQ(item_index(item), 7u);
  }

  Process& victim =
      start_worker({"consume", "--socket", a.socket(), "--queue", queue,
                    "--name", "victim", "--log", dir().file("victim.log"),
                    "--stop-file", dir().file("stop"), "--hold-first"});
  ASSERT_EQ(victim.read_stdout_line(10s), "holding 7 " + id)
      << worker_stderr(victim);
  std::error_code ec;
  cb.claim(queue, 0ms, ec);
  EXPECT_EQ(ec, make_error_code(errc::timed_out))
      << "a held item was claimed twice";
  victim.kill_and_wait();
  {
    QueueItem item = cb.claim(queue, 5s);
    EXPECT_EQ(item.id(), id) << "the killed consumer's item did not come back";
    EXPECT_EQ(item_index(item), 7u);
  }

  {
    QueueItem item = ca.claim(queue, 5s);
    ASSERT_EQ(item.id(), id);
    a.kill9();  // the consumer's pod dies with the item in cur/
    QueueItem again = cb.claim(queue, 5s);
    EXPECT_EQ(again.id(), id)
        << "a dead daemon's claimed item did not come back";
    EXPECT_EQ(item_index(again), 7u);
    again.ack();
  }
  cb.claim(queue, 0ms, ec);
  EXPECT_EQ(ec, make_error_code(errc::timed_out));
  expect_queue_empty(root() + "/" + queue);
}

// claim on an empty queue ends with timed_out near its timeout (and at
// once with a zero timeout); a waiting claim wakes promptly when another
// pod enqueues.
TEST_F(Handoff, ClaimTimeout) {
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b", {"--poll-interval", "5"});
  Client ca = connect(a.socket());
  Client cb = connect(b.socket());
  std::error_code ec;
  Clock::time_point start = Clock::now();
  cb.claim("empty", 300ms, ec);
  long long took = ms_between(start, Clock::now());
  EXPECT_EQ(ec, make_error_code(errc::timed_out)) << ec.message();
  EXPECT_GE(took, 290);
  EXPECT_LT(took, 2300);
  EXPECT_EQ(cb.last_error_message().find('\n'), std::string::npos);
  start = Clock::now();
  cb.claim("empty", 0ms, ec);
  EXPECT_EQ(ec, make_error_code(errc::timed_out));
  EXPECT_LT(ms_between(start, Clock::now()), 1000);

  auto claimed = std::async(std::launch::async, [&] {
    std::error_code claim_ec;
    QueueItem item = cb.claim("empty", 10s, claim_ec);
    std::string id = item.id();
    if (item) item.ack(claim_ec);
    return std::make_pair(id, Clock::now());
  });
  std::this_thread::sleep_for(50ms);  // lets the claim block (see wait_test)
  const std::string id = enqueue(ca, "empty", 1);
  const Clock::time_point committed = Clock::now();
  ASSERT_EQ(claimed.wait_for(10s), std::future_status::ready);
  auto [got, when] = claimed.get();
  EXPECT_EQ(got, id);
  EXPECT_LT(ms_between(committed, when), 1000)
      << "the claim waited for its 5 s poll";
}

}  // namespace
}  // namespace baton::test
