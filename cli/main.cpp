// baton: the command-line client of batond. Parses the options that come
// before the command name and hands over to the command (commands.cpp).
#include <fcntl.h>
#include <getopt.h>

#include <unistd.h>

#include <cerrno>
#include <vector>

#include "cli/command_line.hpp"
#include "cli/commands.hpp"
#include "cli/diagnostics.hpp"
#include "cli/exit_codes.hpp"
#include "cli/usage.hpp"

namespace {

using namespace baton::cli;

// With stdout or stderr closed, the daemon's socket would get descriptor 1
// or 2, and baton's messages would go to the daemon. Fill the gaps with
// /dev/null (lowest first: open(2) takes the lowest free descriptor).
void ensure_standard_descriptors() noexcept {
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) == -1 && errno == EBADF &&
        open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd)
      _exit(k_exit_internal);
  }
}

int dispatch(int argc, char** argv) {
  static const option k_options[] = {
      {"socket", required_argument, nullptr, k_option_socket},
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},
      {nullptr, 0, nullptr, 0},
  };
  // getopt names the program after argv[0]; make it "baton" whatever path
  // we were started by.
  std::vector<char*> args(argv, argv + argc);
  args.push_back(nullptr);
  args[0] = const_cast<char*>(k_program);

  GlobalOptions global;
  reset_getopt();
  int c;
  while ((c = getopt_long(argc, args.data(), "+hV", k_options, nullptr)) !=
         -1) {
    switch (c) {
      case k_option_socket:
        global.socket_path = optarg;
        break;
      case 'h':
        return print_main_help();
      case 'V':
        return print_version();
      default:
        return try_help({});
    }
  }
  if (optind >= argc) return usage_error({}, "no command given");

  const Command* command = find_command(args[optind]);
  if (!command) return usage_error({}, "unknown command '%s'", args[optind]);

  // The command parses its own arguments, with argv[0] "baton" again.
  std::vector<char*> command_args;
  command_args.push_back(const_cast<char*>(k_program));
  command_args.insert(command_args.end(), args.begin() + optind + 1,
                      args.begin() + argc);
  command_args.push_back(nullptr);
  return command->main(static_cast<int>(command_args.size() - 1),
                       command_args.data(), global);
}

}  // namespace

int main(int argc, char** argv) {
  ensure_standard_descriptors();
  if (argc < 1) return baton::cli::usage_error({}, "no command given");
  return close_stdout(dispatch(argc, argv));
}
