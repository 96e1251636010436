// Atomic handoff of files between jobs: publish a new version of a path
// under the root so that no reader ever sees half of it, read one whole
// version, and wait for a newer one.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

namespace baton {

namespace detail {
class Connection;
}

struct PublishOptions {
  // Create-only: fail with errc::already_exists if the path exists.
  bool no_replace = false;
  // Fencing: refused with errc::stale_token if a newer token was already
  // used to publish this path.
  std::optional<std::uint64_t> token;
  unsigned mode = 0644;  // permissions of the published file
};

// A new version being written. Write the content to fd(), then commit().
// Destroying it without commit() aborts: nothing becomes visible, and the
// staging file is removed. Obtained from Client::publish().
class Publisher {
 public:
  Publisher() noexcept;
  ~Publisher();
  Publisher(Publisher&&) noexcept;
  Publisher& operator=(Publisher&&) noexcept;

  // Where to write the content: a write-only descriptor owned by this
  // object (valid until commit or abort). -1 when empty.
  int fd() const noexcept;
  const std::string& path() const noexcept;

  // Makes the content durable and visible atomically; returns the path's
  // new version. Blocks (two fsyncs). Errors: stale_token, already_exists,
  // io_error, connection_lost.
  std::uint64_t commit();
  std::uint64_t commit(std::error_code& ec);

  // Discards the new version. Never blocks on the daemon.
  void abort() noexcept;

 private:
  friend class Client;
  Publisher(std::shared_ptr<detail::Connection> connection, std::uint64_t stage, int fd,
            std::string path, std::optional<std::uint64_t> token) noexcept;
  std::shared_ptr<detail::Connection> m_connection;
  std::uint64_t m_stage = 0;
  std::optional<std::uint64_t> m_token;
  int m_fd = -1;
  std::string m_path;
};

// One whole version of a published file, open for reading.
struct OpenedFile {
  OpenedFile() noexcept = default;
  ~OpenedFile();
  OpenedFile(OpenedFile&&) noexcept;
  OpenedFile& operator=(OpenedFile&&) noexcept;
  int fd = -1;                // read-only, owned; later publishes do not change it
  std::uint64_t version = 0;  // 0: never published through baton
  std::uint64_t size = 0;     // bytes, when it was opened
};

struct WaitOptions {
  // Wait for a version greater than this; nullopt: for the path to exist.
  std::optional<std::uint64_t> newer_than;
  // nullopt: wait until it happens.
  std::optional<std::chrono::milliseconds> timeout;
};

}  // namespace baton
