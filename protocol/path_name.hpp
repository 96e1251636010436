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
// over-long paths or components, and anything under ".baton" or named
// ".baton*" (the daemon's own files).
std::string check_relative_path(std::string_view path);

}  // namespace baton::protocol
