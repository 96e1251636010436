// Parsers for option values. Each refuses anything but the plain form it
// documents and says why in one line that names the bad value, the way
// util-linux's strtos32_or_err does: "invalid timeout: '1x'".
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace baton::cli {

// A parsed value, or the one-line reason TEXT was refused.
template <typename T>
struct Parsed {
  std::optional<T> value;
  std::string error;  // empty when value is set

  explicit operator bool() const noexcept { return value.has_value(); }
};

// The largest number of seconds any option accepts (about 31 years): far
// beyond any real wait, small enough that deadlines never overflow.
inline constexpr long long k_max_seconds = 1'000'000'000;

// Seconds as a decimal number with an optional fraction: "10", "0.5", "2.",
// ".25". No sign, exponent, spaces, "inf" or "nan". Rounded up to whole
// milliseconds, so a positive value never becomes 0 (which means "try once"
// for --timeout). WHAT names the value in the error: "invalid timeout".
Parsed<std::chrono::milliseconds> parse_seconds(std::string_view text,
                                                std::string_view what);

// An exit code: a decimal integer from 0 to 255.
Parsed<int> parse_exit_code(std::string_view text, std::string_view what);

// The largest version or fencing token the protocol carries (2^63 - 1).
inline constexpr std::uint64_t k_max_counter = (std::uint64_t{1} << 63) - 1;

// A version or a fencing token: a decimal integer from 0 to k_max_counter.
// Leading zeros are fine; no sign, spaces or hex.
Parsed<std::uint64_t> parse_counter(std::string_view text,
                                    std::string_view what);

// File permissions in octal, as chmod(1) takes them: "644", "0600", "0".
// Permission bits only (0 to 0777): a handoff file has no use for the
// set-user-ID, set-group-ID or sticky bit, and the daemon creates it as its
// own user.
Parsed<unsigned> parse_mode(std::string_view text, std::string_view what);

// `run --publish LOCAL=DEST`: a local file to publish to DEST, a path under
// the root.
struct PublishSpec {
  std::string local;
  std::string dest;
};

// "LOCAL=DEST", split at the first '=' (so DEST may hold one, LOCAL not).
// Both must be non-empty; DEST itself is judged by the daemon.
Parsed<PublishSpec> parse_publish_spec(std::string_view text,
                                       std::string_view what);

}  // namespace baton::cli
