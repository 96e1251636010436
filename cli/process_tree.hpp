// Finding and signalling every descendant of a process, including those
// that left its process group or session (setsid, double fork).
#pragma once

#include <sys/types.h>

#include <vector>

namespace baton::cli {

// The live descendants of ROOT (not ROOT itself), parents before their
// children, from one scan of /proc. Processes forked during the scan may be
// missing: callers that must catch them all scan again once the ones found
// have died (a subreaper sees them come back as its own children). Empty if
// /proc cannot be read.
std::vector<pid_t> descendants_of(pid_t root);

// Sends SIGNAL to process group PGID (unless <= 0) and then to every
// descendant of ROOT, parents first; after SIGTERM, also SIGCONT, so that a
// stopped process gets to act on it. Errors (ESRCH: already gone) are
// ignored.
void signal_tree(pid_t root, pid_t pgid, int signal);

}  // namespace baton::cli
