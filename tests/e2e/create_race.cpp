// baton_create_race DIR1 DIR2 ROUNDS: two threads, one per mount of the same
// network volume, open the same new files at the same instant ROUNDS times,
// as two daemons on two nodes do for the version record of a new path and
// the lock file of a new lock. baton's opens must never fail; a plain
// open(O_CREAT) is raced beside them to show that the race is real here
// (FUSE and NFS turn O_CREAT into a lookup then a create, and the loser of
// the create sees EEXIST). Exit 0 when baton's opens all succeeded, 1
// otherwise, 64 on bad usage.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <system_error>
#include <thread>

#include "daemon/lock_file.hpp"
#include "daemon/root_dir.hpp"

namespace {

struct Tally {
  std::atomic<int> plain_eexist{0};
  std::atomic<int> baton_failures{0};
};

void race(const std::string& mount, int rounds, std::barrier<>& start, Tally& tally) {
  baton::daemon::RootDir root(mount, /*network=*/true);
  int dir = ::openat(root.fd(), "create-race", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) {
    std::perror("create-race");
    std::exit(1);
  }
  for (int i = 0; i < rounds; ++i) {
    const std::string n = std::to_string(i);
    start.arrive_and_wait();
    int plain = ::openat(dir, ("plain-" + n).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (plain >= 0) ::close(plain);
    else if (errno == EEXIST) ++tally.plain_eexist;

    start.arrive_and_wait();
    std::error_code ec;
    int record = root.open_beneath("create-race/record-" + n, O_RDWR | O_CREAT, 0644, ec);
    if (record >= 0) {
      ::close(record);
    } else {
      ++tally.baton_failures;
      std::fprintf(stderr, "%s: record-%s: %s\n", mount.c_str(), n.c_str(), ec.message().c_str());
    }

    start.arrive_and_wait();
    auto lock = baton::daemon::LockFile::open(dir, "lock-" + n, "create-race/lock-" + n,
                                              /*uncached_reads=*/true, ec);
    if (!lock) {
      ++tally.baton_failures;
      std::fprintf(stderr, "%s: lock-%s: %s\n", mount.c_str(), n.c_str(), ec.message().c_str());
    }
  }
  ::close(dir);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 || std::atoi(argv[3]) <= 0) {
    std::fprintf(stderr, "usage: baton_create_race DIR1 DIR2 ROUNDS\n");
    return 64;
  }
  const int rounds = std::atoi(argv[3]);
  if (::mkdir((std::string(argv[1]) + "/create-race").c_str(), 0755) != 0 && errno != EEXIST) {
    std::perror("mkdir create-race");
    return 1;
  }
  std::barrier start(2);
  Tally tally;
  std::thread other([&] { race(argv[2], rounds, start, tally); });
  race(argv[1], rounds, start, tally);
  other.join();
  std::printf("%d rounds: plain open(O_CREAT) lost the create race with EEXIST %d times; "
              "baton's opens failed %d times\n",
              rounds, tally.plain_eexist.load(), tally.baton_failures.load());
  return tally.baton_failures.load() == 0 ? 0 : 1;
}
