// Copying one whole descriptor into another, as cat(1) does, with the
// kernel's zero-copy calls where both ends allow them: `baton publish`
// copies SRC into the staging file, `baton cat` a published file to stdout.
#pragma once

#include <cstdint>

namespace baton::cli {

struct CopyResult {
  std::uint64_t bytes = 0;  // copied before the end or the error
  int read_errno = 0;       // reading the source failed with this
  int write_errno = 0;      // writing the destination failed with this

  explicit operator bool() const noexcept {
    return read_errno == 0 && write_errno == 0;
  }
};

// Copies IN from its offset to its end into OUT at its offset, advancing
// both. Tries copy_file_range(2) (two regular files), then sendfile(2) (a
// regular source), then splice(2) (a pipe at either end), then read/write;
// a call the two ends do not support falls through to the next, and any
// error is confirmed by plain read/write so that it is pinned on the right
// end. Only read(2) is trusted to say "end of file": copy_file_range
// reports 0 bytes for /proc-like files. Retries EINTR and short writes,
// waits with poll(2) on an end that is non-blocking. Blocks until the end of
// IN or an error. IN and OUT stay open.
CopyResult copy_fd(int in, int out) noexcept;

}  // namespace baton::cli
