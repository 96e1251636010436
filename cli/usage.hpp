// Help, version and usage errors, laid out as util-linux's HOWTO-HACKING
// asks: "Usage:", synopsis lines, a blank line, one line saying what the
// command does, "Options:" in aligned columns, then -h and -V.
#pragma once

#include <string_view>

namespace baton::cli {

// The -h/--help and -V/--version lines every usage text ends its options
// with, aligned at column 24 like the other options.
inline constexpr std::string_view k_usage_help_version =
    " -h, --help             display this help\n"
    " -V, --version          display version\n";

// Prints "baton: <message>" and "Try 'baton[ COMMAND] --help' for more
// information." on stderr. COMMAND is empty for the top level. Returns
// k_exit_usage.
[[gnu::format(printf, 2, 3)]] int usage_error(std::string_view command,
                                              const char* format, ...);

// Just the "Try ..." line, after getopt printed what was wrong.
int try_help(std::string_view command);

// Writes TEXT (a whole usage text) to stdout. Returns k_exit_ok.
int print_help(std::string_view text);

// "baton 0.1.0" on stdout. Returns k_exit_ok.
int print_version();

// `baton --help`, with the commands listed from the dispatch table.
int print_main_help();

}  // namespace baton::cli
