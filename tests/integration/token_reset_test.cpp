// Fencing tokens survive the loss of their record: the lock file removed or
// replaced under a holder, .baton/ wiped or restored from an older backup.
// Real batond processes ("pods") on one root, libbaton holders, the baton CLI
// for publishes (exit codes as a job sees them).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "baton/client.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace baton::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

void write_text(const std::string& path, const std::string& text) {
  FILE* out = std::fopen(path.c_str(), "w");
  ASSERT_NE(out, nullptr) << path;
  std::fputs(text.c_str(), out);
  std::fclose(out);
}

class TokenReset : public ::testing::Test {
 protected:
  void TearDown() override {
    for (DaemonProcess& daemon : m_daemons) {
      if (!daemon.running()) continue;
      std::optional<ExitStatus> status = daemon.stop();
      EXPECT_TRUE(status && status->exited() && status->code() == 0)
          << "batond pod " << daemon.pod() << " on SIGTERM";
    }
    if (!HasFailure()) return;
    for (DaemonProcess& daemon : m_daemons)
      std::fprintf(stderr, "---- batond pod %s ----\n%s\n",
                   daemon.pod().c_str(), daemon.log().c_str());
  }

  DaemonProcess& start_daemon(const std::string& pod) {
    DaemonConfig config;
    config.root = m_root;
    config.socket =
        m_dir.file(pod + "-" + std::to_string(m_daemons.size()) + ".sock");
    config.pod = pod;
    config.node = "node-" + pod;
    DaemonProcess& daemon = m_daemons.emplace_back(config);
    if (std::string error = daemon.start(); !error.empty())
      throw std::runtime_error(error);
    return daemon;
  }

  static Client connect(const DaemonProcess& daemon) {
    ClientOptions options;
    options.socket_path = daemon.socket();
    options.connect_timeout = 5s;
    options.request_timeout = 10s;
    Client client;
    client.connect(options);
    return client;
  }

  // `baton --socket S publish --token T SRC DEST`: its exit code.
  int publish(const DaemonProcess& daemon, std::uint64_t token,
              const std::string& content, const std::string& dest) {
    std::string source = m_dir.file("src-" + std::to_string(++m_sources));
    write_text(source, content);
    ProcessOptions options;
    options.argv = {baton_cli_path(), "--socket", daemon.socket(),
                    "publish",        "--token",  std::to_string(token),
                    source,           dest};
    options.env = clean_environment();
    options.out = Output::file(source + ".out");
    options.err = Output::file(source + ".err");
    Process process = Process::spawn(options);
    std::optional<ExitStatus> status = process.wait(10s);
    return status ? status->shell_code() : -1;
  }

  std::string root_file(const std::string& name) const {
    std::string text;
    if (FILE* in = std::fopen((m_root + "/" + name).c_str(), "r")) {
      char buffer[256];
      std::size_t n;
      while ((n = std::fread(buffer, 1, sizeof buffer, in)) > 0)
        text.append(buffer, n);
      std::fclose(in);
    }
    return text;
  }

  // The one lock file of the test's lock.
  std::string lock_file() const {
    for (const auto& item : fs::directory_iterator(m_root + "/.baton/locks"))
      if (item.path().extension() == ".lock") return item.path().string();
    return {};
  }

  TempDir m_dir{"baton-token-reset"};
  std::string m_root = m_dir.make_dir("root");
  std::vector<DaemonProcess> m_daemons;
  int m_sources = 0;

  // Pod A holds L (token a) and stalls; the lock file goes (REPLACE: a fresh
  // file is renamed over it, as a restore would); pod B takes L at once.
  void stale_holder_after_lock_file_loss(bool replace) {
    m_daemons.reserve(4);
    DaemonProcess& a = start_daemon("a");
    DaemonProcess& b = start_daemon("b");
    Client ca = connect(a);
    Lock held_a = ca.lock("L");
    const std::uint64_t token_a = held_a.token();
    ASSERT_GT(token_a, 0u);

    std::string file = lock_file();
    ASSERT_FALSE(file.empty());
    if (replace) {
      // An old copy of the file, from before the lock was first taken.
      std::string copy = file + ".restored";
      write_text(copy, "baton-lock 1 reserved=0 owner=00000000000000aa\n");
      ASSERT_EQ(::rename(copy.c_str(), file.c_str()), 0);
    } else {
      ASSERT_EQ(::unlink(file.c_str()), 0);
    }

    Client cb = connect(b);
    LockOptions options;
    options.timeout = 5s;
    Lock held_b = cb.lock("L", options);
    const std::uint64_t token_b = held_b.token();
    EXPECT_GT(token_b, token_a)
        << "the new holder's token must exceed the stale holder's";

    EXPECT_EQ(publish(b, token_b, "NEW\n", "out.txt"), 0);
    EXPECT_EQ(publish(a, token_a, "OLD\n", "out.txt"), 76)
        << "the stale holder's publish (token " << token_a << " < " << token_b
        << ") must be refused";
    EXPECT_EQ(root_file("out.txt"), "NEW\n");
    held_b.release();
  }
};

TEST_F(TokenReset, LockFileRemovedUnderAHolder) {
  stale_holder_after_lock_file_loss(false);
}

TEST_F(TokenReset, LockFileReplacedUnderAHolder) {
  stale_holder_after_lock_file_loss(true);
}

// A daemon started after .baton/ was wiped, or restored from a backup older
// than the last grants, still issues tokens above every earlier one.
TEST_F(TokenReset, WipedOrRestoredBatonDirDoesNotResetTokens) {
  m_daemons.reserve(4);
  DaemonProcess& first = start_daemon("a");
  std::uint64_t highest = 0;
  {
    Client client = connect(first);
    for (int i = 0; i < 3; ++i) {
      Lock lock = client.lock("L");
      highest = std::max(highest, lock.token());
    }
  }
  std::string backup = m_dir.file("backup");
  fs::copy(m_root + "/.baton", backup, fs::copy_options::recursive);
  {
    Client client = connect(first);
    for (int i = 0; i < 40; ++i) {  // past the first reserved block
      Lock lock = client.lock("L");
      ASSERT_GT(lock.token(), highest);
      highest = lock.token();
    }
  }
  ASSERT_TRUE(first.stop_expecting_success().empty());

  fs::remove_all(m_root + "/.baton");
  fs::copy(backup, m_root + "/.baton", fs::copy_options::recursive);
  DaemonProcess& restored = start_daemon("a");
  {
    Client client = connect(restored);
    Lock lock = client.lock("L");
    EXPECT_GT(lock.token(), highest)
        << "after restoring .baton/ from an older backup";
    highest = std::max(highest, lock.token());
  }
  ASSERT_TRUE(restored.stop_expecting_success().empty());

  fs::remove_all(m_root + "/.baton");
  DaemonProcess& wiped = start_daemon("a");
  Client client = connect(wiped);
  Lock lock = client.lock("L");
  EXPECT_GT(lock.token(), highest) << "after wiping .baton/";
}

}  // namespace
}  // namespace baton::test
