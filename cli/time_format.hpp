// Times and durations as baton prints them to people.
#pragma once

#include <chrono>
#include <string>

namespace baton::cli {

// WHEN in local time: "12:03:04" when it is on NOW's date, else
// "2025-11-22 12:03:04". Empty for the epoch (a time nobody recorded).
std::string format_since(std::chrono::system_clock::time_point when,
                         std::chrono::system_clock::time_point now);

// Whole and fractional seconds without trailing zeros: "5", "0.5", "1.25".
std::string format_seconds(std::chrono::milliseconds duration);

}  // namespace baton::cli
