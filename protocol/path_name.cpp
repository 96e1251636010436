#include "protocol/path_name.hpp"

namespace baton::protocol {

std::string check_relative_path(std::string_view path) {
  if (path.empty()) return "path is empty";
  if (path.size() > k_max_path)
    return "path is longer than " + std::to_string(k_max_path) + " bytes";
  if (path.front() == '/') return "path must be relative to the root, not absolute";
  for (char c : path) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return "path has a control character";
  }
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
