#include "tests/handoff/handoff_fixture.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

#include "tests/handoff/content.hpp"
#include "tests/support/wait_until.hpp"

namespace baton::test {

using namespace std::chrono_literals;

const std::string& worker_path() {
  static const std::string path = BATON_TEST_HANDOFF_WORKER;
  return path;
}

const std::string& seccomp_exec_path() {
  static const std::string path = BATON_TEST_SECCOMP_EXEC;
  return path;
}

namespace {

void collect_staging(const std::string& base, const std::string& relative,
                     std::vector<std::string>& out) {
  const std::string path = relative.empty() ? base : base + "/" + relative;
  DIR* dir = ::opendir(path.c_str());
  if (!dir) return;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    std::string child = relative.empty() ? name : relative + "/" + name;
    if (name.starts_with(".baton-stage.") || name.starts_with(".baton-new."))
      out.push_back(child);
    struct stat info {};
    if (::lstat((base + "/" + child).c_str(), &info) == 0 &&
        S_ISDIR(info.st_mode))
      collect_staging(base, child, out);
  }
  ::closedir(dir);
}

}  // namespace

std::vector<std::string> staging_files(const std::string& dir) {
  std::vector<std::string> out;
  collect_staging(dir, "", out);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> names;
  DIR* dir = ::opendir(path.c_str());
  if (!dir) return names;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

std::optional<std::string> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return std::nullopt;
  std::string data;
  bool ok = read_all(fd, data);
  ::close(fd);
  if (!ok) return std::nullopt;
  return data;
}

void write_file(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || !write_all(fd, data))
    throw std::runtime_error("cannot write " + path);
  ::close(fd);
}

std::string join(const std::vector<std::string>& items) {
  std::string text;
  for (const std::string& item : items)
    text += (text.empty() ? "" : ", ") + item;
  return text.empty() ? "(none)" : text;
}

int soak_factor() {
  static const int factor = [] {
    const char* text = std::getenv("BATON_HANDOFF_SOAK");
    int value = text ? std::atoi(text) : 1;
    return std::clamp(value, 1, 1000);
  }();
  return factor;
}

void HandoffTest::SetUp() { m_root = m_dir.make_dir("root"); }

void HandoffTest::TearDown() {
  // Workers first, so no client keeps a daemon's shutdown waiting.
  for (Process& worker : m_workers)
    if (worker.running()) worker.kill_and_wait();
  for (DaemonProcess& daemon : m_daemons) {
    if (!daemon.running()) continue;
    std::optional<ExitStatus> status = daemon.stop();
    EXPECT_TRUE(status && status->exited() && status->code() == 0)
        << "batond pod " << daemon.pod() << " on SIGTERM at the end: "
        << (status ? status->describe()
                   : std::string("still running after 5 s"));
  }
  for (FilteredDaemon& daemon : m_filtered) {
    if (!daemon.process.running()) continue;
    daemon.process.kill(SIGTERM);
    std::optional<ExitStatus> status = daemon.process.wait(5s);
    EXPECT_TRUE(status && status->exited() && status->code() == 0)
        << "batond pod " << daemon.pod << " (seccomp_exec) on SIGTERM: "
        << (status ? status->describe()
                   : std::string("still running after 5 s"));
  }
  if (!HasFailure()) return;
  auto tail = [](std::string log) {
    return log.size() > 5000 ? "...\n" + log.substr(log.size() - 5000) : log;
  };
  for (DaemonProcess& daemon : m_daemons)
    std::fprintf(stderr, "---- batond pod %s log ----\n%s\n",
                 daemon.pod().c_str(), tail(daemon.log()).c_str());
  for (FilteredDaemon& daemon : m_filtered)
    std::fprintf(stderr, "---- batond pod %s (seccomp_exec) log ----\n%s\n",
                 daemon.pod.c_str(), tail(read_text_file(daemon.log)).c_str());
  for (const std::string& log : m_worker_logs) {
    std::string text = read_text_file(log);
    if (!text.empty())
      std::fprintf(stderr, "---- %s ----\n%s\n", log.c_str(),
                   tail(text).c_str());
  }
}

DaemonProcess& HandoffTest::start_daemon(const std::string& pod,
                                         std::vector<std::string> flags,
                                         const std::string& root_override) {
  DaemonConfig config;
  config.root = root_override.empty() ? m_root : root_override;
  config.socket = m_dir.file(pod + ".sock");
  config.pod = pod;
  config.node = "node-" + pod;
  config.extra_flags = std::move(flags);
  config.log_level = "info";
  // A restarted pod gets a fresh instance but keeps its socket and log.
  DaemonProcess& daemon = m_daemons.emplace_back(std::move(config));
  if (std::string error = daemon.start(); !error.empty())
    throw std::runtime_error(error);
  return daemon;
}

std::string HandoffTest::start_filtered_daemon(
    const std::string& pod, std::vector<std::string> filter_flags,
    std::vector<std::string> flags) {
  FilteredDaemon& daemon = m_filtered.emplace_back();
  daemon.pod = pod;
  daemon.log = m_dir.file(pod + ".sock.log");
  const std::string socket = m_dir.file(pod + ".sock");
  ProcessOptions options;
  options.argv = {seccomp_exec_path()};
  options.argv.insert(options.argv.end(), filter_flags.begin(),
                      filter_flags.end());
  options.argv.insert(
      options.argv.end(),
      {batond_path(), "--root", m_root, "--socket", socket, "--pod-name", pod,
       "--node-name", "node-" + pod, "--log-level", "debug"});
  options.argv.insert(options.argv.end(), flags.begin(), flags.end());
  options.env = clean_environment();
  options.out = Output::append_to(daemon.log);
  options.err = Output::append_to(daemon.log);
  daemon.process = Process::spawn(options);
  bool ready = wait_until(
      [&] {
        if (!daemon.process.running()) return true;
        ClientOptions client_options;
        client_options.socket_path = socket;
        client_options.connect_timeout = 50ms;
        Client client;
        std::error_code ec;
        client.connect(client_options, ec);
        if (!ec) client.ping(ec);
        return !ec;
      },
      10s, 5ms);
  if (!ready || !daemon.process.running())
    throw std::runtime_error("batond under seccomp_exec (pod " + pod +
                             ") did not start:\n" + read_text_file(daemon.log));
  return socket;
}

Process& HandoffTest::filtered_daemon(const std::string& pod) {
  for (FilteredDaemon& daemon : m_filtered)
    if (daemon.pod == pod) return daemon.process;
  throw std::runtime_error("no filtered pod " + pod);
}

std::string HandoffTest::filtered_daemon_log(const std::string& pod) const {
  for (const FilteredDaemon& daemon : m_filtered)
    if (daemon.pod == pod) return read_text_file(daemon.log);
  return {};
}

Client HandoffTest::connect(const std::string& socket) {
  ClientOptions options;
  options.socket_path = socket;
  options.connect_timeout = 5s;
  options.request_timeout = 10s;
  Client client;
  client.connect(options);
  return client;
}

Process& HandoffTest::start_worker(std::vector<std::string> args) {
  const std::string err =
      m_dir.file("worker-" + std::to_string(++m_next_worker) + "-" +
                 (args.empty() ? "" : args.front()) + ".err");
  ProcessOptions options;
  options.argv = {worker_path()};
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.env = clean_environment();
  options.out = Output::pipe();
  options.err = Output::file(err);
  m_worker_logs.push_back(err);
  return m_workers.emplace_back(Process::spawn(options));
}

std::string HandoffTest::worker_stderr(const Process& worker) const {
  for (std::size_t i = 0; i < m_workers.size(); ++i)
    if (&m_workers[i] == &worker) return read_text_file(m_worker_logs[i]);
  return {};
}

std::uint64_t HandoffTest::publish(Client& client, const std::string& path,
                                   const std::string& data,
                                   const PublishOptions& options) {
  Publisher publisher = client.publish(path, options);
  if (!write_all(publisher.fd(), data))
    throw std::runtime_error("cannot write the new version of " + path);
  return publisher.commit();
}

std::vector<std::string> HandoffTest::wait_for_no_staging(
    std::chrono::milliseconds timeout) {
  std::vector<std::string> left;
  wait_until(
      [&] {
        left = staging_files(m_root);
        return left.empty();
      },
      timeout, 5ms);
  return left;
}

}  // namespace baton::test
