#include "cli/command_guard.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cli/exit_codes.hpp"
#include "cli/process_tree.hpp"
#include "cli/signals.hpp"

namespace baton::cli {
namespace {

constexpr char k_terminate = 'T';
constexpr char k_kill = 'K';
// While killing, the guard scans again this often: a process forked while
// it scanned is caught on the next pass.
constexpr int k_rescan_ms = 50;

void close_fd(int& fd) noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

void write_event(int fd, GuardEvent::Kind kind, int value,
                 int extra = 0) noexcept {
  // 12 bytes on a pipe: written whole or not at all. EPIPE (baton is gone)
  // is ignored: SIGPIPE is.
  GuardEvent event;
  event.kind = kind;
  event.value = value;
  event.extra = extra;
  ssize_t n;
  do {
    n = ::write(fd, &event, sizeof event);
  } while (n < 0 && errno == EINTR);
}

// The guard's life, in the forked child. Single-threaded, like baton, so
// everything is usable; it never returns.
class Guard {
 public:
  Guard(int control, int events, int signal_fd)
      : m_control(control), m_events(events), m_signal_fd(signal_fd) {}

  [[noreturn]] void run(char* const argv[], int stdin_fd, int terminal_fd) {
    ::prctl(PR_SET_NAME, "baton guard");
    // Out of baton's process group, so that a signal to the job (`kill -9
    // %1`, `timeout -s KILL`) kills baton but leaves us to clean up; out of
    // CMD's, for the same reason.
    ::setpgid(0, 0);
    // Orphans of the tree come to us, not to init or an outer subreaper.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    SpawnResult child =
        spawn_child(argv, reset_signals_in_child, stdin_fd, true, terminal_fd);
    if (child.error) {
      write_event(m_events, GuardEvent::spawn_failed, child.error.value());
      ::_exit(k_exit_internal);
    }
    if (child.exec_errno != 0) {
      write_event(m_events, GuardEvent::exec_failed, child.exec_errno);
      ::_exit(k_exit_internal);
    }
    m_command = child.pid;
    rename_command_line();
    // Job-control stops are for CMD, which got these back at their
    // defaults; the guard must keep reaping and watching baton.
    ::signal(SIGTSTP, SIG_IGN);
    ::signal(SIGTTIN, SIG_IGN);
    ::signal(SIGTTOU, SIG_IGN);
    write_event(m_events, GuardEvent::started, m_command);
    loop();
  }

 private:
  [[noreturn]] void loop() {
    pollfd fds[2] = {{m_control, POLLIN, 0}, {m_signal_fd, POLLIN, 0}};
    for (;;) {
      const bool reaped = reap();
      if (m_command_done && !m_children_left) ::_exit(0);
      if (m_killing && reaped) signal_tree(::getpid(), group(), SIGKILL);
      const int ready = ::poll(fds, 2, m_killing ? k_rescan_ms : -1);
      if (ready < 0 && errno != EINTR) {
        // Cannot watch baton any more: the tree must not run on unwatched.
        m_killing = true;
        fds[0].fd = -1;
      }
      if (ready == 0 && m_killing) signal_tree(::getpid(), group(), SIGKILL);
      if (ready > 0 && fds[1].revents != 0) drain_signals();
      if (ready > 0 && fds[0].revents != 0 && !read_command()) fds[0].fd = -1;
    }
  }

  // Reaps what ended. Returns whether anything was reaped; sets
  // m_children_left. Reports CMD's stop or end to baton.
  bool reap() {
    bool reaped = false;
    for (;;) {
      int status = 0;
      const pid_t done = ::waitpid(-1, &status, WNOHANG | WUNTRACED);
      if (done > 0) {
        if (done != m_command) {
          reaped = reaped || !WIFSTOPPED(status);
          continue;
        }
        if (WIFSTOPPED(status)) {
          write_event(m_events, GuardEvent::stopped, WSTOPSIG(status));
          continue;
        }
        reaped = true;
        m_command_done = true;
        m_command_status = status;
        continue;
      }
      if (done < 0 && errno == EINTR) continue;
      m_children_left = done == 0;  // else ECHILD: none left
      break;
    }
    if (m_command_done && !m_reported) {
      m_reported = true;
      write_event(m_events, GuardEvent::exited, m_command_status,
                  m_children_left ? 1 : 0);
      // What CMD left behind must not outlive the lock either.
      if (m_children_left) signal_tree(::getpid(), group(), SIGTERM);
    }
    return reaped;
  }

  // `pkill -f 'baton run ...'` must not match the guard as well: with both
  // killed at once nothing would stop the tree. Overwrite the argument
  // area, as setproctitle() does; CMD's arguments were in it, but CMD has
  // been exec()ed. Its bounds are fields 48 and 49 of /proc/self/stat.
  static void rename_command_line() {
    int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buffer[1024];
    ssize_t n = ::read(fd, buffer, sizeof buffer - 1);
    ::close(fd);
    if (n <= 0) return;
    buffer[n] = '\0';
    const char* field = std::strrchr(buffer, ')');
    if (!field) return;
    // Field 3 (the state) follows ") "; skip to field 48.
    for (int number = 2; number < 48 && field; ++number)
      field = std::strchr(field + 1, ' ');
    if (!field) return;
    char* end = nullptr;
    const unsigned long long start = std::strtoull(field + 1, &end, 10);
    if (!end || *end != ' ') return;
    const unsigned long long stop = std::strtoull(end + 1, nullptr, 10);
    if (start == 0 || stop <= start) return;
    char* area = reinterpret_cast<char*>(static_cast<std::uintptr_t>(start));
    const std::size_t size = static_cast<std::size_t>(stop - start);
    static constexpr char k_name[] = "baton guard";
    std::memset(area, 0, size);
    std::memcpy(area, k_name, std::min(size - 1, sizeof k_name - 1));
  }

  void drain_signals() {
    signalfd_siginfo info;
    ssize_t n;
    do {
      n = ::read(m_signal_fd, &info, sizeof info);
    } while (n == static_cast<ssize_t>(sizeof info) ||
             (n < 0 && errno == EINTR));
  }

  // Acts on baton's command. Returns false once the pipe closed (baton is
  // gone or gave up on us): then the tree is killed.
  bool read_command() {
    char command = 0;
    ssize_t n;
    do {
      n = ::read(m_control, &command, 1);
    } while (n < 0 && errno == EINTR);
    if (n == 1 && command == k_terminate) {
      // CMD first, alone, as a shell's `kill` would: it may stop its own
      // children in order. What it leaves running gets SIGTERM once it
      // exits (reap()), and everything SIGKILL at baton's deadline.
      if (!m_command_done) {
        ::kill(m_command, SIGTERM);
        ::kill(m_command, SIGCONT);
      } else {
        signal_tree(::getpid(), -1, SIGTERM);
      }
      return true;
    }
    if (n < 0 && errno == EAGAIN) return true;
    m_killing = true;
    signal_tree(::getpid(), group(), SIGKILL);
    return n == 1;
  }

  // CMD's process group while CMD is unreaped (its pid cannot be reused
  // until then); afterwards the scan finds what is left of the group.
  pid_t group() const noexcept { return m_command_done ? -1 : m_command; }

  int m_control;
  int m_events;
  int m_signal_fd;
  pid_t m_command = -1;
  bool m_command_done = false;
  int m_command_status = 0;
  bool m_reported = false;
  bool m_children_left = true;
  bool m_killing = false;
};

}  // namespace

CommandGuard::~CommandGuard() {
  kill_and_wait();
  close_fd(m_events);
}

void CommandGuard::kill_and_wait() noexcept {
  close_fd(m_control);  // a guard still running kills the tree on EOF
  if (m_pid > 0 && !m_exited) {
    int status = 0;
    pid_t done;
    do {
      done = ::waitpid(m_pid, &status, 0);
    } while (done < 0 && errno == EINTR);
    set_exited(status);
  }
}

SpawnResult CommandGuard::start(char* const argv[], int stdin_fd,
                                int terminal_fd, int signal_fd) {
  SpawnResult result;
  int control[2];
  int events[2];
  if (::pipe2(control, O_CLOEXEC) != 0) {
    result.error = {errno, std::system_category()};
    return result;
  }
  if (::pipe2(events, O_CLOEXEC) != 0) {
    result.error = {errno, std::system_category()};
    close_fd(control[0]);
    close_fd(control[1]);
    return result;
  }
  // Should the guard be killed, CMD dies with it (PR_SET_PDEATHSIG) and
  // the rest of the tree comes to baton, which kills it.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  // fork, not vfork: the guard runs on while baton does. It inherits the
  // daemon connection (close-on-exec: CMD does not).
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(control[1]);  // only baton holds the write end: EOF = baton gone
    ::close(events[0]);
    Guard(control[0], events[1], signal_fd).run(argv, stdin_fd, terminal_fd);
  }
  const int fork_errno = errno;
  ::close(control[0]);
  ::close(events[1]);
  m_control = control[1];
  m_events = events[0];
  if (pid < 0) {
    close_fd(m_control);
    close_fd(m_events);
    result.error = {fork_errno, std::system_category()};
    return result;
  }
  m_pid = pid;

  GuardEvent event;
  ssize_t n;
  do {
    n = ::read(m_events, &event, sizeof event);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof event) &&
      event.kind == GuardEvent::started) {
    m_command = event.value;
    result.pid = event.value;
    ::fcntl(m_events, F_SETFL, ::fcntl(m_events, F_GETFL) | O_NONBLOCK);
    return result;
  }
  if (n == static_cast<ssize_t>(sizeof event) &&
      event.kind == GuardEvent::exec_failed)
    result.exec_errno = event.value;
  else if (n == static_cast<ssize_t>(sizeof event) &&
           event.kind == GuardEvent::spawn_failed)
    result.error = {event.value, std::system_category()};
  else
    result.error = std::make_error_code(std::errc::no_child_process);
  int status = 0;
  while (::waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
  }
  set_exited(status);
  return result;
}

bool CommandGuard::read_event(GuardEvent& event) noexcept {
  if (m_events < 0) return false;
  ssize_t n;
  do {
    n = ::read(m_events, &event, sizeof event);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof event)) return true;
  if (n < 0 && errno == EAGAIN) return false;
  m_eof = true;  // 0, a torn event or an error: nothing more will come
  close_fd(m_events);
  return false;
}

void CommandGuard::send(char command) noexcept {
  if (m_control < 0) return;
  ssize_t n;
  do {
    n = ::write(m_control, &command, 1);
  } while (n < 0 && errno == EINTR);
}

void CommandGuard::terminate() noexcept { send(k_terminate); }
void CommandGuard::kill() noexcept { send(k_kill); }

void CommandGuard::set_exited(int status) noexcept {
  m_exited = true;
  m_exit_status = status;
}

}  // namespace baton::cli
