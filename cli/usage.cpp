#include "cli/usage.hpp"

#include <cstdio>
#include <string>

#include "baton/version.hpp"
#include "cli/commands.hpp"
#include "cli/diagnostics.hpp"
#include "cli/exit_codes.hpp"

namespace baton::cli {

int usage_error(std::string_view command, const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::string message = vformat(format, args);
  va_end(args);
  print_error("%s", message.c_str());
  return try_help(command);
}

int try_help(std::string_view command) {
  std::string line = "Try '";
  line += k_program;
  if (!command.empty()) {
    line += ' ';
    line += command;
  }
  line += " --help' for more information.\n";
  write_all(2, line);
  return k_exit_usage;
}

int print_help(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  return k_exit_ok;
}

int print_version() {
  std::printf("%s %s\n", k_program, baton::k_version);
  return k_exit_ok;
}

int print_main_help() {
  std::string text =
      "Usage:\n"
      " baton [options] <command> [<argument>...]\n"
      "\n"
      "Coordinate jobs that share a volume through the batond sidecar.\n"
      "\n"
      "Commands:\n";
  for (const Command& command : commands()) {
    std::string row = " ";
    row += command.name;
    row.resize(24, ' ');
    row += command.summary;
    text += row + '\n';
  }
  text +=
      "\n"
      "Options:\n"
      "     --socket <path>    the daemon's socket (default: $BATON_SOCKET,\n"
      "                        else /run/baton/baton.sock)\n"
      "\n";
  text += k_usage_help_version;
  text +=
      "\n"
      "Run 'baton <command> --help' for the options of a command.\n"
      "For more details see baton(1).\n";
  return print_help(text);
}

}  // namespace baton::cli
