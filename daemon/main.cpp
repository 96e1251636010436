// batond: parse options, hand over to the daemon.
#include <cstdio>
#include <string>

#include "daemon/logging.hpp"
#include "daemon/options.hpp"
#include "daemon/server.hpp"

int main(int argc, char** argv) {
  baton::daemon::DaemonOptions options;
  std::string error;
  switch (baton::daemon::parse_options(argc, argv, options, error)) {
    case baton::daemon::ParseOutcome::exit_ok:
      return 0;
    case baton::daemon::ParseOutcome::usage_error:
      std::fprintf(stderr, "batond: %s\nTry 'batond --help' for more information.\n",
                   error.c_str());
      return 64;
    case baton::daemon::ParseOutcome::run:
      break;
  }
  baton::daemon::setup_logging(options.log_format, options.log_level);
  return baton::daemon::run_daemon(options);
}
