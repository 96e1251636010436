// Backlog: what a daemon remembers of a queue's new/ between claims.
#include "daemon/backlog.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/temp_dir.hpp"

namespace baton::daemon {
namespace {

using namespace std::chrono_literals;
using Clock = Backlog::Clock;

// A stand-in for new/: the names a listing would find, and how many
// listings were made.
struct FakeDir {
  std::vector<std::string> names;
  int listings = 0;
  Backlog::Lister lister() {
    return [this] {
      ++listings;
      return names;
    };
  }
};

TEST(Backlog, TakesOldestFirstFromOneListing) {
  Backlog backlog(1, 1);
  FakeDir dir{{"003", "001", "002"}};
  const auto now = Clock::now();
  EXPECT_TRUE(backlog.needs_listing(now, 1s));
  EXPECT_EQ(backlog.take(now, 1s, dir.lister(), true), "001");
  EXPECT_FALSE(backlog.needs_listing(now, 1s));
  dir.names = {"000", "004"};  // new/ changed: not seen until the next listing
  EXPECT_EQ(backlog.take(now, 1s, dir.lister(), true), "002");
  EXPECT_EQ(backlog.take(now, 1s, dir.lister(), true), "003");
  EXPECT_EQ(dir.listings, 1);
  // Ran out: lists again, and sees what came meanwhile.
  EXPECT_EQ(backlog.take(now, 1s, dir.lister(), true), "000");
  EXPECT_EQ(dir.listings, 2);
}

TEST(Backlog, ListsAgainOnceTheListingIsOlderThanTheRescanInterval) {
  Backlog backlog(1, 1);
  FakeDir dir{{"001", "002", "003"}};
  const auto start = Clock::now();
  EXPECT_EQ(backlog.take(start, 1s, dir.lister(), true), "001");
  dir.names = {"000", "002", "003"};  // another pod returned 000
  EXPECT_EQ(backlog.take(start + 999ms, 1s, dir.lister(), true), "002");
  EXPECT_TRUE(backlog.needs_listing(start + 1s, 1s));
  EXPECT_EQ(backlog.take(start + 1s, 1s, dir.lister(), true), "000");
  EXPECT_EQ(dir.listings, 2);
}

TEST(Backlog, WithoutLeaveToListItGivesWhatItRemembersOrNothing) {
  Backlog backlog(1, 1);
  FakeDir dir{{"001"}};
  const auto now = Clock::now();
  EXPECT_EQ(backlog.take(now, 1s, dir.lister(), false), std::nullopt);
  EXPECT_EQ(dir.listings, 0);
  EXPECT_EQ(backlog.take(now, 1s, dir.lister(), true), "001");
  dir.names = {"002"};
  EXPECT_EQ(backlog.take(now + 5s, 1s, dir.lister(), true), "002");
  backlog.put_back("002");
  // Stale by age, but a claim that listed once already takes what is left.
  EXPECT_EQ(backlog.take(now + 10s, 1s, dir.lister(), false), "002");
  EXPECT_EQ(dir.listings, 2);
}

TEST(Backlog, AnItemPutBackIsTheOldestAgain) {
  Backlog backlog(1, 1);
  FakeDir dir{{"001", "002", "003"}};
  const auto now = Clock::now();
  EXPECT_EQ(backlog.take(now, 1s, dir.lister(), true), "001");
  EXPECT_EQ(backlog.take(now, 1s, dir.lister(), true), "002");
  backlog.put_back("001");
  EXPECT_EQ(backlog.take(now, 1s, dir.lister(), true), "001");
  EXPECT_EQ(backlog.take(now, 1s, dir.lister(), true), "003");
  EXPECT_EQ(dir.listings, 1);
}

TEST(Backlogs, OneBacklogPerQueueAndANewOneWhenTheQueueWasMadeAgain) {
  test::TempDir temp;
  const std::string first = temp.make_dir("first");
  const std::string second = temp.make_dir("second");
  int first_fd = ::open(first.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int second_fd = ::open(second.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(first_fd, 0);
  ASSERT_GE(second_fd, 0);

  Backlogs backlogs(500ms);
  EXPECT_EQ(backlogs.rescan_after(), Clock::duration(500ms));
  auto q = backlogs.of("q", first_fd);
  EXPECT_EQ(backlogs.of("q", first_fd), q);
  EXPECT_NE(backlogs.of("other", first_fd), q);
  EXPECT_EQ(backlogs.size(), 2u);
  EXPECT_EQ(backlogs.find("q"), q);
  EXPECT_EQ(backlogs.find("never"), nullptr);
  // "q" removed and made again: its new/ is another directory.
  auto again = backlogs.of("q", second_fd);
  EXPECT_NE(again, q);
  EXPECT_EQ(backlogs.of("q", second_fd), again);

  backlogs.forget("q", q);  // not the current one: kept
  EXPECT_EQ(backlogs.of("q", second_fd), again);
  backlogs.forget("q", again);
  EXPECT_EQ(backlogs.size(), 1u);
  ::close(first_fd);
  ::close(second_fd);
}

}  // namespace
}  // namespace baton::daemon
