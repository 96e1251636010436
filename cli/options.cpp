#include "cli/options.hpp"

#include <cstdint>

#include "cli/diagnostics.hpp"

namespace baton::cli {
namespace {

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

std::string refuse(std::string_view what, std::string_view text,
                   std::string_view why = {}) {
  std::string error(what);
  error += ": '";
  error += printable(text);  // one line, whatever the user typed
  error += '\'';
  if (!why.empty()) {
    error += " (";
    error += why;
    error += ')';
  }
  return error;
}

}  // namespace

Parsed<std::chrono::milliseconds> parse_seconds(std::string_view text,
                                                std::string_view what) {
  Parsed<std::chrono::milliseconds> result;
  std::size_t dot = text.find('.');
  std::string_view whole = text.substr(0, dot);
  std::string_view fraction =
      dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  bool digits_only = true;
  for (char c : whole) digits_only = digits_only && is_digit(c);
  for (char c : fraction) digits_only = digits_only && is_digit(c);
  if (!digits_only || (whole.empty() && fraction.empty())) {
    bool negative = !text.empty() && text.front() == '-';
    result.error = refuse(what, text,
                          negative ? "must not be negative"
                                   : "expected seconds, such as 10 or 0.5");
    return result;
  }
  // Leading zeros cannot overflow anything; count only significant digits.
  while (whole.size() > 1 && whole.front() == '0') whole.remove_prefix(1);
  std::int64_t seconds = 0;
  for (char c : whole) {
    seconds = seconds * 10 + (c - '0');
    if (seconds > k_max_seconds) {
      result.error = refuse(what, text, "too large");
      return result;
    }
  }
  std::int64_t millis = 0;
  bool remainder = false;
  for (std::size_t i = 0; i < fraction.size(); ++i) {
    if (i < 3)
      millis = millis * 10 + (fraction[i] - '0');
    else
      remainder = remainder || fraction[i] != '0';
  }
  for (std::size_t i = fraction.size(); i < 3; ++i) millis *= 10;
  if (remainder) ++millis;
  std::int64_t total = seconds * 1000 + millis;
  if (total > k_max_seconds * 1000) {
    result.error = refuse(what, text, "too large");
    return result;
  }
  result.value = std::chrono::milliseconds(total);
  return result;
}

Parsed<int> parse_exit_code(std::string_view text, std::string_view what) {
  Parsed<int> result;
  int value = 0;
  bool valid = !text.empty() && text.size() <= 3;
  for (char c : text) {
    if (!is_digit(c)) {
      valid = false;
      break;
    }
    value = value * 10 + (c - '0');
  }
  if (!valid || value > 255) {
    result.error = refuse(what, text, "expected 0 to 255");
    return result;
  }
  result.value = value;
  return result;
}

Parsed<std::uint64_t> parse_counter(std::string_view text,
                                    std::string_view what) {
  Parsed<std::uint64_t> result;
  if (text.empty()) {
    result.error = refuse(what, text, "expected a number, such as 3");
    return result;
  }
  std::uint64_t value = 0;
  for (char c : text) {
    if (!is_digit(c)) {
      bool negative = text.front() == '-';
      result.error = refuse(
          what, text,
          negative ? "must not be negative" : "expected a number, such as 3");
      return result;
    }
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (k_max_counter - digit) / 10) {  // before it can overflow
      result.error = refuse(what, text, "too large");
      return result;
    }
    value = value * 10 + digit;
  }
  result.value = value;
  return result;
}

Parsed<unsigned> parse_mode(std::string_view text, std::string_view what) {
  Parsed<unsigned> result;
  unsigned value = 0;
  bool valid = !text.empty();
  for (char c : text) {
    if (c < '0' || c > '7') {
      valid = false;
      break;
    }
    // Past 07777 it is refused anyway: stop counting before it can overflow.
    if (value <= 07777) value = value * 8 + static_cast<unsigned>(c - '0');
  }
  if (!valid) {
    result.error =
        refuse(what, text, "expected octal permissions, such as 0644");
    return result;
  }
  if (value > 0777) {
    result.error = refuse(what, text,
                          "permission bits only, 0 to 0777: no set-user-ID, "
                          "set-group-ID or sticky bit");
    return result;
  }
  result.value = value;
  return result;
}

Parsed<PublishSpec> parse_publish_spec(std::string_view text,
                                       std::string_view what) {
  Parsed<PublishSpec> result;
  const std::size_t equals = text.find('=');
  if (equals == std::string_view::npos || equals == 0 ||
      equals + 1 == text.size()) {
    result.error = refuse(
        what, text, "expected LOCAL=DEST, such as out.csv=reports/today.csv");
    return result;
  }
  result.value = PublishSpec{std::string(text.substr(0, equals)),
                             std::string(text.substr(equals + 1))};
  return result;
}

}  // namespace baton::cli
