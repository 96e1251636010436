#include "cli/copy.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <new>

namespace baton::cli {
namespace {

enum class Method { copy_file_range, sendfile, splice };

// As much as one copy_file_range or sendfile may move; the kernel caps each
// call near 2 GiB anyway.
constexpr std::size_t k_chunk = std::size_t{1} << 30;
// splice moves at most a pipe's capacity per call.
constexpr std::size_t k_splice_chunk = std::size_t{1} << 20;
constexpr std::size_t k_buffer_size = std::size_t{128} << 10;

mode_t file_type(int fd) noexcept {
  struct stat info {};
  if (::fstat(fd, &info) != 0) return 0;
  return info.st_mode & S_IFMT;
}

ssize_t zero_copy(Method method, int in, int out) noexcept {
  switch (method) {
    case Method::copy_file_range:
      return ::copy_file_range(in, nullptr, out, nullptr, k_chunk, 0);
    case Method::sendfile:
      return ::sendfile(out, in, nullptr, k_chunk);
    case Method::splice:
      return ::splice(in, nullptr, out, nullptr, k_splice_chunk, SPLICE_F_MOVE);
  }
  errno = EINVAL;
  return -1;
}

// Blocks until FD is ready for EVENTS (an end someone made non-blocking).
bool wait_for(int fd, short events) noexcept {
  pollfd entry{fd, events, 0};
  for (;;) {
    if (::poll(&entry, 1, -1) >= 0) return true;
    if (errno != EINTR) return false;
  }
}

bool would_block(int error) noexcept {
  return error == EAGAIN || error == EWOULDBLOCK;
}

void read_write(int in, int out, CopyResult& result) noexcept {
  std::unique_ptr<char[]> buffer(new (std::nothrow) char[k_buffer_size]);
  if (!buffer) {
    result.read_errno = ENOMEM;
    return;
  }
  for (;;) {
    ssize_t got = ::read(in, buffer.get(), k_buffer_size);
    if (got == 0) return;
    if (got < 0) {
      if (errno == EINTR) continue;
      if (would_block(errno) && wait_for(in, POLLIN)) continue;
      result.read_errno = errno;
      return;
    }
    std::size_t done = 0;
    while (done < static_cast<std::size_t>(got)) {
      ssize_t put = ::write(out, buffer.get() + done,
                            static_cast<std::size_t>(got) - done);
      if (put > 0) {
        done += static_cast<std::size_t>(put);
        result.bytes += static_cast<std::uint64_t>(put);
        continue;
      }
      if (put < 0 && errno == EINTR) continue;
      if (put < 0 && would_block(errno) && wait_for(out, POLLOUT)) continue;
      result.write_errno =
          put < 0 ? errno : EIO;  // 0 bytes for a non-empty write
      return;
    }
  }
}

}  // namespace

CopyResult copy_fd(int in, int out) noexcept {
  CopyResult result;
  const mode_t in_type = file_type(in);
  const mode_t out_type = file_type(out);
  const bool usable[] = {
      in_type == S_IFREG && out_type == S_IFREG,  // copy_file_range
      in_type == S_IFREG,                         // sendfile
      in_type == S_IFIFO || out_type == S_IFIFO,  // splice
  };
  const Method methods[] = {Method::copy_file_range, Method::sendfile,
                            Method::splice};
  for (std::size_t i = 0; i < std::size(methods); ++i) {
    if (!usable[i]) continue;
    ssize_t moved;
    do {
      moved = zero_copy(methods[i], in, out);
      if (moved > 0) result.bytes += static_cast<std::uint64_t>(moved);
    } while (moved > 0 || (moved < 0 && errno == EINTR));
    // 0: the end, as far as this call can tell; read(2) confirms it below.
    // An error: these two ends do not support the call (EINVAL, EXDEV,
    // EOPNOTSUPP, ...), an end is non-blocking (EAGAIN), or a real I/O error
    // that the next way meets again.
    if (moved == 0) break;
  }
  read_write(in, out, result);
  return result;
}

}  // namespace baton::cli
