#include "cli/run_publish.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "cli/connect.hpp"
#include "cli/copy.hpp"
#include "cli/diagnostics.hpp"
#include "cli/exit_codes.hpp"
#include "cli/fd_closer.hpp"
#include "cli/supervisor.hpp"

namespace baton::cli {
namespace {

// What became of the whole set when publish number DONE (from 0) failed.
std::string outcome(std::size_t done, std::size_t total) {
  if (done == 0) return "nothing published";
  return format("%zu of %zu published before it", done, total);
}

// Opens LOCAL for reading; prints why not and returns -1.
int open_local(const PublishSpec& spec) {
  const std::string name = printable(spec.local);
  int fd = ::open(spec.local.c_str(), O_RDONLY | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    print_error("cannot open '%s' to publish it: %s; nothing published",
                name.c_str(), std::strerror(errno));
    return -1;
  }
  struct stat info {};
  if (::fstat(fd, &info) == 0 && S_ISDIR(info.st_mode)) {
    ::close(fd);
    print_error("cannot publish '%s': %s; nothing published", name.c_str(),
                std::strerror(EISDIR));
    return -1;
  }
  return fd;
}

// LOCK was lost (or, REASON, the connection) before DEST was committed.
int report_lost(const Lock& lock, std::error_code reason,
                const std::string& dest, std::size_t done, std::size_t total) {
  if (lock.lost_reason()) reason = lock.lost_reason();
  print_error("lock '%s' lost before '%s' was published: %s; %s",
              lock.name().c_str(), dest.c_str(),
              describe_loss(&lock, reason).c_str(),
              outcome(done, total).c_str());
  return k_exit_lock_lost;
}

}  // namespace

int publish_outputs(Client& client, Lock& lock,
                    std::span<const PublishSpec> specs, unsigned mode) {
  const std::size_t total = specs.size();
  // Every LOCAL first: a missing output means CMD did not do its job.
  std::vector<FdCloser> sources;
  sources.reserve(total);
  for (const PublishSpec& spec : specs) {
    int fd = open_local(spec);
    if (fd < 0) return k_exit_no_input;
    sources.emplace_back(fd);
  }

  // Then a staging file per DEST, filled: the daemon judges every DEST and
  // every copy is done before anything becomes visible.
  PublishOptions options;
  options.token = lock.token();
  options.mode = mode;
  std::vector<Publisher> publishers;
  publishers.reserve(total);
  for (std::size_t i = 0; i < total; ++i) {
    const std::string dest = printable(specs[i].dest);
    if (lock.lost()) return report_lost(lock, {}, dest, 0, total);
    std::error_code ec;
    Publisher publisher = client.publish(specs[i].dest, options, ec);
    if (ec == errc::connection_lost || ec == errc::lock_lost)
      return report_lost(lock, ec, dest, 0, total);
    if (ec) {
      print_error("cannot publish '%s': %s; nothing published", dest.c_str(),
                  error_detail(client, ec).c_str());
      return exit_code_for(ec);
    }
    CopyResult copied = copy_fd(sources[i].get(), publisher.fd());
    if (copied.read_errno != 0) {
      print_error("cannot read '%s': %s; nothing published",
                  printable(specs[i].local).c_str(),
                  std::strerror(copied.read_errno));
      return k_exit_no_input;
    }
    if (copied.write_errno != 0) {
      print_error("cannot write the new version of '%s': %s; nothing published",
                  dest.c_str(), std::strerror(copied.write_errno));
      return k_exit_internal;
    }
    publishers.push_back(std::move(publisher));
  }

  // Commits, in order, each under the token and only while the lock holds.
  // The Publishers not reached abort when they go out of scope.
  for (std::size_t i = 0; i < total; ++i) {
    const std::string dest = printable(specs[i].dest);
    if (lock.lost()) return report_lost(lock, {}, dest, i, total);
    std::error_code ec;
    publishers[i].commit(ec);
    if (!ec) continue;
    if (ec == errc::stale_token) {
      print_error("stale token: %s; '%s' not published, %s",
                  error_detail(client, ec).c_str(), dest.c_str(),
                  outcome(i, total).c_str());
      return k_exit_stale_token;
    }
    if (ec == errc::connection_lost) {
      print_error(
          "connection to batond lost while committing '%s' (the lock is "
          "lost): it may or may not be published; %s",
          dest.c_str(), outcome(i, total).c_str());
      return k_exit_lock_lost;
    }
    print_error("cannot publish '%s': %s; %s", dest.c_str(),
                error_detail(client, ec).c_str(), outcome(i, total).c_str());
    return exit_code_for(ec);
  }
  return k_exit_ok;
}

}  // namespace baton::cli
