#include "cli/command_line.hpp"

#include <getopt.h>

#include "baton/client.hpp"

namespace baton::cli {

void reset_getopt() noexcept {
  optind = 0;
  opterr = 1;
}

std::string socket_path(const GlobalOptions& global,
                        const std::optional<std::string>& local) {
  if (local) return *local;
  if (global.socket_path) return *global.socket_path;
  return default_socket_path();
}

}  // namespace baton::cli
