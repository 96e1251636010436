#include "cli/commands.hpp"

#include <array>

namespace baton::cli {
namespace {

// In the order `baton --help` lists them: locks, handoff, queues, the daemon.
constexpr std::array k_commands{
    Command{"run", run_command, "run a command while holding a lock"},
    Command{"publish", publish_command, "publish a file atomically"},
    Command{"cat", cat_command, "print one whole version of a published file"},
    Command{"wait", wait_command, "wait for a file or a newer version of it"},
    Command{"enqueue", enqueue_command, "add an item to a spool queue"},
    Command{"claim", claim_command, "take one item of a spool queue"},
    Command{"status", status_command, "show the locks held and waited for"},
    Command{"ping", ping_command, "check that the daemon answers"},
};

}  // namespace

std::span<const Command> commands() noexcept { return k_commands; }

const Command* find_command(std::string_view name) noexcept {
  for (const Command& command : k_commands)
    if (command.name == name) return &command;
  return nullptr;
}

}  // namespace baton::cli
