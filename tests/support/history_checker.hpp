// Checks the history that history_worker processes append to a shared log:
// one line per event, written with a single O_APPEND write(2):
//
//   enter <worker> <token> <monotonic ns>
//   exit <worker> <token> <monotonic ns>
//
// Under an exclusive lock the lines must read enter/exit, enter/exit, ...
// with each exit matching the enter before it, tokens strictly increasing,
// and time never going back. Any overlap of two holders breaks one of these.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace baton::test {

struct HistoryExpectation {
  // Total acquisitions expected; nullopt: any number.
  std::optional<std::size_t> acquisitions;
  // Acquisitions expected of every worker that appears; nullopt: any.
  std::optional<std::size_t> per_worker;
  // Workers expected to appear; nullopt: any.
  std::optional<std::size_t> workers;
};

struct HistoryReport {
  std::string
      error;  // empty when the history is valid; else the first violation
  std::size_t acquisitions = 0;
  std::map<std::string, std::size_t> per_worker;  // acquisitions by worker id
  // Holds whose worker differs from the previous hold's: how interleaved the
  // workers really were (0 when they ran one after the other).
  std::size_t switches = 0;
  std::uint64_t first_token = 0;
  std::uint64_t last_token = 0;
  bool ok() const noexcept { return error.empty(); }
};

// Parses and checks LOG. The error names the line (1-based) and what is wrong.
HistoryReport check_history(std::string_view log,
                            const HistoryExpectation& expectation = {});

}  // namespace baton::test
