#include "cli/diagnostics.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cli/exit_codes.hpp"

namespace baton::cli {

std::string vformat(const char* format, va_list args) {
  char buffer[512];
  va_list copy;
  va_copy(copy, args);
  int length = std::vsnprintf(buffer, sizeof buffer, format, copy);
  va_end(copy);
  if (length < 0) return {};
  if (static_cast<std::size_t>(length) < sizeof buffer)
    return std::string(buffer, static_cast<std::size_t>(length));
  std::string text(static_cast<std::size_t>(length) + 1, '\0');
  std::vsnprintf(text.data(), text.size(), format, args);
  text.resize(static_cast<std::size_t>(length));
  return text;
}

std::string format(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::string text = vformat(format, args);
  va_end(args);
  return text;
}

std::string printable(std::string_view text) {
  std::string result(text);
  for (char& c : result)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return result;
}

void print_error(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::string line = std::string(k_program) + ": " + vformat(format, args);
  va_end(args);
  line += '\n';
  write_all(STDERR_FILENO, line);
}

bool write_all(int fd, std::string_view text) noexcept {
  while (!text.empty()) {
    ssize_t written = ::write(fd, text.data(), text.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    text.remove_prefix(static_cast<std::size_t>(written));
  }
  return true;
}

int close_stdout(int code) noexcept {
  errno = 0;
  if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return code;
  // A reader that went away (`baton status | head -1`) is not our error.
  if (errno == EPIPE) return code;
  int error = errno;
  if (error != 0)
    print_error("write error: %s", std::strerror(error));
  else
    print_error("write error");
  return code == k_exit_ok ? k_exit_internal : code;
}

}  // namespace baton::cli
