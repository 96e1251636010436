// Publish end to end: whole versions under concurrent reads, crashes of
// writers and daemons, fencing tokens, create-only publishes and aborts.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <future>
#include <random>
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

// "committed K VERSION" lines of a publish worker: K -> VERSION.
std::vector<std::pair<std::uint64_t, std::uint64_t>> committed_lines(
    const std::string& out) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> lines;
  std::istringstream in(out);
  std::string word;
  std::uint64_t k = 0, version = 0;
  while (in >> word) {
    if (word == "committed" && in >> k >> version)
      lines.emplace_back(k, version);
  }
  return lines;
}

// True when another open file description holds a lock on PATH (its owner
// is alive); false when the lock could be taken (the owner is gone).
bool locked_by_someone(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  bool held = ::fcntl(fd, F_OFD_SETLK, &lock) != 0;
  ::close(fd);
  return held;
}

// Sets PATH's times AGE into the past.
void age_file(const std::string& path, std::chrono::seconds age) {
  timespec times[2];
  ::clock_gettime(CLOCK_REALTIME, &times[0]);
  times[0].tv_sec -= age.count();
  times[1] = times[0];
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

ContentCheck check_file(const std::string& path) {
  std::optional<std::string> data = read_file(path);
  if (!data) return {false, 0, "cannot read " + path};
  return check_version_content(*data);
}

std::string opened_content(Client& client, const std::string& path,
                           std::uint64_t* version = nullptr) {
  OpenedFile file = client.open(path);
  if (version) *version = file.version;
  std::string data;
  if (!read_all(file.fd, data)) throw std::runtime_error("cannot read " + path);
  if (data.size() != file.size)
    throw std::runtime_error(path + ": read " + std::to_string(data.size()) +
                             " bytes, OpenedFile::size says " +
                             std::to_string(file.size));
  return data;
}

// A writer publishes 200 (x soak_factor) versions of a 1 MiB file through two
// daemons while readers read it as a plain file and through Client::open: every
// read is one whole version, and no reader sees versions go backwards.
TEST_F(Handoff, NoTornReads) {
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b");
  const std::string path = "shared/big.bin";
  const int versions = 200 * soak_factor();
  const auto started = Clock::now();
  // Readers first, so they are reading while the versions change.
  Process& reader_a =
      start_worker({"read", "--socket", a.socket(), "--root", root(), "--path",
                    path, "--until", std::to_string(versions)});
  Process& reader_b =
      start_worker({"read", "--socket", b.socket(), "--root", root(), "--path",
                    path, "--until", std::to_string(versions)});
  Process& writer =
      start_worker({"publish", "--socket", a.socket(), "--socket", b.socket(),
                    "--path", path, "--first", "1", "--count",
                    std::to_string(versions), "--blocks", "256"});

  std::optional<ExitStatus> written = writer.wait(60s * soak_factor());
  std::string writer_out = writer.read_stdout(1s);
  ASSERT_TRUE(written && written->exited() && written->code() == 0)
      << "writer: " << (written ? written->describe() : "still running") << "\n"
      << worker_stderr(writer);
  // Versions grow by one per publish, whichever daemon published it.
  auto commits = committed_lines(writer_out);
  ASSERT_EQ(commits.size(), static_cast<std::size_t>(versions));
  for (std::size_t i = 0; i < commits.size(); ++i)
    EXPECT_EQ(commits[i].second, i + 1)
        << "version of publish " << commits[i].first;

  for (Process* reader : {&reader_a, &reader_b}) {
    std::optional<ExitStatus> status = reader->wait(60s * soak_factor());
    std::string out = reader->read_stdout(1s);
    EXPECT_TRUE(status && status->exited() && status->code() == 0)
        << "reader: " << (status ? status->describe() : "still running") << ": "
        << out << worker_stderr(*reader);
    // The reads overlapped the publishes: a reader that saw only the last
    // version would prove nothing.
    unsigned long long plain = 0, client = 0, distinct = 0;
    ASSERT_EQ(
        std::sscanf(out.c_str(), "reads plain=%llu client=%llu distinct=%llu",
                    &plain, &client, &distinct),
        3)
        << out;
    std::printf(
        "reader: %llu plain reads, %llu through the daemon, %llu versions "
        "seen\n",
        plain, client, distinct);
    EXPECT_GE(distinct, 3u) << "the readers did not overlap the writer";
  }
  EXPECT_EQ(staging_files(root()), std::vector<std::string>{});
  std::printf("%d versions of 1 MiB through two daemons in %lld ms\n", versions,
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(
                      Clock::now() - started)
                      .count()));
}

// The checker the torn-read test relies on does catch torn and truncated
// files (its negative control), and passes a whole one.
TEST_F(Handoff, TornReadCheckerCatchesTornFiles) {
  const std::string old_version = make_version_content(1, 16);
  const std::string new_version = make_version_content(2, 16);
  const std::string torn = old_version.substr(0, 8 * k_block_size) +
                           new_version.substr(8 * k_block_size);
  const std::string truncated = new_version.substr(0, 15 * k_block_size);
  std::string flipped = new_version;
  flipped[5 * k_block_size + 1000] ^= 1;
  struct Case {
    std::string name, data;
    int code;
  };
  for (const Case& c :
       {Case{"whole", new_version, 0}, Case{"torn", torn, 3},
        Case{"truncated", truncated, 3}, Case{"flipped", flipped, 3}}) {
    const std::string file = dir().file(c.name);
    write_file(file, c.data);
    Process& checker = start_worker({"check-file", "--file", file});
    std::optional<ExitStatus> status = checker.wait(10s);
    std::string out = checker.read_stdout(1s);
    ASSERT_TRUE(status && status->exited()) << c.name;
    EXPECT_EQ(status->code(), c.code) << c.name << ": " << out;
  }
}

// Writers killed (kill -9) at chosen and random points of their publishes,
// and daemons killed mid-publish: the destination is always one whole
// version, the last committed one or the one in flight; a live daemon
// removes the staging file of its dead client at once; a dead daemon's
// staging file is swept by a fresh daemon's first publish there.
TEST_F(Handoff, CrashConsistency) {
  const std::string path = "crash/out.bin";
  const std::string file = root() + "/" + path;
  const std::string blocks = "64";  // 256 KiB: writes take a while
  std::mt19937 random(std::random_device{}());
  const unsigned seed = random();
  random.seed(seed);
  SCOPED_TRACE("random seed " + std::to_string(seed));

  DaemonProcess* a = &start_daemon("a");
  {
    Client client = connect(a->socket());
    publish(client, path, make_version_content(1, 64));
  }
  std::uint64_t last = 1;  // the version the destination holds
  // All along, a reader checks every plain read of the destination: whole,
  // and never older than the read before.
  std::atomic<bool> stop_reading{false};
  std::string read_error;
  std::uint64_t reads = 0;
  std::thread reader([&] {
    std::uint64_t newest = 0;
    while (!stop_reading && read_error.empty()) {
      ContentCheck seen = check_file(file);
      if (!seen.whole)
        read_error = "torn read: " + seen.error;
      else if (seen.version < newest)
        read_error = "version " + std::to_string(seen.version) + " after " +
                     std::to_string(newest);
      newest = std::max(newest, seen.version);
      ++reads;
      // A sample, not a spin: leave the cores to the writers and daemons.
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
  });
  struct Join {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~Join() {
      stop = true;
      thread.join();
    }
  } join_reader{stop_reading, reader};

  // 1. The writer killed at chosen points: after the staging file was
  //    created, half-way through the content, and with all of it written.
  for (const char* point : {"begun", "half", "written"}) {
    SCOPED_TRACE(point);
    const std::uint64_t k = last + 1;
    Process& writer = start_worker(
        {"publish", "--socket", a->socket(), "--path", path, "--first",
         std::to_string(k), "--blocks", blocks, "--pause-at", point});
    std::optional<std::string> line = writer.read_stdout_line(10s);
    ASSERT_EQ(line, "paused " + std::to_string(k) + " " + point)
        << worker_stderr(writer);
    ASSERT_EQ(staging_files(root()).size(), 1u)
        << "no live staging file mid-publish";
    writer.kill_and_wait();
    EXPECT_EQ(wait_for_no_staging(), std::vector<std::string>{})
        << "the daemon kept its dead client's staging file";
    ContentCheck now = check_file(file);
    EXPECT_TRUE(now.whole) << now.error;
    EXPECT_EQ(now.version, last)
        << "a killed, uncommitted publish became visible";
  }

  // 2. The writer killed at random points of a publishing loop.
  for (int round = 0; round < 30 * soak_factor(); ++round) {
    SCOPED_TRACE("writer round " + std::to_string(round));
    const std::uint64_t first = last + 1;
    Process& writer = start_worker(
        {"publish", "--socket", a->socket(), "--path", path, "--first",
         std::to_string(first), "--count", "0", "--blocks", blocks});
    std::optional<std::string> line = writer.read_stdout_line(10s);
    ASSERT_TRUE(line && line->starts_with("committed "))
        << worker_stderr(writer);
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 20000));
    writer.kill_and_wait();
    auto commits = committed_lines(*line + "\n" + writer.read_stdout(1s));
    ASSERT_FALSE(commits.empty());
    const std::uint64_t committed = commits.back().first;
    ContentCheck now = check_file(file);
    ASSERT_TRUE(now.whole) << now.error;
    // A commit the writer sent before it died may still land: once no
    // staging file is left, the daemon is done with the dead writer.
    EXPECT_EQ(wait_for_no_staging(), std::vector<std::string>{});
    ContentCheck settled = check_file(file);
    ASSERT_TRUE(settled.whole) << settled.error;
    // The last version it saw committed, or the next one if the commit
    // went through but the writer died before reading the answer.
    for (const ContentCheck& seen : {now, settled}) {
      EXPECT_TRUE(seen.version == committed || seen.version == committed + 1)
          << "destination holds version " << seen.version << ", last committed "
          << committed;
    }
    last = settled.version;
  }

  // 3. The daemon killed mid-publish: its staging file stays, unlocked.
  {
    const std::uint64_t k = last + 1;
    Process& writer = start_worker(
        {"publish", "--socket", a->socket(), "--path", path, "--first",
         std::to_string(k), "--blocks", blocks, "--pause-at", "half"});
    ASSERT_EQ(writer.read_stdout_line(10s),
              "paused " + std::to_string(k) + " half")
        << worker_stderr(writer);
    a->kill9();
    std::vector<std::string> garbage = staging_files(root());
    ASSERT_EQ(garbage.size(), 1u) << join(garbage);
    EXPECT_FALSE(locked_by_someone(root() + "/" + garbage.front()))
        << "a dead daemon's staging file is still locked";
    // The writer, continued, cannot commit: its daemon is gone.
    writer.kill(SIGCONT);
    std::optional<ExitStatus> status = writer.wait(10s);
    ASSERT_TRUE(status && status->exited()) << "writer did not end";
    EXPECT_EQ(status->code(), 4) << worker_stderr(writer);
    ContentCheck now = check_file(file);
    EXPECT_TRUE(now.whole) << now.error;
    EXPECT_EQ(now.version, last);
    EXPECT_EQ(staging_files(root()), garbage)
        << "the garbage went away by itself?";
  }
  // A fresh daemon sweeps it on its first publish into that directory.
  {
    DaemonProcess& fresh = start_daemon("sweeper");
    Client client = connect(fresh.socket());
    ++last;
    publish(client, path, make_version_content(last, 64));
    EXPECT_EQ(staging_files(root()), std::vector<std::string>{})
        << "a fresh daemon's first publish did not sweep the dead daemon's "
           "staging file";
  }

  // 4. Daemons killed at random points of a publishing loop; each next
  //    daemon is fresh and sweeps what the previous one left.
  for (int round = 0; round < 8 * soak_factor(); ++round) {
    SCOPED_TRACE("daemon round " + std::to_string(round));
    DaemonProcess& daemon = start_daemon("d" + std::to_string(round));
    const std::uint64_t first = last + 1;
    Process& writer = start_worker(
        {"publish", "--socket", daemon.socket(), "--path", path, "--first",
         std::to_string(first), "--count", "0", "--blocks", blocks});
    std::optional<std::string> line = writer.read_stdout_line(10s);
    ASSERT_TRUE(line && line->starts_with("committed "))
        << worker_stderr(writer);
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 20000));
    daemon.kill9();
    std::optional<ExitStatus> status = writer.wait(10s);
    ASSERT_TRUE(status && status->exited())
        << "writer did not end without its daemon";
    EXPECT_EQ(status->code(), 4) << worker_stderr(writer);
    auto commits = committed_lines(*line + "\n" + writer.read_stdout(1s));
    ASSERT_FALSE(commits.empty());
    const std::uint64_t committed = commits.back().first;
    ContentCheck now = check_file(file);
    ASSERT_TRUE(now.whole) << now.error;
    EXPECT_TRUE(now.version == committed || now.version == committed + 1)
        << "destination holds version " << now.version << ", last committed "
        << committed;
    last = now.version;
  }
  // A daemon killed between creating its staging file and locking it
  // leaves a ".baton-new.*" name, which a sweep removes only once it is a
  // minute old (younger, it may be a live daemon's, a moment before its
  // lock). Age such leftovers as a minute would.
  int aged = 0;
  for (const std::string& left : staging_files(root())) {
    if (left.find("/.baton-new.") == std::string::npos) continue;
    age_file(root() + "/" + left, 120s);
    ++aged;
  }
  std::printf("daemon kills left %d unlocked-yet staging file(s) to age\n",
              aged);
  DaemonProcess& last_daemon = start_daemon("z");
  Client client = connect(last_daemon.socket());
  ++last;
  publish(client, path, make_version_content(last, 64));
  EXPECT_EQ(staging_files(root()), std::vector<std::string>{});
  // Nothing but the destination in its directory.
  EXPECT_EQ(list_dir(root() + "/crash"), std::vector<std::string>{"out.bin"});
  ContentCheck now = check_file(file);
  EXPECT_TRUE(now.whole && now.version == last) << now.error;
  stop_reading = true;
  reader.join();
  reader = std::thread([] {});  // for join_reader
  EXPECT_EQ(read_error, "") << "after " << reads << " reads";
  std::printf("%llu plain reads during the crashes, all whole\n",
              static_cast<unsigned long long>(reads));
}

// A daemon that dies after a publish's rename and before its version record
// (seccomp_exec kills it at that write) has made new content visible: the
// path's version must still move past the one that named the old content,
// so that a waiter who saw the old version is told (even one blocked before
// the crash, on another pod), every pod gives the new content the same
// number, and no version number ever names two contents.
TEST_F(Handoff, DaemonKilledAfterRenameStillAdvancesTheVersion) {
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b", {"--poll-interval", "0.1"});
  Client client = connect(a.socket());
  Client other = connect(b.socket());
  Client blocked_waiter = connect(b.socket());
  const std::string path = "record/file";
  const std::uint64_t first = publish(client, path, "one");
  ASSERT_EQ(first, 1u);
  WaitOptions blocked_options;
  blocked_options.newer_than = first;
  blocked_options.timeout = 10s;
  std::future<std::pair<std::uint64_t, std::error_code>> blocked =
      std::async(std::launch::async, [&] {
        std::error_code ec;
        std::uint64_t seen = blocked_waiter.wait(path, blocked_options, ec);
        return std::make_pair(seen, ec);
      });
  // Lets the wait block in the daemon first (without it the test still
  // passes, by the wait's first check).
  std::this_thread::sleep_for(50ms);

  const std::string fragile =
      start_filtered_daemon("fragile", {"--die-on-version-record"});
  {
    Client doomed = connect(fragile);
    Publisher publisher = doomed.publish(path);
    ASSERT_TRUE(write_all(publisher.fd(), "two"));
    std::error_code ec;
    publisher.commit(ec);
    EXPECT_EQ(ec, make_error_code(errc::connection_lost)) << ec.message();
  }
  std::optional<ExitStatus> died = filtered_daemon("fragile").wait(5s);
  ASSERT_TRUE(died && died->signaled()) << "the fragile daemon did not die";
  // The crash came after the rename: the new content is there.
  ASSERT_EQ(read_file(root() + "/" + path), "two");

  std::uint64_t version = 0, version_b = 0;
  EXPECT_EQ(opened_content(client, path, &version), "two");
  EXPECT_GT(version, first)
      << "version " << first << " named 'one' and now names 'two'";
  EXPECT_EQ(opened_content(other, path, &version_b), "two");
  EXPECT_EQ(version_b, version) << "two pods number 'two' differently";
  WaitOptions newer;
  newer.newer_than = first;
  newer.timeout = 1s;
  std::error_code ec;
  const std::uint64_t seen = client.wait(path, newer, ec);
  EXPECT_FALSE(ec) << "a waiter who saw version " << first
                   << " is never told about 'two': " << ec.message();
  EXPECT_EQ(seen, version);
  ASSERT_EQ(blocked.wait_for(15s), std::future_status::ready);
  auto [blocked_seen, blocked_ec] = blocked.get();
  EXPECT_FALSE(blocked_ec) << "a waiter blocked on pod b before the crash: "
                           << blocked_ec.message();
  EXPECT_EQ(blocked_seen, version);
  // The next publish, from either pod, is the next version.
  const std::uint64_t third = publish(other, path, "three");
  EXPECT_EQ(third, version + 1);
  EXPECT_EQ(opened_content(client, path, &version), "three");
  EXPECT_EQ(version, third);
  EXPECT_EQ(wait_for_no_staging(), std::vector<std::string>{});
}

// A daemon that dies after announcing a publish (its intent) and before
// the rename has changed nothing visible: the content and the version stay
// what they were, waiters are not woken, and the next publish (from a fresh
// pod, which also sweeps the dead daemon's staging file) is the next
// version.
TEST_F(Handoff, DaemonKilledBeforeRenameKeepsTheVersion) {
  DaemonProcess& a = start_daemon("a");
  Client client = connect(a.socket());
  const std::string path = "intent/file";
  const std::uint64_t first = publish(client, path, "one");
  ASSERT_EQ(first, 1u);

  const std::string fragile =
      start_filtered_daemon("fragile", {"--die-on-version-intent"});
  {
    Client doomed = connect(fragile);
    Publisher publisher = doomed.publish(path);
    ASSERT_TRUE(write_all(publisher.fd(), "two"));
    std::error_code ec;
    publisher.commit(ec);
    EXPECT_EQ(ec, make_error_code(errc::connection_lost)) << ec.message();
  }
  std::optional<ExitStatus> died = filtered_daemon("fragile").wait(5s);
  ASSERT_TRUE(died && died->signaled()) << "the fragile daemon did not die";
  ASSERT_EQ(read_file(root() + "/" + path), "one");
  EXPECT_EQ(staging_files(root()).size(), 1u)
      << "the dead daemon's staging file: " << join(staging_files(root()));

  std::uint64_t version = 0;
  EXPECT_EQ(opened_content(client, path, &version), "one");
  EXPECT_EQ(version, first);
  WaitOptions newer;
  newer.newer_than = first;
  newer.timeout = 300ms;
  std::error_code ec;
  client.wait(path, newer, ec);
  EXPECT_EQ(ec, make_error_code(errc::timed_out)) << ec.message();

  DaemonProcess& fresh = start_daemon("fresh");
  Client fresh_client = connect(fresh.socket());
  EXPECT_EQ(publish(fresh_client, path, "three"), first + 1);
  EXPECT_EQ(opened_content(client, path, &version), "three");
  EXPECT_EQ(version, first + 1);
  EXPECT_EQ(wait_for_no_staging(), std::vector<std::string>{});
}

// The version record file of PATH (daemon/publish.cpp: FNV-1a of the path,
// slot 0).
std::string record_file(const std::string& root, const std::string& path) {
  std::uint64_t hash = 1469598103934665603ull;
  for (char c : path) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  char name[64];
  std::snprintf(name, sizeof name, "%016llx-0.v",
                static_cast<unsigned long long>(hash));
  return root + "/.baton/versions/" + name;
}

// A record in the first format (a 64-byte header, no pending inode) is
// read as it says, and the next publish goes on from it.
TEST_F(Handoff, FirstFormatVersionRecordIsRead) {
  const std::string path = "legacy/file";
  dir().make_dir("root/legacy");
  write_file(root() + "/" + path, "old content");
  std::string header = "baton-version 1 version=41 token=9";
  header.resize(63, ' ');
  dir().make_dir("root/.baton");
  dir().make_dir("root/.baton/versions");
  write_file(record_file(root(), path), header + "\n" + path + "\n");

  DaemonProcess& a = start_daemon("a");
  Client client = connect(a.socket());
  std::uint64_t version = 0;
  EXPECT_EQ(opened_content(client, path, &version), "old content");
  EXPECT_EQ(version, 41u);
  PublishOptions stale;
  stale.token = 8;
  Publisher refused = client.publish(path, stale);
  std::error_code ec;
  refused.commit(ec);
  EXPECT_EQ(ec, make_error_code(errc::stale_token)) << ec.message();
  EXPECT_EQ(publish(client, path, "new content"), 42u);
  EXPECT_EQ(publish(client, path, "newer content"), 43u);
  EXPECT_EQ(opened_content(client, path, &version), "newer content");
  EXPECT_EQ(version, 43u);
}

// A damaged version record is an error that says what to do, never a
// version that went back to 0; once removed, the path starts again.
TEST_F(Handoff, DamagedVersionRecordIsAnError) {
  DaemonProcess& a = start_daemon("a");
  Client client = connect(a.socket());
  const std::string path = "damaged/file";
  publish(client, path, "one");
  publish(client, path, "two");
  const std::string record = record_file(root(), path);
  std::optional<std::string> text = read_file(record);
  ASSERT_TRUE(text && text->starts_with("baton-version 2 version=2 "))
      << record << ": " << text.value_or("(missing)");
  std::string damaged = *text;
  damaged[24] = '7';  // "version=7": the check no longer matches
  write_file(record, damaged);

  std::error_code ec;
  client.open(path, ec);
  EXPECT_EQ(ec, make_error_code(errc::io_error)) << ec.message();
  const std::string message = client.last_error_message();
  EXPECT_NE(message.find("damaged"), std::string::npos) << message;
  EXPECT_NE(message.find(".baton/versions"), std::string::npos) << message;
  Publisher publisher = client.publish(path);
  ASSERT_TRUE(write_all(publisher.fd(), "three"));
  publisher.commit(ec);
  EXPECT_EQ(ec, make_error_code(errc::io_error)) << ec.message();
  EXPECT_EQ(read_file(root() + "/" + path), "two");

  ASSERT_EQ(::unlink(record.c_str()), 0);
  EXPECT_EQ(publish(client, path, "three"), 1u);
}

// The sweep on a daemon's first publish into a directory removes staging
// files nobody holds (a dead daemon's) and old unlocked ".baton-new.*"
// names, and keeps a live (locked) staging file, a young ".baton-new.*"
// (perhaps a live daemon's, a moment before its lock) and the user's files.
TEST_F(Handoff, SweepRemovesOnlyDeadStagingFiles) {
  const std::string swept = dir().make_dir("root/swept");
  for (const char* name :
       {".baton-stage.dead", ".baton-stage.live", ".baton-new.old",
        ".baton-new.young", ".hidden", "user.txt"})
    write_file(swept + "/" + name, name);
  age_file(swept + "/.baton-new.old", 120s);
  int live = ::open((swept + "/.baton-stage.live").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(live, 0);
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  ASSERT_EQ(::fcntl(live, F_OFD_SETLK, &lock), 0);

  DaemonProcess& a = start_daemon("a");
  Client client = connect(a.socket());
  publish(client, "swept/out", "published");
  EXPECT_EQ(list_dir(swept),
            (std::vector<std::string>{".baton-new.young", ".baton-stage.live",
                                      ".hidden", "out", "user.txt"}));
  ::close(live);
}

// A publish with a token older than one already used on the path is
// refused, alone and in a real lock flow: holder A loses the lock (its
// connection dies), B gets a newer token and publishes; A's late publish,
// begun while it held the lock, is refused and B's content stays.
TEST_F(Handoff, FencingRefusesStaleTokens) {
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b");
  Client ca = connect(a.socket());
  const std::string simple = "fenced/simple";
  PublishOptions seven;
  seven.token = 7;
  publish(ca, simple, "seven", seven);
  {
    PublishOptions five;
    five.token = 5;
    Publisher publisher = ca.publish(simple, five);
    ASSERT_TRUE(write_all(publisher.fd(), "five"));
    std::error_code ec;
    publisher.commit(ec);
    EXPECT_EQ(ec, make_error_code(errc::stale_token)) << ec.message();
    EXPECT_EQ(ca.last_error_message().find('\n'), std::string::npos);
    EXPECT_NE(ca.last_error_message().find('7'), std::string::npos)
        << "the refusal should name the newer token: "
        << ca.last_error_message();
  }
  EXPECT_EQ(read_file(root() + "/" + simple), "seven");
  EXPECT_EQ(opened_content(ca, simple), "seven");
  publish(ca, simple, "seven again", seven);  // the same token is fine
  EXPECT_EQ(read_file(root() + "/" + simple), "seven again");
  EXPECT_EQ(wait_for_no_staging(), std::vector<std::string>{});

  // The lock flow. Holder A: `baton run` on pod a, killed with -9.
  const std::string result = "fenced/result";
  const std::string token_file = dir().file("token-a");
  ProcessOptions options;
  options.argv = {baton_cli_path(),
                  "--socket",
                  a.socket(),
                  "run",
                  "--lock",
                  "report",
                  "--",
                  "sh",
                  "-c",
                  "echo \"$BATON_TOKEN $$\" > " + token_file + ".tmp && mv " +
                      token_file + ".tmp " + token_file + " && exec sleep 600"};
  options.env = clean_environment();
  Process holder = Process::spawn(options);
  std::uint64_t token_a = 0;
  pid_t job = -1;
  struct KillJob {  // A's job, if it outlives its wrapper, on every path out
    pid_t& pid;
    ~KillJob() {
      if (pid > 0) ::kill(pid, SIGKILL);
    }
  } kill_job{job};
  ASSERT_TRUE(wait_until(
      [&] {
        std::istringstream in(read_text_file(token_file));
        return static_cast<bool>(in >> token_a >> job);
      },
      10s))
      << "holder A never got the lock";
  // While A holds the lock, its job starts publishing under A's token.
  Client late = connect(a.socket());
  PublishOptions with_a;
  with_a.token = token_a;
  Publisher from_a = late.publish(result, with_a);
  ASSERT_TRUE(write_all(from_a.fd(), "from A"));

  holder.kill_and_wait();  // A's connection dies: the lock is free
  Client cb = connect(b.socket());
  LockOptions wait_for_it;
  wait_for_it.timeout = 10s;
  Lock lock_b = cb.lock("report", wait_for_it);
  const std::uint64_t token_b = lock_b.token();
  EXPECT_GT(token_b, token_a);
  PublishOptions with_b;
  with_b.token = token_b;
  publish(cb, result, "from B", with_b);

  std::error_code ec;
  from_a.commit(ec);
  EXPECT_EQ(ec, make_error_code(errc::stale_token))
      << "A's late commit with token " << token_a << " after B's " << token_b
      << ": " << ec.message();
  {
    Client later = connect(a.socket());
    Publisher again = later.publish(result, with_a);
    ASSERT_TRUE(write_all(again.fd(), "from A, again"));
    again.commit(ec);
    EXPECT_EQ(ec, make_error_code(errc::stale_token)) << ec.message();
  }
  EXPECT_EQ(read_file(root() + "/" + result), "from B");
  EXPECT_EQ(opened_content(cb, result), "from B");
  EXPECT_EQ(wait_for_no_staging(), std::vector<std::string>{});
}

// Two create-only publishes of one new path, from two daemons at once:
// exactly one wins and the other gets already_exists; the winner's content
// is what is there. Twenty paths, each a race.
TEST_F(Handoff, NoReplaceIsCreateOnly) {
  DaemonProcess& a = start_daemon("a");
  DaemonProcess& b = start_daemon("b");
  Client clients[2] = {connect(a.socket()), connect(b.socket())};
  PublishOptions create_only;
  create_only.no_replace = true;
  const int rounds = 20;
  int wins[2] = {0, 0};
  for (int round = 0; round < rounds; ++round) {
    const std::string path = "created/" + std::to_string(round);
    std::barrier ready(2);
    std::error_code results[2];
    std::thread racers[2];
    for (int i = 0; i < 2; ++i) {
      racers[i] = std::thread([&, i] {
        Publisher publisher = clients[i].publish(path, create_only, results[i]);
        if (!results[i] &&
            !write_all(publisher.fd(), "writer " + std::to_string(i)))
          results[i] = std::error_code(errno, std::system_category());
        ready.arrive_and_wait();
        if (!results[i]) publisher.commit(results[i]);
      });
    }
    for (std::thread& racer : racers) racer.join();
    const int won = !results[0] ? 0 : 1;
    ASSERT_FALSE(results[won])
        << path << ": neither won: " << results[0].message() << "; "
        << results[1].message();
    EXPECT_EQ(results[1 - won], make_error_code(errc::already_exists))
        << path << ": the loser got " << results[1 - won].message();
    ++wins[won];
    EXPECT_EQ(read_file(root() + "/" + path), "writer " + std::to_string(won))
        << path;
  }
  std::printf("create-only races won: pod a %d, pod b %d\n", wins[0], wins[1]);
  // Onto an existing file, one at a time: refused, content unchanged.
  Publisher again = clients[1].publish("created/0", create_only);
  ASSERT_TRUE(write_all(again.fd(), "overwrite"));
  std::error_code ec;
  again.commit(ec);
  EXPECT_EQ(ec, make_error_code(errc::already_exists));
  EXPECT_NE(read_file(root() + "/created/0"), "overwrite");
  EXPECT_EQ(wait_for_no_staging(), std::vector<std::string>{});
}

// A published file gets the mode asked for (whatever the daemon's umask),
// without setuid, setgid or sticky bits, in directories created on the way.
TEST_F(Handoff, PublishedFileHasTheModeAskedFor) {
  DaemonProcess& a = start_daemon("a");
  Client client = connect(a.socket());
  for (unsigned mode : {0600u, 0640u, 0644u, 0755u, 0444u}) {
    PublishOptions options;
    options.mode = mode;
    char name[32];
    std::snprintf(name, sizeof name, "modes/deep/%04o", mode);
    publish(client, name, "content", options);
    struct stat info {};
    ASSERT_EQ(::stat((root() + "/" + name).c_str(), &info), 0) << name;
    EXPECT_EQ(info.st_mode & 07777, mode) << name;
    EXPECT_TRUE(S_ISREG(info.st_mode));
  }
  // No setuid, setgid or sticky bit reaches the volume: the file belongs to
  // the daemon's user, not the client's.
  PublishOptions special;
  special.mode = 07755;
  publish(client, "modes/deep/special", "content", special);
  struct stat special_info {};
  ASSERT_EQ(::stat((root() + "/modes/deep/special").c_str(), &special_info), 0);
  EXPECT_EQ(special_info.st_mode & 07777, 0755u);
  // Publishing again replaces the file and its mode.
  PublishOptions options;
  options.mode = 0600;
  publish(client, "modes/deep/0444", "again", options);
  struct stat info {};
  ASSERT_EQ(::stat((root() + "/modes/deep/0444").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0600u);
}

// Aborts leave nothing visible and no staging file: a Publisher destroyed
// uncommitted (new path and existing path), a PendingItem destroyed
// uncommitted, a client killed half-way through a publish or an enqueue.
TEST_F(Handoff, AbortLeavesNoTrace) {
  DaemonProcess& a = start_daemon("a");
  Client client = connect(a.socket());
  {
    Publisher publisher = client.publish("aborted/new.txt");
    ASSERT_TRUE(write_all(publisher.fd(), "never visible"));
  }
  publish(client, "aborted/old.txt", "old");
  {
    Publisher publisher = client.publish("aborted/old.txt");
    ASSERT_TRUE(write_all(publisher.fd(), "new, never visible"));
    publisher.abort();
  }
  EXPECT_EQ(wait_for_no_staging(), std::vector<std::string>{});
  EXPECT_EQ(read_file(root() + "/aborted/new.txt"), std::nullopt);
  std::error_code ec;
  client.open("aborted/new.txt", ec);
  EXPECT_EQ(ec, make_error_code(errc::not_found));
  std::uint64_t version = 0;
  EXPECT_EQ(opened_content(client, "aborted/old.txt", &version), "old");
  EXPECT_EQ(version, 1u);
  EXPECT_EQ(list_dir(root() + "/aborted"), std::vector<std::string>{"old.txt"});

  {
    PendingItem item = client.enqueue("aborted-queue");
    ASSERT_TRUE(write_all(item.fd(), "never enqueued"));
  }
  client.claim("aborted-queue", 0ms, ec);
  EXPECT_EQ(ec, make_error_code(errc::timed_out))
      << "an aborted item was claimable";

  // Killed mid-write.
  Process& writer =
      start_worker({"publish", "--socket", a.socket(), "--path",
                    "aborted/old.txt", "--first", "1", "--pause-at", "half"});
  ASSERT_EQ(writer.read_stdout_line(10s), "paused 1 half")
      << worker_stderr(writer);
  Process& enqueuer =
      start_worker({"enqueue", "--socket", a.socket(), "--queue",
                    "aborted-queue", "--first", "1", "--pause-at", "half"});
  ASSERT_EQ(enqueuer.read_stdout_line(10s), "paused 1 half")
      << worker_stderr(enqueuer);
  EXPECT_EQ(list_dir(root() + "/aborted-queue/tmp").size(), 1u);
  writer.kill_and_wait();
  enqueuer.kill_and_wait();
  EXPECT_EQ(wait_for_no_staging(), std::vector<std::string>{});
  EXPECT_TRUE(wait_until(
      [&] { return list_dir(root() + "/aborted-queue/tmp").empty(); }, 5s))
      << "tmp/ keeps: " << join(list_dir(root() + "/aborted-queue/tmp"));
  EXPECT_EQ(list_dir(root() + "/aborted-queue/new"),
            std::vector<std::string>{});
  EXPECT_EQ(list_dir(root() + "/aborted-queue/cur"),
            std::vector<std::string>{});
  EXPECT_EQ(read_file(root() + "/aborted/old.txt"), "old");
  EXPECT_EQ(list_dir(root() + "/aborted"), std::vector<std::string>{"old.txt"});
  client.claim("aborted-queue", 0ms, ec);
  EXPECT_EQ(ec, make_error_code(errc::timed_out));
}

}  // namespace
}  // namespace baton::test
