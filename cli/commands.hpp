// The subcommands of `baton` and the table main() dispatches through.
// Adding a command: declare its entry point here, add one row to the table
// in commands.cpp, and write it in its own <name>_command.cpp.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace baton::cli {

// Options given before the command name.
struct GlobalOptions {
  std::optional<std::string> socket_path;  // --socket PATH
};

// A command's entry point. ARGV[0] is "baton" (so getopt's own messages read
// "baton: ..."), then the command's arguments; ARGV[ARGC] is null. Returns
// the exit code.
using CommandMain = int (*)(int argc, char** argv, const GlobalOptions& global);

struct Command {
  std::string_view name;
  CommandMain main;
  std::string_view summary;  // one line for `baton --help`
};

std::span<const Command> commands() noexcept;
const Command* find_command(std::string_view name) noexcept;

// Locks.
int run_command(int argc, char** argv, const GlobalOptions& global);
// Handoff of files between jobs, and spool queues.
int publish_command(int argc, char** argv, const GlobalOptions& global);
int cat_command(int argc, char** argv, const GlobalOptions& global);
int wait_command(int argc, char** argv, const GlobalOptions& global);
int enqueue_command(int argc, char** argv, const GlobalOptions& global);
int claim_command(int argc, char** argv, const GlobalOptions& global);
// The daemon.
int status_command(int argc, char** argv, const GlobalOptions& global);
int ping_command(int argc, char** argv, const GlobalOptions& global);

}  // namespace baton::cli
