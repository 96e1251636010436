// Errors reported by libbaton and by batond, as std::error_code values in
// the "baton" category. Every value has a message and a kind that tells the
// caller what to do about it (retry, give up, or fix permissions).
#pragma once

#include <string_view>
#include <system_error>

namespace baton {

// Stable numbers: they travel inside programs and logs, never reorder.
enum class errc {
  busy = 1,            // the lock is held and the caller asked not to wait
  timed_out,           // a wait (lock, claim, version) ran out
  lock_lost,           // a held lock was lost (lock file failed, daemon gone)
  daemon_unreachable,  // no daemon answered within the connect timeout
  connection_lost,     // the daemon closed the connection
  protocol_error,      // a malformed message, in either direction
  version_mismatch,    // the daemon speaks a protocol version we do not
  limit_exceeded,      // a daemon limit (connections, locks, message size)
  invalid_name,        // a lock name outside the grammar
  invalid_argument,    // any other bad request field
  not_held,            // unlock of a lock this session does not hold
  already_held,        // this session holds (or waits for) that lock already
  permission_denied,   // the peer is not on the daemon's allow-list
  shutting_down,       // the daemon is stopping and grants nothing new
  io_error,            // a filesystem call failed inside the daemon
  internal_error,      // a bug: the daemon or client broke an invariant
  path_outside_root,   // a path that would resolve outside the root
  invalid_path,        // a path that is empty, too long or has bad characters
  stale_token,         // a fencing token older than one already used
  not_found,           // the named file or queue item does not exist
  already_exists,      // create-only publish onto an existing file
  cancelled,           // a queued lock request the client withdrew (unlock)
};

// What the caller should do about an error.
enum class error_kind {
  transient,   // may succeed if retried later (busy, timeouts, lost daemon)
  permanent,   // retrying the same request will fail the same way
  permission,  // fix credentials or the allow-list, then retry
};

const std::error_category& error_category() noexcept;

std::error_code make_error_code(errc e) noexcept;

// The kind of any error code; codes from other categories are permanent,
// except a few errno values that are plainly transient (EINTR, EAGAIN, ...).
error_kind kind_of(const std::error_code& ec) noexcept;

// The protocol's name for an error ("busy", "timed_out", ...) and back.
// errc_from_name returns false for unknown names.
std::string_view error_name(errc e) noexcept;
bool errc_from_name(std::string_view name, errc& out) noexcept;

}  // namespace baton

template <>
struct std::is_error_code_enum<baton::errc> : std::true_type {};
