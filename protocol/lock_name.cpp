#include "protocol/lock_name.hpp"

#include <algorithm>

namespace baton::protocol {
namespace {

constexpr std::string_view k_suffix = ".lock";

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
         c == '/';
}

}  // namespace

std::string check_lock_name(std::string_view name) {
  if (name.empty()) return "lock name is empty";
  if (name.size() > k_max_lock_name)
    return "lock name is longer than " + std::to_string(k_max_lock_name) +
           " characters";
  for (char c : name) {
    if (!is_name_char(c)) {
      auto u = static_cast<unsigned char>(c);
      return u < 0x20 || u >= 0x7f
                 ? std::string("lock name has a control or non-ASCII byte")
                 : std::string("lock name has '") + c +
                       "'; allowed are letters, digits, '.', '_', '-' and '/'";
    }
  }
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view part = name.substr(start, end - start);
    if (part.empty()) return "lock name has an empty component";
    if (part == "." || part == "..")
      return "lock name has a '" + std::string(part) + "' component";
    start = end + 1;
  }
  return {};
}

std::string lock_file_name(std::string_view name) {
  std::string file(name);
  std::replace(file.begin(), file.end(), '/', '+');
  file += k_suffix;
  return file;
}

std::string lock_name_from_file(std::string_view file) {
  if (file.size() <= k_suffix.size() || !file.ends_with(k_suffix)) return {};
  std::string name(file.substr(0, file.size() - k_suffix.size()));
  std::replace(name.begin(), name.end(), '+', '/');
  if (!check_lock_name(name).empty()) return {};
  return name;
}

}  // namespace baton::protocol
