// What batond reports about itself and the locks it knows of.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "baton/lock.hpp"

namespace baton {

// What a client says about itself (the "client" field of its first request,
// docs/protocol.md). Untrusted: the daemon bounds and sanitises it, and shows
// it marked as reported. A client in another PID namespace (another
// container) is pid 0 to the daemon's SO_PEERCRED; this is how it is named.
struct ClientIdentity {
  int pid = 0;          // its pid in its own PID namespace; 0: not said
  std::string host;     // its host name (the pod name in Kubernetes)
  std::string program;  // its program name
  bool empty() const { return pid == 0 && host.empty() && program.empty(); }
};

// Who holds or waits for a lock.
struct Holder {
  std::string pod;   // pod name of the holder's daemon
  std::string node;  // node name of the holder's daemon
  int pid = 0;       // the client process (SO_PEERCRED), 0 if unknown
  LockMode mode = LockMode::exclusive;
  std::uint64_t token = 0;
  std::chrono::system_clock::time_point since;
  bool local = true;  // a client of the daemon that answered
  ClientIdentity reported{};  // what the client said about itself
};

struct LockStatus {
  std::string name;
  std::vector<Holder> holders;  // local holders, then those of other pods
  std::vector<Holder> waiters;  // local waiters, in queue order
};

// The pid to show for HOLDER, and whether it is only the one it reported:
// SO_PEERCRED's pid, unless that is 0 or differs from the reported one
// (a client in another PID namespace).
inline int shown_pid(const Holder& holder, bool& reported) {
  reported = holder.reported.pid > 0 && holder.pid != holder.reported.pid;
  return reported ? holder.reported.pid : holder.pid;
}

struct ServerInfo {
  std::string server;  // e.g. "batond 0.1.0"
  int protocol = 0;
  std::string pod;
  std::string node;
  std::string root;
};

struct Status {
  ServerInfo server;
  std::vector<LockStatus> locks;
  // What the daemon could not read within its status budget (a hung mount),
  // one line each: the locks above are then incomplete. Empty normally.
  std::vector<std::string> unknown;
  std::string json;  // the daemon's reply as it came, for `baton status --json`
};

}  // namespace baton
