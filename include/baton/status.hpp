// What batond reports about itself and the locks it knows of.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "baton/lock.hpp"

namespace baton {

// Who holds or waits for a lock.
struct Holder {
  std::string pod;   // pod name of the holder's daemon
  std::string node;  // node name of the holder's daemon
  int pid = 0;       // the client process (SO_PEERCRED), 0 if unknown
  LockMode mode = LockMode::exclusive;
  std::uint64_t token = 0;
  std::chrono::system_clock::time_point since;
  bool local = true;  // a client of the daemon that answered
};

struct LockStatus {
  std::string name;
  std::vector<Holder> holders;  // local holders, or the record of another pod
  std::vector<Holder> waiters;  // local waiters, in queue order
};

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
