// The lock table on real lock files with real OFD locks: two tables on one
// directory stand for two daemons in two pods.
#include "daemon/lock_table.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "daemon/root_check.hpp"
#include "tests/support/lock_probe.hpp"

namespace baton::daemon {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

struct FakeClient final : LockClient {
  explicit FakeClient(std::uint64_t session) { info.session = session; info.pid = 100 + static_cast<int>(session); }
  const ClientInfo& client_info() const override { return info; }
  void lock_lost(const std::string& name, std::uint64_t, const std::string& why) override {
    lost.push_back(name + ": " + why);
  }
  void lock_revoking(const std::string& name, std::uint64_t, std::chrono::milliseconds,
                     const std::string& why) override {
    revoking.push_back(name + ": " + why);
  }
  ClientInfo info;
  std::vector<std::string> revoking;
  std::vector<std::string> lost;
};

// One pending acquire, observed from the test.
struct Pending {
  std::optional<Acquired> result;
  bool queued = false;
  bool done() const { return result.has_value(); }
  bool granted() const { return result && !result->error; }
};

class LockTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/baton-locktable-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    m_root = dir;
    ASSERT_EQ(prepare_root(m_root), "");
    m_dir_fd = ::open((m_root + "/.baton/locks").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(m_dir_fd, 0);
    install_wait_interrupt_handler();
  }
  void TearDown() override {
    m_tables.clear();
    ::close(m_dir_fd);
    std::string cleanup = "rm -rf " + m_root;
    EXPECT_EQ(std::system(cleanup.c_str()), 0);
  }

  LockTable& add_table(const std::string& pod, unsigned handovers = 8) {
    LockTableConfig config{pod, "node", 0x100 + m_tables.size(), handovers, 256};
    m_tables.push_back(std::make_unique<LockTable>(m_io.get_executor(), m_dir_fd,
                                                   m_root + "/.baton/locks", m_offload, config));
    return *m_tables.back();
  }

  std::shared_ptr<Pending> acquire(LockTable& table, FakeClient& client, const std::string& name,
                                   LockMode mode = LockMode::exclusive,
                                   std::optional<std::chrono::milliseconds> timeout = {}) {
    auto pending = std::make_shared<Pending>();
    asio::co_spawn(
        m_io,
        [&table, &client, name, mode, timeout, pending]() -> asio::awaitable<void> {
          // Built outside the co_await: g++ 12 frees a capturing lambda
          // made inside a co_await expression twice.
          std::function<void(const QueuedNotice&)> on_queued = [pending](const QueuedNotice&) {
            pending->queued = true;
          };
          Acquired result = co_await table.acquire(client, name, mode, timeout, std::move(on_queued));
          pending->result = std::move(result);
        },
        [](std::exception_ptr e) { if (e) std::rethrow_exception(e); });
    return pending;
  }

  // Runs the loop until PREDICATE holds; false if it did not within LIMIT.
  template <typename Predicate>
  bool run_until(Predicate predicate, std::chrono::milliseconds limit = 3000ms) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!predicate()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      m_io.run_one_for(5ms);
    }
    return true;
  }
  // Gives the loop a moment, to show that something does NOT happen.
  void settle(std::chrono::milliseconds time = 50ms) {
    auto deadline = std::chrono::steady_clock::now() + time;
    while (std::chrono::steady_clock::now() < deadline) m_io.run_one_for(5ms);
  }

  std::string m_root;
  int m_dir_fd = -1;
  asio::io_context m_io;
  asio::executor_work_guard<asio::io_context::executor_type> m_work{m_io.get_executor()};
  Offload m_offload{2, true};
  std::vector<std::unique_ptr<LockTable>> m_tables;
};

TEST_F(LockTableTest, GrantsAFreeLockAtOnceWithAToken) {
  LockTable& table = add_table("a");
  FakeClient client(1);
  auto first = acquire(table, client, "x");
  ASSERT_TRUE(run_until([&] { return first->done(); }));
  ASSERT_TRUE(first->granted()) << first->result->message;
  EXPECT_GE(first->result->token, 1u);
  EXPECT_FALSE(first->queued);
}

TEST_F(LockTableTest, GrantsLocalWaitersInArrivalOrder) {
  LockTable& table = add_table("a");
  std::vector<std::unique_ptr<FakeClient>> clients;
  std::vector<std::shared_ptr<Pending>> pendings;
  for (int i = 0; i < 5; ++i) {
    clients.push_back(std::make_unique<FakeClient>(i + 1));
    pendings.push_back(acquire(table, *clients.back(), "x"));
  }
  std::uint64_t last_token = 0;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(run_until([&] { return pendings[i]->done(); })) << i;
    ASSERT_TRUE(pendings[i]->granted());
    EXPECT_GT(pendings[i]->result->token, last_token);
    last_token = pendings[i]->result->token;
    if (i + 1 < 5) {
      settle(10ms);
      EXPECT_FALSE(pendings[i + 1]->done()) << "granted while " << i << " holds";
      EXPECT_TRUE(pendings[i + 1]->queued);
    }
    EXPECT_FALSE(table.release(*clients[i], "x"));
  }
}

TEST_F(LockTableTest, TryLockIsBusyAndNeverQueues) {
  LockTable& table = add_table("a");
  FakeClient holder(1), trier(2);
  auto held = acquire(table, holder, "x");
  ASSERT_TRUE(run_until([&] { return held->done(); }));
  auto tried = acquire(table, trier, "x", LockMode::exclusive, 0ms);
  ASSERT_TRUE(run_until([&] { return tried->done(); }));
  EXPECT_EQ(tried->result->error, errc::busy);
  EXPECT_FALSE(table.involves(trier, "x"));
}

TEST_F(LockTableTest, TimesOutAndLeavesTheQueue) {
  LockTable& table = add_table("a");
  FakeClient holder(1), waiter(2);
  auto held = acquire(table, holder, "x");
  ASSERT_TRUE(run_until([&] { return held->done(); }));
  auto start = std::chrono::steady_clock::now();
  auto waited = acquire(table, waiter, "x", LockMode::exclusive, 100ms);
  ASSERT_TRUE(run_until([&] { return waited->done(); }));
  EXPECT_EQ(waited->result->error, errc::timed_out);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  EXPECT_FALSE(table.involves(waiter, "x"));
}

TEST_F(LockTableTest, SharedHoldersCoexistAndAWriterWaitsForAll) {
  LockTable& table = add_table("a");
  FakeClient r1(1), r2(2), w(3), r3(4);
  auto a = acquire(table, r1, "x", LockMode::shared);
  auto b = acquire(table, r2, "x", LockMode::shared);
  ASSERT_TRUE(run_until([&] { return a->done() && b->done(); }));
  EXPECT_TRUE(a->granted() && b->granted());
  EXPECT_EQ(a->result->token, 0u);
  auto writer = acquire(table, w, "x");
  auto late_reader = acquire(table, r3, "x", LockMode::shared);
  settle();
  EXPECT_FALSE(writer->done());
  EXPECT_FALSE(late_reader->done()) << "a reader jumped the queued writer";
  table.release(r1, "x");
  settle();
  EXPECT_FALSE(writer->done());
  table.release(r2, "x");
  ASSERT_TRUE(run_until([&] { return writer->done(); }));
  EXPECT_TRUE(writer->granted());
  table.release(w, "x");
  ASSERT_TRUE(run_until([&] { return late_reader->done(); }));
}

TEST_F(LockTableTest, ExcludesAcrossTablesAndHandsOverThroughTheFile) {
  LockTable& pod_a = add_table("a");
  LockTable& pod_b = add_table("b");
  FakeClient in_a(1), in_b(2);
  auto held = acquire(pod_a, in_a, "x");
  ASSERT_TRUE(run_until([&] { return held->done(); }));
  auto waiting = acquire(pod_b, in_b, "x");
  settle(100ms);
  EXPECT_FALSE(waiting->done()) << "two pods hold one lock";
  EXPECT_TRUE(waiting->queued);
  pod_a.release(in_a, "x");
  ASSERT_TRUE(run_until([&] { return waiting->done(); }));
  ASSERT_TRUE(waiting->granted());
  EXPECT_GT(waiting->result->token, held->result->token);
}

TEST_F(LockTableTest, TryLockSeesAHolderInAnotherTable) {
  LockTable& pod_a = add_table("a");
  LockTable& pod_b = add_table("b");
  FakeClient in_a(1), in_b(2);
  auto held = acquire(pod_a, in_a, "x");
  ASSERT_TRUE(run_until([&] { return held->done(); }));
  auto tried = acquire(pod_b, in_b, "x", LockMode::exclusive, 0ms);
  ASSERT_TRUE(run_until([&] { return tried->done(); }));
  EXPECT_EQ(tried->result->error, errc::busy);
}

TEST_F(LockTableTest, ReleaseAllCancelsWaitsAndFreesHolds) {
  LockTable& pod_a = add_table("a");
  LockTable& pod_b = add_table("b");
  FakeClient in_a(1), in_b(2), other_b(3);
  auto held = acquire(pod_a, in_a, "x");
  auto also = acquire(pod_a, in_a, "y");
  ASSERT_TRUE(run_until([&] { return held->done() && also->done(); }));
  auto waiting = acquire(pod_b, in_b, "x");  // blocks on the file in a thread
  settle();
  pod_b.release_all(in_b);
  ASSERT_TRUE(run_until([&] { return waiting->done(); }));
  EXPECT_EQ(waiting->result->error, errc::connection_lost);
  pod_a.release_all(in_a);
  auto next = acquire(pod_b, other_b, "x", LockMode::exclusive, 0ms);
  auto next_y = acquire(pod_b, other_b, "y", LockMode::exclusive, 0ms);
  ASSERT_TRUE(run_until([&] { return next->done() && next_y->done(); }));
  EXPECT_TRUE(next->granted()) << next->result->message;
  EXPECT_TRUE(next_y->granted());
}

TEST_F(LockTableTest, YieldsToAnotherPodAfterBoundedLocalHandovers) {
  LockTable& pod_a = add_table("a", /*handovers=*/2);
  LockTable& pod_b = add_table("b");
  std::vector<std::unique_ptr<FakeClient>> locals;
  for (int i = 0; i < 6; ++i) locals.push_back(std::make_unique<FakeClient>(i + 1));
  FakeClient remote(99);
  std::vector<std::shared_ptr<Pending>> local_pendings;
  local_pendings.push_back(acquire(pod_a, *locals[0], "x"));
  ASSERT_TRUE(run_until([&] { return local_pendings[0]->done(); }));
  for (int i = 1; i < 6; ++i) local_pendings.push_back(acquire(pod_a, *locals[i], "x"));
  auto remote_pending = acquire(pod_b, remote, "x");
  ASSERT_TRUE(run_until([&] { return remote_pending->queued; }));
  // The remote daemon advertises itself on the waiting byte (a thread of its
  // own takes that lock): wait until it is visible, not for a fixed time.
  ASSERT_TRUE(run_until([&] { return test::wait_is_advertised(m_root + "/.baton/locks/x.lock"); }))
      << "pod b never advertised its wait on the lock file";
  // Release local holders one by one; the remote pod must get a turn
  // before all five local waiters went through.
  int local_grants = 0;
  for (int i = 0; i < 6 && !remote_pending->done(); ++i) {
    ASSERT_TRUE(run_until([&] { return local_pendings[i]->done(); }));
    ++local_grants;
    pod_a.release(*locals[i], "x");
    run_until([&] { return remote_pending->done() || (i + 1 < 6 && local_pendings[i + 1]->done()); });
  }
  ASSERT_TRUE(run_until([&] { return remote_pending->done(); }));
  EXPECT_TRUE(remote_pending->granted());
  EXPECT_LE(local_grants, 4) << "the local pod kept the lock while another pod waited";
  pod_b.release(remote, "x");
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(run_until([&] { return local_pendings[i]->done(); }));
    pod_a.release(*locals[i], "x");
  }
}

// Readers whose holds overlap would keep a pod's shared file lock forever:
// once another pod's writer waits, after the hand-over bound, no new reader
// joins; the writer gets its turn when the readers drained, and the waiting
// readers go after it.
TEST_F(LockTableTest, OverlappingReadersLetAWriterInAnotherPodIn) {
  LockTable& pod_a = add_table("a", /*handovers=*/2);
  LockTable& pod_b = add_table("b");
  constexpr int k_readers = 12;
  std::vector<std::unique_ptr<FakeClient>> readers;
  for (int i = 0; i < k_readers; ++i) readers.push_back(std::make_unique<FakeClient>(i + 1));
  FakeClient writer(99);
  std::vector<std::shared_ptr<Pending>> reads;
  reads.push_back(acquire(pod_a, *readers[0], "x", LockMode::shared));
  ASSERT_TRUE(run_until([&] { return reads[0]->done(); }));
  auto write = acquire(pod_b, writer, "x");
  ASSERT_TRUE(run_until([&] { return write->queued; }));
  ASSERT_TRUE(run_until([&] { return test::wait_is_advertised(m_root + "/.baton/locks/x.lock"); }))
      << "pod b never advertised its wait on the lock file";
  // Each new reader arrives while the previous one still reads: it is
  // either granted or queued behind the writer in pod b.
  int overlapping = 1;
  for (int i = 1; i < k_readers; ++i) {
    reads.push_back(acquire(pod_a, *readers[i], "x", LockMode::shared));
    ASSERT_TRUE(run_until([&] { return reads[i]->done() || reads[i]->queued; }));
    if (!reads[i]->done()) break;
    ++overlapping;
    pod_a.release(*readers[i - 1], "x");
  }
  EXPECT_LE(overlapping, 4) << "readers kept joining while another pod's writer waited";
  EXPECT_FALSE(write->done());
  // The last reader admitted finishes: the writer goes next.
  pod_a.release(*readers[overlapping - 1], "x");
  ASSERT_TRUE(run_until([&] { return write->done(); }));
  EXPECT_TRUE(write->granted());
  EXPECT_FALSE(reads[overlapping]->done()) << "a reader held the lock beside the writer";
  pod_b.release(writer, "x");
  ASSERT_TRUE(run_until([&] { return reads[overlapping]->done(); }));
  EXPECT_TRUE(reads[overlapping]->granted());
  pod_a.release(*readers[overlapping], "x");
}

TEST_F(LockTableTest, ReportsALostLockWhenItsFileIsRemoved) {
  LockTable& table = add_table("a");
  FakeClient holder(1);
  auto held = acquire(table, holder, "x");
  ASSERT_TRUE(run_until([&] { return held->done(); }));
  ASSERT_EQ(::unlink((m_root + "/.baton/locks/x.lock").c_str()), 0);
  bool verified = false;
  asio::co_spawn(m_io, table.verify_held(), [&](std::exception_ptr) { verified = true; });
  ASSERT_TRUE(run_until([&] { return verified; }));
  ASSERT_EQ(holder.lost.size(), 1u);
  EXPECT_NE(holder.lost[0].find("x.lock"), std::string::npos);
  EXPECT_EQ(table.release(holder, "x"), errc::not_held);
}

TEST_F(LockTableTest, KeepsAHealthyLockThroughVerification) {
  LockTable& table = add_table("a");
  FakeClient holder(1);
  auto held = acquire(table, holder, "x");
  ASSERT_TRUE(run_until([&] { return held->done(); }));
  bool verified = false;
  asio::co_spawn(m_io, table.verify_held(), [&](std::exception_ptr) { verified = true; });
  ASSERT_TRUE(run_until([&] { return verified; }));
  EXPECT_TRUE(holder.lost.empty());
  EXPECT_FALSE(table.release(holder, "x"));
}

// An unlock of a queued request withdraws it: it completes as cancelled at
// once, and the release of the holder grants the next waiter, never it.
TEST_F(LockTableTest, CancelledWaiterIsNeverGranted) {
  LockTable& table = add_table("a");
  FakeClient holder(1), withdrawn(2), next(3);
  auto held = acquire(table, holder, "x");
  ASSERT_TRUE(run_until([&] { return held->done(); }));
  auto cancelled = acquire(table, withdrawn, "x");
  auto behind = acquire(table, next, "x");
  ASSERT_TRUE(run_until([&] { return cancelled->queued && behind->queued; }));
  EXPECT_FALSE(table.cancel(holder, "x")) << "a holder has no queued request";
  EXPECT_TRUE(table.cancel(withdrawn, "x"));
  ASSERT_TRUE(run_until([&] { return cancelled->done(); }));
  EXPECT_EQ(cancelled->result->error, errc::cancelled);
  EXPECT_FALSE(table.involves(withdrawn, "x"));
  EXPECT_FALSE(table.cancel(withdrawn, "x"));
  EXPECT_FALSE(table.release(holder, "x"));
  ASSERT_TRUE(run_until([&] { return behind->done(); }));
  EXPECT_TRUE(behind->granted());
  EXPECT_FALSE(table.involves(withdrawn, "x"));
  EXPECT_FALSE(table.release(next, "x"));
}

TEST_F(LockTableTest, StatusShowsLocalHoldersWaitersAndOtherPods) {
  LockTable& pod_a = add_table("a");
  LockTable& pod_b = add_table("b");
  FakeClient holder(1), waiter(2), remote(3);
  auto held = acquire(pod_a, holder, "x");
  auto other = acquire(pod_b, remote, "elsewhere");
  ASSERT_TRUE(run_until([&] { return held->done() && other->done(); }));
  auto waiting = acquire(pod_a, waiter, "x");
  ASSERT_TRUE(run_until([&] { return waiting->queued; }));
  std::optional<std::vector<LockStatus>> status;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  asio::co_spawn(m_io, pod_a.status(deadline), [&](std::exception_ptr, StatusReport s) {
    EXPECT_TRUE(s.unknown.empty());
    status = std::move(s.locks);
  });
  ASSERT_TRUE(run_until([&] { return status.has_value(); }));
  ASSERT_EQ(status->size(), 2u);
  EXPECT_EQ((*status)[0].name, "elsewhere");
  ASSERT_EQ((*status)[0].holders.size(), 1u);
  EXPECT_EQ((*status)[0].holders[0].pod, "b");
  EXPECT_FALSE((*status)[0].holders[0].local);
  EXPECT_EQ((*status)[1].name, "x");
  EXPECT_EQ((*status)[1].holders.size(), 1u);
  EXPECT_EQ((*status)[1].waiters.size(), 1u);
  pod_a.release_all(waiter);
}

}  // namespace
}  // namespace baton::daemon
