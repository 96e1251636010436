// Messages on stderr. Each is one line starting "baton: ", written with a
// single write(2) so that it never interleaves mid-line with CMD's output.
#pragma once

#include <cstdarg>
#include <string>
#include <string_view>

namespace baton::cli {

inline constexpr const char* k_program = "baton";

// printf into a std::string.
[[gnu::format(printf, 1, 2)]] std::string format(const char* format, ...);
[[gnu::format(printf, 1, 0)]] std::string vformat(const char* format,
                                                  va_list args);

// TEXT with control bytes replaced by '?', to echo a user's value inside a
// one-line message.
std::string printable(std::string_view text);

// "baton: <formatted>\n" on stderr.
[[gnu::format(printf, 1, 2)]] void print_error(const char* format, ...);

// Writes all of TEXT to FD, retrying short writes and EINTR. Returns false
// (errno set) on failure. Async-signal-safe.
bool write_all(int fd, std::string_view text) noexcept;

// Flushes stdout and reports a failed write (a full disk, a closed pipe
// aside) as util-linux's close_stdout does. Returns CODE, or
// k_exit_internal when stdout could not be written.
int close_stdout(int code) noexcept;

}  // namespace baton::cli
