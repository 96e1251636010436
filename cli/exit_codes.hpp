// The exit status of `baton`, one distinct code per outcome a Job's
// podFailurePolicy.onExitCodes may want to act on. The numbers follow
// sysexits.h where one fits, and the shell's 126/127/128+N for CMD.
// docs/man/baton.1 (EXIT STATUS) documents the same table: keep them equal.
#pragma once

#include <system_error>

namespace baton::cli {

// Everything went well (or `baton run` passes CMD's own 0 through).
inline constexpr int k_exit_ok = 0;
// Bad command line: unknown option, bad value, missing --lock, no CMD, a lock
// name outside the grammar, a path or queue the daemon refused
// (invalid_path, path_outside_root), or a request the daemon called
// invalid_argument.
inline constexpr int k_exit_usage = 64;  // EX_USAGE
// Nothing to read: publish's or enqueue's SRC cannot be opened or read; a
// LOCAL of run --publish is missing or unreadable (nothing was published);
// the path given to cat does not exist (not_found).
inline constexpr int k_exit_no_input = 66;  // EX_NOINPUT
// No daemon answered on the socket within the connect timeout, the daemon
// refused the connection (limit reached), or it went away before the lock
// was granted (or while publish or enqueue committed: outcome unknown).
inline constexpr int k_exit_unavailable = 69;  // EX_UNAVAILABLE
// A bug or a broken peer: protocol error, version mismatch, internal error,
// an I/O error inside the daemon, or a failed system call in baton itself.
// Also: claim without CMD could not write the item to stdout (given back).
inline constexpr int k_exit_internal = 70;  // EX_SOFTWARE
// publish --no-replace: DEST exists already (already_exists); it is left as
// it was.
inline constexpr int k_exit_already_exists = 73;  // EX_CANTCREAT
// The lock was lost while CMD ran (the daemon reported it lost, or the daemon
// died): CMD was stopped with SIGTERM, then SIGKILL after --kill-after.
// Also: run --publish lost the lock before all was published; claim's
// daemon went away while CMD ran or before the ack (the item goes back), or
// reported the claim lost (claim_lost), or refused the ack of a lost claim.
inline constexpr int k_exit_lock_lost = 74;  // EX_IOERR
// The lock is busy (--no-wait) or the wait timed out (--timeout); -E N
// replaces this code for those two. Also: `baton wait` timed out, or the
// daemon is shutting down, or claim found no item within --timeout.
inline constexpr int k_exit_busy = 75;  // EX_TEMPFAIL
// publish --token N: a greater fencing token was already used to publish
// DEST (stale_token): a newer holder of the lock has written; DEST is left as
// it was. The same for run --publish, which publishes under the lock's
// token. Not the sysexits.h meaning of 76 (EX_PROTOCOL): none fits, and a
// writer that lost its lock must be told apart from every other failure.
inline constexpr int k_exit_stale_token = 76;
// The daemon refused this client (allow-list), or the socket's permissions
// kept this user out until the connect timeout.
inline constexpr int k_exit_permission = 77;  // EX_NOPERM
// CMD was found but could not be executed (EACCES, ENOEXEC, ...).
inline constexpr int k_exit_cannot_execute = 126;
// CMD was not found.
inline constexpr int k_exit_not_found = 127;
// CMD was killed by signal N: the status is k_exit_signal_base + N.
inline constexpr int k_exit_signal_base = 128;

// The exit code for an error from libbaton or a system call, outside the
// cases a command decides itself (lock lost while CMD ran, -E, CMD's exec).
// connection_lost maps to k_exit_unavailable: by the time it matters no lock
// was granted yet (or, for publish, the commit's outcome is unknown).
int exit_code_for(const std::error_code& ec) noexcept;

}  // namespace baton::cli
