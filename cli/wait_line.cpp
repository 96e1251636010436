#include "cli/wait_line.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "cli/diagnostics.hpp"
#include "cli/signals.hpp"
#include "cli/time_format.hpp"

namespace baton::cli {
namespace {

const char* mode_name(LockMode mode) {
  return mode == LockMode::shared ? "shared" : "exclusive";
}

bool dumb_terminal() {
  const char* term = std::getenv("TERM");
  return !term || !*term || std::strcmp(term, "dumb") == 0;
}

}  // namespace

WaitLine::WaitLine(int fd, std::string lock_name, LockMode mode)
    : m_fd(fd),
      m_lock_name(std::move(lock_name)),
      m_mode(mode),
      m_enabled(::isatty(fd) == 1) {}

WaitLine::~WaitLine() { finish(); }

std::string WaitLine::describe(const std::string& lock_name, LockMode mode,
                               const QueueInfo& info) {
  std::string text = format("%s: waiting for lock '%s' (%s)", k_program,
                            lock_name.c_str(), mode_name(mode));
  if (info.holder) {
    const Holder& holder = *info.holder;
    text += holder.mode == LockMode::shared ? ", held shared" : ", held";
    bool reported = false;
    const int pid = shown_pid(holder, reported);
    if (pid > 0)
      text += format(reported ? " by pid %d (reported)" : " by pid %d", pid);
    if (!holder.reported.host.empty())
      text += " on host " + holder.reported.host;
    if (!holder.pod.empty()) text += " in pod " + holder.pod;
    if (!holder.node.empty()) text += " on node " + holder.node;
    std::string since =
        format_since(holder.since, std::chrono::system_clock::now());
    if (!since.empty()) text += " since " + since;
  }
  if (info.position > 1)
    text += format(", position %zu in the queue", info.position);
  return text;
}

void WaitLine::show(const QueueInfo& info) {
  if (!m_enabled) return;
  std::string text = describe(m_lock_name, m_mode, info);
  // A line that wraps cannot be cleared with \r: keep it to one row.
  winsize size{};
  if (::ioctl(m_fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 1 &&
      text.size() >= size.ws_col)
    text.resize(size.ws_col - 1u);
  if (m_shown) text.insert(0, "\r\033[K");
  write_all(m_fd, text);
  m_shown = true;
  set_open_status_line(m_fd);
}

void WaitLine::finish() noexcept {
  if (!m_shown) return;
  m_shown = false;
  set_open_status_line(-1);
  write_all(m_fd, dumb_terminal() ? "\n" : "\r\033[K");
}

}  // namespace baton::cli
