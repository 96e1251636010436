#include "baton/queue.hpp"

#include <unistd.h>

#include "client/connection.hpp"

namespace baton {

PendingItem::PendingItem() noexcept = default;

PendingItem::PendingItem(std::shared_ptr<detail::Connection> connection, std::uint64_t stage,
                         int fd) noexcept
    : m_connection(std::move(connection)), m_stage(stage), m_fd(fd) {}

PendingItem::~PendingItem() { abort(); }

PendingItem::PendingItem(PendingItem&& other) noexcept
    : m_connection(std::move(other.m_connection)),
      m_stage(std::exchange(other.m_stage, 0)),
      m_fd(std::exchange(other.m_fd, -1)) {}

PendingItem& PendingItem::operator=(PendingItem&& other) noexcept {
  if (this != &other) {
    abort();
    m_connection = std::move(other.m_connection);
    m_stage = std::exchange(other.m_stage, 0);
    m_fd = std::exchange(other.m_fd, -1);
  }
  return *this;
}

int PendingItem::fd() const noexcept { return m_fd; }

std::string PendingItem::commit() {
  std::error_code ec;
  std::string id = commit(ec);
  if (ec) throw std::system_error(ec, "baton: enqueue");
  return id;
}

std::string PendingItem::commit(std::error_code& ec) {
  ec.clear();
  if (!m_connection || m_stage == 0) {
    ec = make_error_code(errc::invalid_argument);
    return {};
  }
  if (m_fd >= 0) ::close(std::exchange(m_fd, -1));
  auto connection = std::move(m_connection);
  connection->last_error_message().clear();
  auto reply = connection->call(protocol::EnqueueCommitRequest{std::exchange(m_stage, 0)},
                                std::nullopt, ec);
  if (!reply) return {};
  return protocol::field(*reply, "item", std::string());
}

void PendingItem::abort() noexcept {
  if (m_fd >= 0) ::close(std::exchange(m_fd, -1));
  if (m_connection && m_stage != 0) {
    std::error_code ignored;  // a closed connection discards it anyway
    try {
      m_connection->send_only(protocol::EnqueueAbortRequest{m_stage}, ignored);
    } catch (...) {
    }
  }
  m_stage = 0;
  m_connection.reset();
}

QueueItem::QueueItem() noexcept = default;

QueueItem::QueueItem(std::shared_ptr<detail::Connection> connection, std::uint64_t claim,
                     std::string id, int fd) noexcept
    : m_connection(std::move(connection)), m_claim(claim), m_id(std::move(id)), m_fd(fd) {
  try {
    m_state = std::make_shared<detail::ClaimState>();
    m_state->claim = claim;
    m_connection->track(m_state);
  } catch (...) {
    m_state.reset();  // out of memory: the item works, its loss goes unseen
  }
}

QueueItem::~QueueItem() { nack(); }

QueueItem::QueueItem(QueueItem&& other) noexcept
    : m_connection(std::move(other.m_connection)),
      m_state(std::move(other.m_state)),
      m_claim(std::exchange(other.m_claim, 0)),
      m_id(std::move(other.m_id)),
      m_fd(std::exchange(other.m_fd, -1)) {}

QueueItem& QueueItem::operator=(QueueItem&& other) noexcept {
  if (this != &other) {
    nack();
    m_connection = std::move(other.m_connection);
    m_state = std::move(other.m_state);
    m_claim = std::exchange(other.m_claim, 0);
    m_id = std::move(other.m_id);
    m_fd = std::exchange(other.m_fd, -1);
  }
  return *this;
}

int QueueItem::fd() const noexcept { return m_fd; }

void QueueItem::ack() {
  std::error_code ec;
  ack(ec);
  if (ec) throw std::system_error(ec, "baton: ack " + m_id);
}

void QueueItem::ack(std::error_code& ec) {
  ec.clear();
  if (!m_connection || m_claim == 0) {
    ec = make_error_code(errc::invalid_argument);
    return;
  }
  auto connection = m_connection;
  connection->last_error_message().clear();
  connection->call(protocol::AckRequest{m_claim}, std::nullopt, ec);
  reset();
}

void QueueItem::nack() noexcept {
  if (m_connection && m_claim != 0) {
    std::error_code ignored;  // a closed connection returns it anyway
    try {
      m_connection->send_only(protocol::NackRequest{m_claim}, ignored);
    } catch (...) {
    }
  }
  reset();
}

void QueueItem::reset() noexcept {
  if (m_fd >= 0) ::close(std::exchange(m_fd, -1));
  if (m_connection && m_claim != 0) m_connection->untrack(m_claim);
  m_claim = 0;
  m_connection.reset();
}

bool QueueItem::lost() const noexcept { return m_state && m_state->lost; }

std::error_code QueueItem::lost_reason() const noexcept {
  return m_state ? m_state->lost : std::error_code();
}

const std::string& QueueItem::lost_message() const noexcept {
  static const std::string k_empty;
  return m_state ? m_state->lost_message : k_empty;
}

}  // namespace baton
