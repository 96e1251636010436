// The library's version and the wire protocol version it speaks.
#pragma once

namespace baton {

inline constexpr const char* k_version = "0.1.0";
inline constexpr int k_protocol_version = 1;

}  // namespace baton
