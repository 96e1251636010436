// baton_token_coherence: is the token record read coherently across two
// mounts of one volume? Two threads, each with its own LockFile opened
// through its own mount (DIR1, DIR2: the same directory seen from two
// "nodes"), hand the lock back and forth strictly in turn. Each side takes
// the file lock, reads the token record, compares it with the value the
// other side last wrote (known here, in memory), writes the next value
// (synced, as a reservation is) and a holder record, unlocks, and passes the
// turn. A read that does not return the last value written is stale: with
// the allocator on top, that is a repeated or backward token. No clock is
// involved: this tests the record alone.
//
//   baton_token_coherence DIR1 DIR2 ROUNDS cached|drop_cache|direct
//
// Prints "mode M rounds N stale S" and exits 0 when S is 0, 1 otherwise
// (2 on a usage or I/O error).
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "daemon/lock_file.hpp"

using baton::daemon::LockFile;
using baton::daemon::RecordIo;
using baton::daemon::TokenRecord;

namespace {

std::atomic<int> g_turn{0};
std::atomic<std::uint64_t> g_truth{0};
std::atomic<long> g_stale{0};
std::atomic<bool> g_failed{false};
std::atomic<int> g_opened{0};

void side(int me, const std::string& dir, RecordIo io, long rounds) {
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  std::error_code ec;
  auto file = dir_fd < 0 ? nullptr
                         : LockFile::open(dir_fd, "coherence.lock",
                                          dir + "/coherence.lock", io, ec);
  if (!file) {
    std::fprintf(stderr, "token_coherence: cannot open %s/coherence.lock: %s\n",
                 dir.c_str(),
                 dir_fd < 0 ? "no directory" : ec.message().c_str());
    g_failed = true;
    return;
  }
  // Both open (and look the file up) before the first write, as a daemon
  // that waits for a lock held on another node has.
  ++g_opened;
  while (g_opened.load() < 2 && !g_failed) std::this_thread::yield();
  for (long round = 0; round < rounds && !g_failed; ++round) {
    while (g_turn.load() != me && !g_failed) std::this_thread::yield();
    if (g_failed) break;
    if ((ec = file->wait_lock(baton::LockMode::exclusive))) break;
    TokenRecord record = file->read_tokens(ec);
    if (ec) break;
    const std::uint64_t truth = g_truth.load();
    if (record.reserved_upto != truth) {
      if (g_stale++ < 5)
        std::fprintf(
            stderr, "side %d round %ld: read %llu, last written %llu\n", me,
            round, static_cast<unsigned long long>(record.reserved_upto),
            static_cast<unsigned long long>(truth));
    }
    TokenRecord next{truth + 1, static_cast<std::uint64_t>(me + 1)};
    if ((ec = file->write_tokens(next, /*sync=*/true))) break;
    if ((ec =
             file->write_holder("{\"pod\":\"side" + std::to_string(me) +
                                "\",\"round\":" + std::to_string(round) + "}")))
      break;
    g_truth = truth + 1;
    if ((ec = file->unlock())) break;
    g_turn = 1 - me;
  }
  if (ec) {
    std::fprintf(stderr, "token_coherence: side %d: %s\n", me,
                 ec.message().c_str());
    g_failed = true;
  }
  file.reset();
  ::close(dir_fd);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr,
                 "usage: baton_token_coherence DIR1 DIR2 ROUNDS "
                 "cached|drop_cache|direct\n");
    return 2;
  }
  std::string mode = argv[4];
  RecordIo io = mode == "cached"       ? RecordIo::cached
                : mode == "drop_cache" ? RecordIo::drop_cache
                : mode == "direct"     ? RecordIo::direct
                                       : static_cast<RecordIo>(-1);
  if (static_cast<int>(io) < 0) {
    std::fprintf(stderr, "token_coherence: unknown mode '%s'\n", argv[4]);
    return 2;
  }
  long rounds = std::atol(argv[3]);
  // Start from a fresh record.
  std::string path = std::string(argv[1]) + "/coherence.lock";
  ::unlink(path.c_str());
  std::thread a(side, 0, argv[1], io, rounds);
  std::thread b(side, 1, argv[2], io, rounds);
  a.join();
  b.join();
  if (g_failed) return 2;
  std::printf("mode %s rounds %ld stale %ld\n", mode.c_str(), rounds,
              g_stale.load());
  return g_stale == 0 ? 0 : 1;
}
