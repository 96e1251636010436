#include "baton/lock.hpp"

#include "client/connection.hpp"
#include "protocol/lock_name.hpp"

namespace baton {

Lock::Lock() noexcept = default;

Lock::Lock(std::shared_ptr<detail::Connection> connection,
           std::shared_ptr<detail::LockState> state) noexcept
    : m_connection(std::move(connection)), m_state(std::move(state)) {}

Lock::~Lock() { release(); }

Lock::Lock(Lock&& other) noexcept = default;

Lock& Lock::operator=(Lock&& other) noexcept {
  if (this != &other) {
    release();
    m_connection = std::move(other.m_connection);
    m_state = std::move(other.m_state);
  }
  return *this;
}

bool Lock::owns_lock() const noexcept { return m_state && !m_state->released; }

const std::string& Lock::name() const noexcept {
  static const std::string k_empty;
  return m_state ? m_state->name : k_empty;
}

LockMode Lock::mode() const noexcept {
  return m_state ? m_state->mode : LockMode::exclusive;
}

std::uint64_t Lock::token() const noexcept { return m_state ? m_state->token : 0; }

std::chrono::microseconds Lock::waited() const noexcept {
  return m_state ? m_state->waited : std::chrono::microseconds(0);
}

bool Lock::lost() {
  if (!m_state) return false;
  if (!m_state->lost && !m_state->released && m_connection)
    m_connection->process_events();
  return static_cast<bool>(m_state->lost);
}

std::string check_lock_name(std::string_view name) { return protocol::check_lock_name(name); }

const std::string& Lock::lost_message() const noexcept {
  static const std::string k_empty;
  return m_state ? m_state->lost_message : k_empty;
}

std::error_code Lock::lost_reason() const noexcept {
  return m_state ? m_state->lost : std::error_code();
}

void Lock::on_lost(std::function<void(std::error_code)> callback) {
  if (!m_state) return;
  if (m_state->lost) {
    callback(m_state->lost);
    return;
  }
  m_state->on_lost = std::move(callback);
}

void Lock::release() noexcept {
  if (!m_state || m_state->released) return;
  m_state->released = true;
  m_state->on_lost = nullptr;
  if (m_connection) {
    m_connection->untrack(m_state->name);
    if (!m_state->lost || m_state->revoking) {
      std::error_code ignored;  // a dead connection released it already
      try {
        m_connection->send_only(protocol::UnlockRequest{m_state->name}, ignored);
      } catch (...) {
      }
    }
  }
  m_connection.reset();
}

}  // namespace baton
