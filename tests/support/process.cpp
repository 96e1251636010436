#include "tests/support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>
#include <utility>

extern char** environ;

namespace baton::test {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::system_category(), what);
}

void close_fd(int& fd) noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Opens what the child's stream should be, in the parent (so errors are
// reported here). Returns the descriptor the child dup2()s, and for pipes
// stores the parent's read end in PARENT_END.
int open_output(const Output& output, int& parent_end) {
  switch (output.kind) {
    case Output::Kind::inherit:
      return -1;
    case Output::Kind::null: {
      int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
      if (fd < 0) throw_errno("open /dev/null");
      return fd;
    }
    case Output::Kind::file: {
      int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
                  (output.append ? 0 : O_TRUNC);
      int fd = ::open(output.path.c_str(), flags, 0644);
      if (fd < 0) throw_errno("open " + output.path);
      return fd;
    }
    case Output::Kind::pipe: {
      int fds[2];
      if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe2");
      parent_end = fds[0];
      return fds[1];
    }
  }
  return -1;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Milliseconds left until DEADLINE, for poll(2).
int millis_until(Clock::time_point deadline) {
  auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now())
          .count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

}  // namespace

bool ExitStatus::exited() const noexcept { return WIFEXITED(m_raw); }
int ExitStatus::code() const noexcept {
  return WIFEXITED(m_raw) ? WEXITSTATUS(m_raw) : -1;
}
bool ExitStatus::signaled() const noexcept { return WIFSIGNALED(m_raw); }
int ExitStatus::signal() const noexcept {
  return WIFSIGNALED(m_raw) ? WTERMSIG(m_raw) : 0;
}
int ExitStatus::shell_code() const noexcept {
  if (exited()) return code();
  if (signaled()) return 128 + signal();
  return -1;
}

std::string ExitStatus::describe() const {
  if (exited()) return "exit " + std::to_string(code());
  if (signaled())
    return "killed by signal " + std::to_string(signal()) + " (" +
           ::strsignal(signal()) + ")";
  return "wait status " + std::to_string(m_raw);
}

std::vector<std::string> environment_without(
    const std::vector<std::string>& prefixes,
    const std::vector<std::string>& extra) {
  auto name_of = [](const std::string& entry) {
    return entry.substr(0, entry.find('='));
  };
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    std::string entry(*e);
    bool drop = false;
    for (const std::string& prefix : prefixes)
      drop = drop || entry.rfind(prefix, 0) == 0;
    for (const std::string& added : extra)
      drop = drop || name_of(added) == name_of(entry);
    if (!drop) out.push_back(std::move(entry));
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

Process::~Process() { reset(); }

Process::Process(Process&& other) noexcept
    : m_pid(std::exchange(other.m_pid, -1)),
      m_status(std::exchange(other.m_status, std::nullopt)),
      m_stdout_fd(std::exchange(other.m_stdout_fd, -1)),
      m_stderr_fd(std::exchange(other.m_stderr_fd, -1)),
      m_stdout_buffer(std::move(other.m_stdout_buffer)) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    reset();
    m_pid = std::exchange(other.m_pid, -1);
    m_status = std::exchange(other.m_status, std::nullopt);
    m_stdout_fd = std::exchange(other.m_stdout_fd, -1);
    m_stderr_fd = std::exchange(other.m_stderr_fd, -1);
    m_stdout_buffer = std::move(other.m_stdout_buffer);
  }
  return *this;
}

void Process::reset() noexcept {
  if (m_pid > 0 && !m_status) {
    ::kill(m_pid, SIGKILL);
    int raw = 0;
    while (::waitpid(m_pid, &raw, 0) < 0 && errno == EINTR) {
    }
  }
  m_pid = -1;
  m_status.reset();
  close_fd(m_stdout_fd);
  close_fd(m_stderr_fd);
  m_stdout_buffer.clear();
}

Process Process::spawn(const ProcessOptions& options) {
  if (options.argv.empty())
    throw std::invalid_argument("Process::spawn: empty argv");
  Process process;
  int child_out = open_output(options.out, process.m_stdout_fd);
  int child_err = -1;
  try {
    child_err = open_output(options.err, process.m_stderr_fd);
  } catch (...) {
    if (child_out >= 0) ::close(child_out);
    throw;
  }
  int error_pipe[2];
  if (::pipe2(error_pipe, O_CLOEXEC) != 0) throw_errno("pipe2");

  // Everything the child needs is prepared here: after fork it only makes
  // system calls (the test may have threads, e.g. libbaton clients).
  std::vector<std::string> argv_strings = options.argv;
  std::vector<char*> argv = pointers(argv_strings);
  std::vector<std::string> env_strings;
  std::vector<char*> envp;
  if (options.env) {
    env_strings = *options.env;
    envp = pointers(env_strings);
  }
  char* const* child_env = options.env ? envp.data() : environ;
  const char* cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
  const pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    // Signals blocked or ignored by the test runner must not leak into the
    // child (a shell ignoring SIGTERM would make the tests meaningless).
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
    if (child_out >= 0) ::dup2(child_out, STDOUT_FILENO);
    if (child_err >= 0) ::dup2(child_err, STDERR_FILENO);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    if (cwd && ::chdir(cwd) != 0) {
      int error = errno;
      ssize_t ignored = ::write(error_pipe[1], &error, sizeof error);
      static_cast<void>(ignored);
      ::_exit(127);
    }
    ::execvpe(argv[0], argv.data(), child_env);
    int error = errno;
    ssize_t ignored = ::write(error_pipe[1], &error, sizeof error);
    static_cast<void>(ignored);
    ::_exit(127);
  }
  process.m_pid = pid;
  ::close(error_pipe[1]);
  if (child_out >= 0) ::close(child_out);
  if (child_err >= 0) ::close(child_err);
  int exec_error = 0;
  ssize_t n;
  do {
    n = ::read(error_pipe[0], &exec_error, sizeof exec_error);
  } while (n < 0 && errno == EINTR);
  ::close(error_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof exec_error)) {
    process.wait(std::chrono::seconds(5));
    errno = exec_error;
    throw_errno("exec " + options.argv[0]);
  }
  return process;
}

bool Process::running() {
  if (m_pid <= 0 || m_status) return false;
  int raw = 0;
  pid_t done;
  do {
    done = ::waitpid(m_pid, &raw, WNOHANG);
  } while (done < 0 && errno == EINTR);
  if (done == m_pid) {
    m_status = ExitStatus(raw);
    return false;
  }
  return done == 0;
}

std::optional<ExitStatus> Process::wait(std::chrono::milliseconds timeout) {
  if (m_pid <= 0) return std::nullopt;
  const auto deadline = Clock::now() + timeout;
  // Polling with a short, growing period: no SIGCHLD handler to install in
  // the test runner, and a child that ends is seen within a millisecond.
  auto period = std::chrono::microseconds(100);
  while (running()) {
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(period);
    period = std::min(period * 2, std::chrono::microseconds(2000));
  }
  return m_status;
}

bool Process::kill(int sig) {
  if (m_pid <= 0 || m_status) return false;
  return ::kill(m_pid, sig) == 0;
}

ExitStatus Process::kill_and_wait() {
  if (m_pid <= 0) throw std::logic_error("Process::kill_and_wait: no process");
  if (!m_status) {
    ::kill(m_pid, SIGKILL);
    int raw = 0;
    pid_t done;
    do {
      done = ::waitpid(m_pid, &raw, 0);
    } while (done < 0 && errno == EINTR);
    if (done == m_pid) m_status = ExitStatus(raw);
  }
  return *m_status;
}

std::string Process::read_stdout(std::chrono::milliseconds timeout) {
  std::string out = std::exchange(m_stdout_buffer, {});
  if (m_stdout_fd < 0) return out;
  const auto deadline = Clock::now() + timeout;
  char buffer[4096];
  for (;;) {
    pollfd fd{m_stdout_fd, POLLIN, 0};
    int ready = ::poll(&fd, 1, millis_until(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) break;
    ssize_t n = ::read(m_stdout_fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  return out;
}

std::optional<std::string> Process::read_stdout_line(
    std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  char buffer[4096];
  for (;;) {
    if (auto newline = m_stdout_buffer.find('\n');
        newline != std::string::npos) {
      std::string line = m_stdout_buffer.substr(0, newline);
      m_stdout_buffer.erase(0, newline + 1);
      return line;
    }
    if (m_stdout_fd < 0) return std::nullopt;
    pollfd fd{m_stdout_fd, POLLIN, 0};
    int ready = ::poll(&fd, 1, millis_until(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return std::nullopt;
    ssize_t n = ::read(m_stdout_fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    m_stdout_buffer.append(buffer, static_cast<std::size_t>(n));
  }
}

bool process_alive(pid_t pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0) return errno == EPERM;
  // A zombie has ended; only its parent has not reaped it yet.
  std::string stat = read_text_file("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size())
    return !stat.empty();
  char state = stat[paren + 2];
  return state != 'Z' && state != 'X';
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace baton::test
