#include "tests/support/history_checker.hpp"

#include <charconv>
#include <vector>

namespace baton::test {
namespace {

struct Event {
  bool enter = false;
  std::string worker;
  std::uint64_t token = 0;
  std::uint64_t ns = 0;
};

std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    std::size_t start = i;
    while (i < line.size() && line[i] != ' ') ++i;
    if (i > start) words.push_back(line.substr(start, i - start));
  }
  return words;
}

bool parse_u64(std::string_view text, std::uint64_t& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

// Parses one line; returns why it is malformed, or empty.
std::string parse_event(std::string_view line, Event& event) {
  auto words = split_words(line);
  if (words.size() != 4)
    return "expected 4 fields, got " + std::to_string(words.size());
  if (words[0] == "enter")
    event.enter = true;
  else if (words[0] == "exit")
    event.enter = false;
  else
    return "unknown event '" + std::string(words[0]) + "'";
  event.worker = std::string(words[1]);
  if (!parse_u64(words[2], event.token))
    return "bad token '" + std::string(words[2]) + "'";
  if (!parse_u64(words[3], event.ns))
    return "bad time '" + std::string(words[3]) + "'";
  return {};
}

std::string describe(const Event& event) {
  return std::string(event.enter ? "enter" : "exit") + " of worker " +
         event.worker + " (token " + std::to_string(event.token) + ")";
}

}  // namespace

HistoryReport check_history(std::string_view log,
                            const HistoryExpectation& expectation) {
  HistoryReport report;
  std::optional<Event> holder;  // the enter not yet matched by an exit
  std::size_t holder_line = 0;
  std::optional<std::uint64_t> previous_token;
  std::string previous_worker;
  std::uint64_t previous_ns = 0;
  std::size_t line_number = 0;
  auto fail = [&](std::size_t line, const std::string& what) {
    report.error = "line " + std::to_string(line) + ": " + what;
    return report;
  };

  std::size_t position = 0;
  while (position < log.size()) {
    std::size_t end = log.find('\n', position);
    if (end == std::string_view::npos)
      return fail(line_number + 1, "truncated line (no newline): a torn write");
    std::string_view line = log.substr(position, end - position);
    position = end + 1;
    ++line_number;

    Event event;
    if (std::string why = parse_event(line, event); !why.empty())
      return fail(line_number,
                  "malformed line '" + std::string(line) + "': " + why);
    if (event.ns < previous_ns)
      return fail(line_number, describe(event) + " is stamped " +
                                   std::to_string(event.ns) +
                                   " ns, before the previous line (" +
                                   std::to_string(previous_ns) +
                                   " ns): two holders overlapped");
    previous_ns = event.ns;

    if (event.enter) {
      if (holder)
        return fail(
            line_number,
            describe(event) + " while worker " + holder->worker + " (token " +
                std::to_string(holder->token) + ") held the lock since line " +
                std::to_string(holder_line) + ": two exclusive holders");
      if (previous_token && event.token <= *previous_token)
        return fail(line_number, describe(event) +
                                     ": token not greater than the previous " +
                                     std::to_string(*previous_token));
      if (!previous_token) report.first_token = event.token;
      if (previous_token && event.worker != previous_worker) ++report.switches;
      previous_worker = event.worker;
      previous_token = event.token;
      report.last_token = event.token;
      holder = event;
      holder_line = line_number;
      ++report.acquisitions;
      ++report.per_worker[event.worker];
    } else {
      if (!holder)
        return fail(line_number,
                    describe(event) + " while nobody held the lock");
      if (event.worker != holder->worker || event.token != holder->token)
        return fail(line_number, describe(event) + " does not match the " +
                                     describe(*holder) + " on line " +
                                     std::to_string(holder_line));
      holder.reset();
    }
  }
  if (holder)
    return fail(holder_line,
                describe(*holder) + " has no exit: the history ends inside it");

  if (expectation.acquisitions &&
      report.acquisitions != *expectation.acquisitions)
    return fail(line_number, "history has " +
                                 std::to_string(report.acquisitions) +
                                 " acquisitions, expected " +
                                 std::to_string(*expectation.acquisitions));
  if (expectation.workers && report.per_worker.size() != *expectation.workers)
    return fail(line_number, "history has " +
                                 std::to_string(report.per_worker.size()) +
                                 " workers, expected " +
                                 std::to_string(*expectation.workers));
  if (expectation.per_worker)
    for (const auto& [worker, count] : report.per_worker)
      if (count != *expectation.per_worker)
        return fail(line_number, "worker " + worker + " acquired " +
                                     std::to_string(count) +
                                     " times, expected " +
                                     std::to_string(*expectation.per_worker));
  return report;
}

}  // namespace baton::test
