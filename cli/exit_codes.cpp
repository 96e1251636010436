#include "cli/exit_codes.hpp"

#include <cerrno>

#include "baton/error.hpp"

namespace baton::cli {

int exit_code_for(const std::error_code& ec) noexcept {
  if (!ec) return k_exit_ok;
  if (ec.category() == error_category()) {
    switch (static_cast<errc>(ec.value())) {
      case errc::busy:
      case errc::timed_out:
      case errc::shutting_down:
        return k_exit_busy;
      case errc::daemon_unreachable:
      case errc::connection_lost:
      case errc::limit_exceeded:
        return k_exit_unavailable;
      case errc::invalid_name:
      case errc::invalid_argument:
      case errc::invalid_path:
      case errc::path_outside_root:
        return k_exit_usage;
      case errc::permission_denied:
        return k_exit_permission;
      case errc::not_found:
        return k_exit_no_input;
      case errc::already_exists:
        return k_exit_already_exists;
      case errc::stale_token:
        return k_exit_stale_token;
      case errc::lock_lost:
        return k_exit_lock_lost;
      default:
        // protocol_error, version_mismatch, internal_error, io_error, and
        // the ones a CLI that takes one lock per session never provokes.
        return k_exit_internal;
    }
  }
  if (ec.category() == std::system_category() ||
      ec.category() == std::generic_category()) {
    if (ec.value() == EACCES || ec.value() == EPERM) return k_exit_permission;
  }
  return k_exit_internal;
}

}  // namespace baton::cli
