#include "tests/support/daemon_process.hpp"

#include <signal.h>

#include "baton/client.hpp"
#include "tests/support/wait_until.hpp"

namespace baton::test {

const std::string& batond_path() {
  static const std::string path = BATON_TEST_BATOND;
  return path;
}

const std::string& baton_cli_path() {
  static const std::string path = BATON_TEST_CLI;
  return path;
}

std::vector<std::string> clean_environment(
    const std::vector<std::string>& extra) {
  return environment_without({"BATON_", "POD_NAME=", "NODE_NAME="}, extra);
}

std::string DaemonProcess::log_path() const {
  return m_config.log_path.empty() ? m_config.socket + ".log"
                                   : m_config.log_path;
}

std::string DaemonProcess::log() const { return read_text_file(log_path()); }

void DaemonProcess::spawn() {
  ProcessOptions options;
  options.argv = {batond_path(), "--root",          m_config.root,
                  "--socket",    m_config.socket,   "--pod-name",
                  m_config.pod,  "--node-name",     m_config.node,
                  "--log-level", m_config.log_level};
  options.argv.insert(options.argv.end(), m_config.extra_flags.begin(),
                      m_config.extra_flags.end());
  options.env = clean_environment();
  // Appending, so a restarted daemon's log follows its predecessor's.
  options.out = Output::append_to(log_path());
  options.err = Output::append_to(log_path());
  m_process = Process::spawn(options);
}

std::string DaemonProcess::start(std::chrono::milliseconds ready_timeout) {
  spawn();
  bool ready = wait_until(
      [&] {
        return !m_process.running() || ping(std::chrono::milliseconds(50));
      },
      ready_timeout, std::chrono::milliseconds(5));
  if (!m_process.running())
    return "batond (pod " + m_config.pod +
           ") exited during start-up: " + m_process.status()->describe() +
           "\n" + log();
  if (!ready)
    return "batond (pod " + m_config.pod + ") did not answer a ping on " +
           m_config.socket + " within " +
           std::to_string(ready_timeout.count()) + " ms\n" + log();
  return {};
}

bool DaemonProcess::ping(std::chrono::milliseconds timeout) const {
  ClientOptions options;
  options.socket_path = m_config.socket;
  options.connect_timeout = timeout;
  options.request_timeout =
      std::chrono::milliseconds(std::max<long long>(timeout.count(), 1000));
  Client client;
  std::error_code ec;
  client.connect(options, ec);
  if (!ec) client.ping(ec);
  return !ec;
}

std::optional<ExitStatus> DaemonProcess::stop(std::chrono::milliseconds bound) {
  if (!m_process.started()) return std::nullopt;
  if (m_process.status()) return m_process.status();
  m_process.kill(SIGTERM);
  if (auto status = m_process.wait(bound)) return status;
  m_process.kill_and_wait();
  return std::nullopt;
}

std::string DaemonProcess::stop_expecting_success(
    std::chrono::milliseconds bound) {
  std::optional<ExitStatus> status = stop(bound);
  if (status && status->exited() && status->code() == 0) return {};
  return "batond (pod " + m_config.pod + ") " +
         (status ? "ended with " + status->describe()
                 : "was still running " + std::to_string(bound.count()) +
                       " ms after SIGTERM and was killed") +
         "\n" + log();
}

void DaemonProcess::kill9() {
  if (m_process.started()) m_process.kill_and_wait();
}

}  // namespace baton::test
