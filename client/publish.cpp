#include "baton/publish.hpp"

#include <unistd.h>

#include "client/connection.hpp"

namespace baton {

Publisher::Publisher() noexcept = default;

Publisher::Publisher(std::shared_ptr<detail::Connection> connection, std::uint64_t stage,
                     int fd, std::string path, std::optional<std::uint64_t> token) noexcept
    : m_connection(std::move(connection)),
      m_stage(stage),
      m_token(token),
      m_fd(fd),
      m_path(std::move(path)) {}

Publisher::~Publisher() { abort(); }

Publisher::Publisher(Publisher&& other) noexcept
    : m_connection(std::move(other.m_connection)),
      m_stage(std::exchange(other.m_stage, 0)),
      m_token(other.m_token),
      m_fd(std::exchange(other.m_fd, -1)),
      m_path(std::move(other.m_path)) {}

Publisher& Publisher::operator=(Publisher&& other) noexcept {
  if (this != &other) {
    abort();
    m_connection = std::move(other.m_connection);
    m_stage = std::exchange(other.m_stage, 0);
    m_token = other.m_token;
    m_fd = std::exchange(other.m_fd, -1);
    m_path = std::move(other.m_path);
  }
  return *this;
}

int Publisher::fd() const noexcept { return m_fd; }

const std::string& Publisher::path() const noexcept { return m_path; }

std::uint64_t Publisher::commit() {
  std::error_code ec;
  std::uint64_t version = commit(ec);
  if (ec) throw std::system_error(ec, "baton: publish " + m_path);
  return version;
}

std::uint64_t Publisher::commit(std::error_code& ec) {
  ec.clear();
  if (!m_connection || m_stage == 0) {
    ec = make_error_code(errc::invalid_argument);
    return 0;
  }
  // Our descriptor is not needed for the commit: the daemon syncs its own.
  if (m_fd >= 0) ::close(std::exchange(m_fd, -1));
  protocol::PublishCommitRequest request{std::exchange(m_stage, 0), m_token};
  auto connection = std::move(m_connection);
  connection->last_error_message().clear();
  auto reply = connection->call(request, std::nullopt, ec);
  if (!reply) return 0;
  return protocol::field(*reply, "version", std::uint64_t{0});
}

void Publisher::abort() noexcept {
  if (m_fd >= 0) ::close(std::exchange(m_fd, -1));
  if (m_connection && m_stage != 0) {
    std::error_code ignored;  // a closed connection aborts it anyway
    try {
      m_connection->send_only(protocol::PublishAbortRequest{m_stage}, ignored);
    } catch (...) {
    }
  }
  m_stage = 0;
  m_connection.reset();
}

OpenedFile::~OpenedFile() {
  if (fd >= 0) ::close(fd);
}

OpenedFile::OpenedFile(OpenedFile&& other) noexcept
    : fd(std::exchange(other.fd, -1)), version(other.version), size(other.size) {}

OpenedFile& OpenedFile::operator=(OpenedFile&& other) noexcept {
  if (this != &other) {
    if (fd >= 0) ::close(fd);
    fd = std::exchange(other.fd, -1);
    version = other.version;
    size = other.size;
  }
  return *this;
}

}  // namespace baton
