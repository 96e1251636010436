#include "protocol/path_name.hpp"

namespace baton::protocol {

std::size_t find_invalid_utf8(std::string_view text) noexcept {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    // The lead byte fixes the length and the range of the second byte,
    // which is what rules out overlong forms, surrogates and > U+10FFFF.
    std::size_t length = 0;
    unsigned char low = 0x80, high = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) {
      length = 2;
    } else if (lead >= 0xe0 && lead <= 0xef) {
      length = 3;
      if (lead == 0xe0) low = 0xa0;
      if (lead == 0xed) high = 0x9f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      length = 4;
      if (lead == 0xf0) low = 0x90;
      if (lead == 0xf4) high = 0x8f;
    } else {
      return i;  // a continuation byte, 0xc0, 0xc1 or 0xf5 and above
    }
    if (text.size() - i < length) return i;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      const unsigned char min = k == 1 ? low : 0x80, max = k == 1 ? high : 0xbf;
      if (next < min || next > max) return i;
    }
    i += length;
  }
  return std::string_view::npos;
}

std::string check_relative_path(std::string_view path) {
  if (path.empty()) return "path is empty";
  if (path.size() > k_max_path)
    return "path is longer than " + std::to_string(k_max_path) + " bytes";
  if (path.front() == '/') return "path must be relative to the root, not absolute";
  for (char c : path) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return "path has a control character";
  }
  if (std::size_t bad = find_invalid_utf8(path); bad != std::string_view::npos)
    return "path is not valid UTF-8 (byte " + std::to_string(bad) + ")";
  std::size_t start = 0;
  bool first = true;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    if (part.empty()) return "path has an empty component";
    if (part == "." || part == "..") return "path has a '" + std::string(part) + "' component";
    if (part.size() > k_max_component)
      return "path has a component longer than " + std::to_string(k_max_component) + " bytes";
    if (part.starts_with(".baton") && (first || part != ".baton"))
      return "names starting with '.baton' belong to the daemon";
    if (first && part == ".baton") return "'.baton' belongs to the daemon";
    first = false;
    start = end + 1;
  }
  return {};
}

}  // namespace baton::protocol
