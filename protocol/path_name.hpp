// The grammar of paths clients name under the root. The daemon still
// resolves every path with openat2(RESOLVE_BENEATH): this check only gives
// early, clear errors for paths that could never be right.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace baton::protocol {

inline constexpr std::size_t k_max_path = 1024;
inline constexpr std::size_t k_max_component = 255;

// Empty when PATH is acceptable, else one line saying why not. Refused:
// empty, absolute, "." or ".." or empty components, control characters,
// bytes that are not UTF-8 (JSON carries only UTF-8: such a name would
// reach the daemon as another name), over-long paths or components, and
// anything under ".baton" or named ".baton*" (the daemon's own files).
// libbaton checks before sending, the daemon again on receipt.
std::string check_relative_path(std::string_view path);

// The offset of the first byte of TEXT that does not belong to well-formed
// UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above
// U+10FFFF), or npos when all of it is.
std::size_t find_invalid_utf8(std::string_view text) noexcept;

}  // namespace baton::protocol
