#include "cli/signals.hpp"

#include <unistd.h>

#include <cerrno>

#include "cli/exit_codes.hpp"

namespace baton::cli {
namespace {

// Dispositions as baton found them, indexed by signal number. Written once
// before any handler is installed, read-only afterwards (also in the child).
struct sigaction g_original[NSIG];
bool g_recorded = false;
volatile sig_atomic_t g_open_line_fd = -1;

void record_original_dispositions() noexcept {
  if (g_recorded) return;
  for (int signal_number : k_forwarded_signals)
    sigaction(signal_number, nullptr, &g_original[signal_number]);
  sigaction(SIGCHLD, nullptr, &g_original[SIGCHLD]);
  sigaction(SIGPIPE, nullptr, &g_original[SIGPIPE]);
  g_recorded = true;
}

bool was_ignored(int signal_number) noexcept {
  return g_recorded && g_original[signal_number].sa_handler == SIG_IGN;
}

extern "C" void exit_on_signal(int signal_number) {
  if (int fd = g_open_line_fd; fd >= 0) {
    ssize_t ignored = ::write(fd, "\n", 1);
    static_cast<void>(ignored);
  }
  // Die of the signal itself so the parent sees why; as PID 1 the default
  // action is not applied, so fall back to the shell's 128+N.
  ::signal(signal_number, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signal_number);
  sigprocmask(SIG_UNBLOCK, &set, nullptr);
  ::raise(signal_number);
  ::_exit(k_exit_signal_base + signal_number);
}

}  // namespace

void exit_on_signals_while_waiting() noexcept {
  record_original_dispositions();
  struct sigaction action {};
  action.sa_handler = exit_on_signal;
  sigfillset(&action.sa_mask);
  for (int signal_number : k_forwarded_signals) {
    if (!was_ignored(signal_number)) sigaction(signal_number, &action, nullptr);
  }
  // A reader of stderr that went away must not kill baton while CMD runs
  // (CMD would die of SIGKILL at once, without its grace period): a failed
  // write is an error baton can live with.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, nullptr);
}

void set_open_status_line(int fd) noexcept { g_open_line_fd = fd; }

void reset_signals_in_child() noexcept {
  if (g_recorded) {
    for (int signal_number : k_forwarded_signals)
      sigaction(signal_number, &g_original[signal_number], nullptr);
    sigaction(SIGCHLD, &g_original[SIGCHLD], nullptr);
    sigaction(SIGPIPE, &g_original[SIGPIPE], nullptr);
  }
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, nullptr);
}

SignalForwarder::~SignalForwarder() {
  if (m_fd >= 0) {
    ::close(m_fd);
    sigprocmask(SIG_SETMASK, &m_previous_mask, nullptr);
  }
}

std::error_code SignalForwarder::open() noexcept {
  record_original_dispositions();
  sigset_t set;
  sigemptyset(&set);
  for (int signal_number : k_forwarded_signals) sigaddset(&set, signal_number);
  sigaddset(&set, SIGCHLD);
  // Blocking SIGCONT does not stop it from continuing baton; the signalfd
  // tells the supervisor that it was, to pass it on to CMD's group.
  sigaddset(&set, SIGCONT);
  if (sigprocmask(SIG_BLOCK, &set, &m_previous_mask) != 0)
    return {errno, std::system_category()};
  m_fd = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (m_fd < 0) {
    std::error_code ec(errno, std::system_category());
    sigprocmask(SIG_SETMASK, &m_previous_mask, nullptr);
    return ec;
  }
  // Blocked, the signals now queue for the signalfd whatever their
  // disposition; the exit handlers are no longer wanted.
  for (int signal_number : k_forwarded_signals)
    sigaction(signal_number, &g_original[signal_number], nullptr);
  struct sigaction child_default {};
  child_default.sa_handler = SIG_DFL;
  sigaction(SIGCHLD, &child_default, nullptr);
  return {};
}

bool SignalForwarder::read(signalfd_siginfo& info) noexcept {
  for (;;) {
    ssize_t n = ::read(m_fd, &info, sizeof info);
    if (n == static_cast<ssize_t>(sizeof info)) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

bool SignalForwarder::should_forward(const signalfd_siginfo& info) noexcept {
  int signal_number = static_cast<int>(info.ssi_signo);
  if (signal_number == SIGCHLD || signal_number == SIGCONT) return false;
  // Also when the terminal sent it: CMD leads a process group of its own,
  // so a signal to baton's group does not reach it.
  return !was_ignored(signal_number);
}

}  // namespace baton::cli
