#include "protocol/json_line.hpp"

#include <nlohmann/json.hpp>

namespace baton::protocol {

void append_json_string(std::string& out, std::string_view value) {
  for (unsigned char c : value) {
    if (c >= 0x80) {
      // Rare (names are ASCII, paths seldom are not): let nlohmann judge
      // the UTF-8 and replace what is invalid.
      out += nlohmann::json(std::string(value))
                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      return;
    }
  }
  static constexpr char k_hex[] = "0123456789abcdef";
  out += '"';
  for (char c : value) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += "\\u00";
          out += k_hex[(c >> 4) & 0xf];
          out += k_hex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void JsonLine::key(std::string_view key) {
  if (m_text.size() > 1) m_text += ',';
  m_text += '"';
  m_text += key;
  m_text += "\":";
}

JsonLine& JsonLine::string(std::string_view key, std::string_view value) {
  this->key(key);
  append_json_string(m_text, value);
  return *this;
}

JsonLine& JsonLine::boolean(std::string_view key, bool value) {
  return raw(key, value ? "true" : "false");
}

JsonLine& JsonLine::raw(std::string_view key, std::string_view value) {
  this->key(key);
  m_text += value;
  return *this;
}

std::string JsonLine::finish() {
  m_text += "}\n";
  return std::move(m_text);
}

}  // namespace baton::protocol
