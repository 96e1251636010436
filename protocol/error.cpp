// The "baton" error category: one table gives every errc its wire name, its
// message and its kind, so the three can never drift apart.
#include "baton/error.hpp"

#include <array>
#include <cerrno>
#include <string>

namespace baton {
namespace {

struct ErrorInfo {
  errc value;
  std::string_view name;
  const char* message;
  error_kind kind;
};

constexpr std::array k_errors{
    ErrorInfo{errc::busy, "busy", "lock is busy", error_kind::transient},
    ErrorInfo{errc::timed_out, "timed_out", "timed out waiting",
              error_kind::transient},
    ErrorInfo{errc::lock_lost, "lock_lost", "lock was lost",
              error_kind::transient},
    ErrorInfo{errc::daemon_unreachable, "daemon_unreachable",
              "baton daemon is unreachable", error_kind::transient},
    ErrorInfo{errc::connection_lost, "connection_lost",
              "connection to the baton daemon was lost",
              error_kind::transient},
    ErrorInfo{errc::protocol_error, "protocol_error", "protocol error",
              error_kind::permanent},
    ErrorInfo{errc::version_mismatch, "version_mismatch",
              "daemon speaks another protocol version", error_kind::permanent},
    ErrorInfo{errc::limit_exceeded, "limit_exceeded",
              "a daemon limit was exceeded", error_kind::transient},
    ErrorInfo{errc::invalid_name, "invalid_name", "invalid lock name",
              error_kind::permanent},
    ErrorInfo{errc::invalid_argument, "invalid_argument", "invalid argument",
              error_kind::permanent},
    ErrorInfo{errc::not_held, "not_held", "lock is not held by this client",
              error_kind::permanent},
    ErrorInfo{errc::already_held, "already_held",
              "lock is already held or requested by this client",
              error_kind::permanent},
    ErrorInfo{errc::permission_denied, "permission_denied",
              "permission denied by the baton daemon", error_kind::permission},
    ErrorInfo{errc::shutting_down, "shutting_down",
              "baton daemon is shutting down", error_kind::transient},
    ErrorInfo{errc::io_error, "io_error", "I/O error in the baton daemon",
              error_kind::transient},
    ErrorInfo{errc::internal_error, "internal_error", "internal error",
              error_kind::permanent},
    ErrorInfo{errc::path_outside_root, "path_outside_root",
              "path resolves outside the root", error_kind::permanent},
    ErrorInfo{errc::invalid_path, "invalid_path", "invalid path",
              error_kind::permanent},
    ErrorInfo{errc::stale_token, "stale_token",
              "fencing token is older than one already used",
              error_kind::permanent},
    ErrorInfo{errc::not_found, "not_found", "no such file or item",
              error_kind::permanent},
    ErrorInfo{errc::already_exists, "already_exists", "file already exists",
              error_kind::permanent},
    ErrorInfo{errc::cancelled, "cancelled", "lock request was withdrawn by an unlock",
              error_kind::permanent},
};

const ErrorInfo* find(int value) noexcept {
  for (const auto& info : k_errors)
    if (static_cast<int>(info.value) == value) return &info;
  return nullptr;
}

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "baton"; }
  std::string message(int value) const override {
    const ErrorInfo* info = find(value);
    return info ? info->message : "unknown baton error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

error_kind kind_of(const std::error_code& ec) noexcept {
  if (ec.category() == error_category()) {
    const ErrorInfo* info = find(ec.value());
    return info ? info->kind : error_kind::permanent;
  }
  if (ec.category() == std::generic_category() ||
      ec.category() == std::system_category()) {
    switch (ec.value()) {
      case EINTR:
      case EAGAIN:
      case ETIMEDOUT:
      case ECONNREFUSED:
      case ENOENT:
      case EIO:
        return error_kind::transient;
      case EACCES:
      case EPERM:
        return error_kind::permission;
      default:
        break;
    }
  }
  return error_kind::permanent;
}

std::string_view error_name(errc e) noexcept {
  const ErrorInfo* info = find(static_cast<int>(e));
  return info ? info->name : std::string_view("internal_error");
}

bool errc_from_name(std::string_view name, errc& out) noexcept {
  for (const auto& info : k_errors) {
    if (info.name == name) {
      out = info.value;
      return true;
    }
  }
  return false;
}

}  // namespace baton
