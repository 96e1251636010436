// Path confinement: a corpus of hostile paths for publish, open (read),
// wait, enqueue and claim. Each is refused with invalid_path or
// path_outside_root and a one-line message; nothing outside the root is
// created, changed or read back.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "baton/client.hpp"
#include "tests/handoff/content.hpp"
#include "tests/handoff/handoff_fixture.hpp"

namespace baton::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

enum class Op { publish, open, wait, enqueue, claim };

const char* op_name(Op op) {
  switch (op) {
    case Op::publish:
      return "publish";
    case Op::open:
      return "open";
    case Op::wait:
      return "wait";
    case Op::enqueue:
      return "enqueue";
    case Op::claim:
      return "claim";
  }
  return "?";
}

struct Outcome {
  std::error_code ec;
  std::string message;  // the daemon's, when it refused
  std::string content;  // what came back, when it did not
  long long took_ms = 0;
};

// Tries OP on PATH through CLIENT; a publish or an enqueue that is let
// through writes MARKER and commits.
Outcome attempt(Client& client, Op op, const std::string& path,
                const std::string& marker) {
  Outcome outcome;
  const Clock::time_point start = Clock::now();
  switch (op) {
    case Op::publish: {
      Publisher publisher = client.publish(path, {}, outcome.ec);
      if (!outcome.ec) {
        write_all(publisher.fd(), marker);
        publisher.commit(outcome.ec);
      }
      break;
    }
    case Op::open: {
      OpenedFile file = client.open(path, outcome.ec);
      if (!outcome.ec) read_all(file.fd, outcome.content);
      break;
    }
    case Op::wait: {
      WaitOptions options;
      options.timeout = 1s;
      client.wait(path, options, outcome.ec);
      break;
    }
    case Op::enqueue: {
      PendingItem item = client.enqueue(path, outcome.ec);
      if (!outcome.ec) {
        write_all(item.fd(), marker);
        item.commit(outcome.ec);
      }
      break;
    }
    case Op::claim: {
      QueueItem item = client.claim(path, 1s, outcome.ec);
      if (!outcome.ec) read_all(item.fd(), outcome.content);
      break;
    }
  }
  outcome.took_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        Clock::now() - start)
                        .count();
  if (outcome.ec) outcome.message = client.last_error_message();
  return outcome;
}

// Every entry under DIR (not following symlinks) with its content or link
// target: a snapshot to compare.
void snapshot(const std::string& base, const std::string& relative,
              std::map<std::string, std::string>& out, bool skip_baton) {
  const std::string path = relative.empty() ? base : base + "/" + relative;
  for (const std::string& name : list_dir(path)) {
    if (skip_baton && relative.empty() && name == ".baton") continue;
    const std::string child = relative.empty() ? name : relative + "/" + name;
    const std::string full = base + "/" + child;
    struct stat info {};
    if (::lstat(full.c_str(), &info) != 0) continue;
    if (S_ISDIR(info.st_mode)) {
      out[child] = "dir";
      snapshot(base, child, out, skip_baton);
    } else if (S_ISLNK(info.st_mode)) {
      char target[4096];
      ssize_t n = ::readlink(full.c_str(), target, sizeof target);
      out[child] = "link " +
                   std::string(target, n > 0 ? static_cast<std::size_t>(n) : 0);
    } else if (S_ISREG(info.st_mode)) {
      out[child] = "file " + read_file(full).value_or("?");
    } else {
      out[child] = "other";
    }
  }
}

std::map<std::string, std::string> snapshot(const std::string& dir,
                                            bool skip_baton = false) {
  std::map<std::string, std::string> out;
  snapshot(dir, "", out, skip_baton);
  return out;
}

// A raw protocol connection, so that the daemon's own check is what
// answers (libbaton refuses bad paths before sending them).
class RawConnection {
 public:
  explicit RawConnection(const std::string& socket) {
    m_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    socket.copy(address.sun_path, sizeof address.sun_path - 1);
    if (m_fd < 0 || ::connect(m_fd, reinterpret_cast<sockaddr*>(&address),
                              sizeof address) != 0)
      throw std::runtime_error("cannot connect to " + socket);
    m_greeting = read_line();
  }
  ~RawConnection() { ::close(m_fd); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  const std::string& greeting() const { return m_greeting; }

  // Sends LINE (a newline is added) and returns the next line; empty if
  // none came within 5 s. A descriptor passed with it is dropped.
  std::string request(const std::string& line) {
    const std::string out = line + "\n";
    if (::send(m_fd, out.data(), out.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(out.size()))
      return {};
    return read_line();
  }

 private:
  std::string read_line() {
    const Clock::time_point deadline = Clock::now() + 5s;
    for (;;) {
      if (std::size_t end = m_buffer.find('\n'); end != std::string::npos) {
        std::string line = m_buffer.substr(0, end);
        m_buffer.erase(0, end + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - Clock::now());
      pollfd p{m_fd, POLLIN, 0};
      if (left.count() <= 0 ||
          ::poll(&p, 1, static_cast<int>(left.count())) <= 0)
        return {};
      char chunk[4096];
      ssize_t n = ::recv(m_fd, chunk, sizeof chunk, 0);
      if (n <= 0) return {};
      m_buffer.append(chunk, static_cast<std::size_t>(n));
    }
  }

  int m_fd = -1;
  std::string m_buffer;
  std::string m_greeting;
};

void make_symlink(const std::string& target, const std::string& link) {
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0) << link;
}

class Confinement : public HandoffTest {
 protected:
  void SetUp() override {
    HandoffTest::SetUp();
    m_outside = dir().make_dir("outside");
    write_file(m_outside + "/sentinel", "sentinel");
    m_passwd = read_file("/etc/passwd").value_or("");
    dir().make_dir("root/a");
    dir().make_dir("root/inside");
    write_file(root() + "/inside/file", "inside");
    // Symlinks out of the root, to be met first, in the middle and last.
    make_symlink("/etc", root() + "/etc_link");
    make_symlink(m_outside, root() + "/out_link");
    make_symlink("../outside", root() + "/rel_out");
    make_symlink("/etc/passwd", root() + "/passwd_link");
    make_symlink(m_outside, root() + "/a/out_link");
    make_symlink("/etc", root() + "/a/etc_link");
    make_symlink("/etc/passwd", root() + "/a/passwd_link");
    make_symlink(m_outside + "/sentinel", root() + "/a/sentinel_link");
    make_symlink("../../outside", root() + "/a/rel_out");
    // Symlinks that stay inside: absolute (refused or kept inside) and
    // relative (allowed).
    make_symlink(root() + "/inside", root() + "/abs_in");
    make_symlink("inside", root() + "/rel_in");
    ASSERT_EQ(::mkfifo((root() + "/fifo").c_str(), 0644), 0);
    m_daemon = &start_daemon("a");
  }

  // Paths the grammar refuses: invalid_path, whatever the op.
  static std::vector<std::string> grammar_corpus() {
    std::string long_path;
    while (long_path.size() < 2000) long_path += "d/";
    long_path += "x";
    return {"..",
            "../x",
            "a/../../x",
            "a/..",
            "/etc/passwd",
            "/tmp/x",
            "",
            "a//b",
            "./a",
            "a/./b",
            "a/",
            std::string("x\x01y"),
            "x\ny",
            "x\ty",
            std::string("x\x7fy"),
            long_path,
            std::string(300, 'c'),
            "a/" + std::string(300, 'c'),
            ".baton",
            ".baton/locks/x",
            ".baton/versions/x",
            ".baton-stage.x",
            "a/.baton-stage.x",
            ".baton-new.x"};
  }

  // Paths through symlinks that lead out of the root (any component but
  // the last, and the last for ops that follow it).
  static std::vector<std::string> symlink_corpus() {
    return {"etc_link/passwd",    "etc_link/x",          "out_link/x",
            "out_link/sentinel",  "rel_out/x",           "rel_out/sentinel",
            "a/out_link/x",       "a/out_link/sentinel", "a/etc_link/passwd",
            "a/rel_out/sentinel", "a/out_link/new/x",    "out_link/new/x"};
  }

  // The last component itself a symlink leading out. Reads, waits and
  // queues follow it; a publish replaces the name.
  static std::vector<std::string> last_symlink_corpus() {
    return {"passwd_link", "a/passwd_link", "a/sentinel_link", "out_link",
            "a/out_link",  "etc_link",      "rel_out",         "a/rel_out"};
  }

  void expect_refused(Client& client, Op op, const std::string& path,
                      const std::string& why) {
    const std::string shown = printable(path);
    Outcome outcome = attempt(client, op, path, "ESCAPED " + shown);
    const bool refused = outcome.ec == make_error_code(errc::invalid_path) ||
                         outcome.ec == make_error_code(errc::path_outside_root);
    EXPECT_TRUE(refused) << op_name(op) << " '" << shown << "' (" << why
                         << "): "
                         << (outcome.ec
                                 ? outcome.ec.message() + ": " + outcome.message
                                 : std::string("succeeded"));
    if (outcome.ec) {
      EXPECT_FALSE(outcome.message.empty())
          << op_name(op) << " '" << shown << "'";
      EXPECT_EQ(outcome.message.find('\n'), std::string::npos)
          << op_name(op) << " '" << shown << "': " << outcome.message;
    }
    EXPECT_LT(outcome.took_ms, 900)
        << op_name(op) << " '" << shown << "' was not refused at once";
    if (!m_passwd.empty()) {
      EXPECT_EQ(outcome.content.find(m_passwd.substr(0, 40)), std::string::npos)
          << op_name(op) << " '" << shown << "' read /etc/passwd";
    }
    if (outcome.ec == make_error_code(errc::connection_lost))
      client = connect(m_daemon->socket());
  }

  static std::string printable(const std::string& path) {
    std::string out;
    for (char c : path) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "\\x%02x",
                      static_cast<unsigned char>(c));
        out += hex;
      } else {
        out += c;
      }
    }
    return out.size() > 80
               ? out.substr(0, 40) + "...(" + std::to_string(out.size()) + ")"
               : out;
  }

  std::string m_outside;
  std::string m_passwd;
  DaemonProcess* m_daemon = nullptr;
};

// Every op refuses every path of the grammar and symlink corpora, with a
// one-line reason; nothing outside the root changes and /etc/passwd never
// comes back; nothing is created in the root either.
TEST_F(Confinement, PathConfinement) {
  const auto outside_before = snapshot(m_outside);
  const auto root_before = snapshot(root(), /*skip_baton=*/true);
  Client client = connect(m_daemon->socket());
  int cases = 0;
  for (Op op : {Op::publish, Op::open, Op::wait, Op::enqueue, Op::claim}) {
    for (const std::string& path : grammar_corpus()) {
      expect_refused(client, op, path, "grammar");
      ++cases;
    }
    for (const std::string& path : symlink_corpus()) {
      expect_refused(client, op, path, "symlink out of the root");
      ++cases;
    }
    if (op != Op::publish) {
      for (const std::string& path : last_symlink_corpus()) {
        expect_refused(client, op, path,
                       "last component a symlink out of the root");
        ++cases;
      }
    }
  }
  // A FIFO where a file is read: refused, without hanging.
  expect_refused(client, Op::open, "fifo", "a FIFO");
  expect_refused(client, Op::open, "a", "a directory");
  cases += 2;
  std::printf("%d hostile requests refused\n", cases);
  EXPECT_EQ(snapshot(m_outside), outside_before)
      << "something outside the root changed";
  EXPECT_EQ(snapshot(root(), true), root_before)
      << "a refused request left something in the root";
  EXPECT_EQ(staging_files(root()), std::vector<std::string>{});
}

// The daemon refuses the grammar corpus itself, for every op, when a raw
// client sends it (libbaton never does): invalid_path and a one-line
// message. Bytes that are not UTF-8, raw or as a lone surrogate escape,
// are refused too (protocol_error when the JSON itself is not valid).
TEST_F(Confinement, DaemonRefusesBadPathsFromRawClients) {
  const auto root_before = snapshot(root(), /*skip_baton=*/true);
  RawConnection raw(m_daemon->socket());
  ASSERT_NE(raw.greeting().find("\"baton\""), std::string::npos)
      << raw.greeting();
  struct RawOp {
    const char* op;
    const char* field;
    const char* extra;
  };
  const RawOp ops[] = {{"publish_begin", "path", ""},
                       {"read", "path", ""},
                       {"wait", "path", ",\"timeout_ms\":0"},
                       {"enqueue_begin", "queue", ""},
                       {"claim", "queue", ",\"timeout_ms\":0"}};
  int id = 0, cases = 0;
  auto expect_refused = [&](const RawOp& op, const std::string& value_json,
                            const std::string& shown, bool json_may_fail) {
    const std::string line = "{\"id\":" + std::to_string(++id) + ",\"op\":\"" +
                             op.op + "\",\"" + op.field + "\":" + value_json +
                             op.extra + "}";
    const std::string reply_line = raw.request(line);
    ++cases;
    nlohmann::json reply = nlohmann::json::parse(reply_line, nullptr, false);
    ASSERT_TRUE(reply.is_object())
        << op.op << " '" << shown << "': no reply: " << reply_line;
    EXPECT_EQ(reply.value("ok", true), false)
        << op.op << " '" << shown << "' accepted: " << reply_line;
    const std::string error = reply.value("error", "");
    EXPECT_TRUE(error == "invalid_path" ||
                (json_may_fail && error == "protocol_error"))
        << op.op << " '" << shown << "': " << reply_line;
    EXPECT_FALSE(reply.value("message", "").empty()) << reply_line;
  };
  for (const RawOp& op : ops) {
    for (const std::string& path : grammar_corpus())
      expect_refused(op, nlohmann::json(path).dump(), printable(path), false);
    expect_refused(op, "\"bad\xff\xfename\"", "bad\\xff\\xfename", true);
    expect_refused(op, "\"bad\\udcffname\"", "bad\\udcffname", true);
    expect_refused(op, "\"caf\xc3\xa9\xe9\"", "caf\\xc3\\xa9\\xe9", true);
  }
  std::printf("%d raw requests with bad paths refused by the daemon\n", cases);
  EXPECT_EQ(snapshot(root(), true), root_before)
      << "a refused request left something in the root";
  EXPECT_EQ(staging_files(root()), std::vector<std::string>{});
}

// A publish onto a name that is a symlink leading out of the root is
// refused, as every other path through such a symlink is (the spec:
// "symlinks leading out, anywhere in the path"); it must never write
// through the link.
TEST_F(Confinement, PublishOntoSymlinkLeadingOutIsRefused) {
  const auto outside_before = snapshot(m_outside);
  const std::string passwd_before = read_file("/etc/passwd").value_or("");
  Client client = connect(m_daemon->socket());
  for (const std::string& path : last_symlink_corpus())
    expect_refused(client, Op::publish, path,
                   "last component a symlink out of the root");
  EXPECT_EQ(snapshot(m_outside), outside_before)
      << "something outside the root changed";
  EXPECT_EQ(read_file("/etc/passwd").value_or(""), passwd_before);
}

// Symlinks that stay inside the root: a relative one works for every op
// and lands inside; an absolute one (to a directory inside) is refused or
// stays inside. Nothing outside changes.
TEST_F(Confinement, SymlinksInsideTheRootStayInside) {
  const auto outside_before = snapshot(m_outside);
  Client client = connect(m_daemon->socket());
  Outcome published =
      attempt(client, Op::publish, "rel_in/new", "through rel_in");
  ASSERT_FALSE(published.ec)
      << published.ec.message() << ": " << published.message;
  EXPECT_EQ(read_file(root() + "/inside/new"), "through rel_in");
  Outcome opened = attempt(client, Op::open, "rel_in/file", "");
  EXPECT_FALSE(opened.ec) << opened.message;
  EXPECT_EQ(opened.content, "inside");
  Outcome waited = attempt(client, Op::wait, "rel_in/new", "");
  EXPECT_FALSE(waited.ec) << waited.message;
  Outcome enqueued = attempt(client, Op::enqueue, "rel_in/queue", "item");
  EXPECT_FALSE(enqueued.ec) << enqueued.message;
  Outcome claimed = attempt(client, Op::claim, "rel_in/queue", "");
  EXPECT_FALSE(claimed.ec) << claimed.message;
  EXPECT_EQ(claimed.content, "item");

  for (Op op : {Op::publish, Op::open, Op::wait, Op::enqueue, Op::claim}) {
    Outcome outcome =
        attempt(client, op, op == Op::open ? "abs_in/file" : "abs_in/x",
                "through abs_in");
    const bool refused =
        outcome.ec == make_error_code(errc::path_outside_root) ||
        outcome.ec == make_error_code(errc::invalid_path);
    const bool inside = !outcome.ec;
    EXPECT_TRUE(refused || inside)
        << op_name(op) << " abs_in: " << outcome.ec.message();
    if (inside && op == Op::publish) {
      EXPECT_EQ(read_file(root() + "/inside/x"), "through abs_in");
    }
  }
  EXPECT_EQ(snapshot(m_outside), outside_before);
}

// A name that is not UTF-8 is refused, or used as given: never silently
// turned into another name. Every op; libbaton says why, in one line.
TEST_F(Confinement, NonUtf8NameIsRefusedOrKeptExact) {
  Client client = connect(m_daemon->socket());
  for (const std::string name :
       {"bad\xff\xfename", "a/caf\xe9", "\xed\xa0\x80"}) {
    for (Op op : {Op::publish, Op::open, Op::wait, Op::enqueue, Op::claim}) {
      Outcome outcome = attempt(client, op, name, "non-utf8");
      if (outcome.ec) {
        EXPECT_EQ(outcome.ec, make_error_code(errc::invalid_path))
            << op_name(op) << ": " << outcome.ec.message();
        EXPECT_NE(outcome.message.find("UTF-8"), std::string::npos)
            << op_name(op) << ": " << outcome.message;
        EXPECT_EQ(outcome.message.find('\n'), std::string::npos);
      } else if (op == Op::publish) {
        EXPECT_EQ(read_file(root() + "/" + name), "non-utf8")
            << "published under another name: root has "
            << join(list_dir(root()));
      }
    }
  }
  // The message belongs to the call that failed: the next one clears it.
  client.ping();
  EXPECT_EQ(client.last_error_message(), "");
}

}  // namespace
}  // namespace baton::test
