// `baton run --publish LOCAL=DEST`: once CMD exited 0, its output files
// become the new versions of their DESTs under the lock's fencing token,
// before the lock is released.
#pragma once

#include <cstddef>
#include <span>

#include "baton/client.hpp"
#include "cli/options.hpp"

namespace baton::cli {

// At most this many --publish: the daemon keeps at most 16 publishes open
// per connection (docs/protocol.md), and all are staged before any commits.
inline constexpr std::size_t k_max_publishes = 16;

// Publishes each LOCAL of SPECS (relative to the working directory) to its
// DEST under LOCK's fencing token, with permissions MODE. All or nothing as
// far as files can be: every LOCAL is opened and copied into a staging file
// that the daemon accepted for its DEST before the first commit; commits go
// in SPECS' order and stop at the first that fails or once LOCK is lost.
// Blocks. Returns k_exit_ok, or prints one line and returns k_exit_no_input
// (a LOCAL missing or unreadable), k_exit_lock_lost (LOCK lost, or the
// daemon gone), k_exit_stale_token (a newer holder published a DEST), or
// the code for another error.
int publish_outputs(Client& client, Lock& lock,
                    std::span<const PublishSpec> specs, unsigned mode);

}  // namespace baton::cli
