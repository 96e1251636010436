// One flat JSON object written straight into a protocol line. Requests and
// the frequent replies are a handful of scalar fields; building a nlohmann
// document for them costs an allocation per key, on every lock and unlock.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace baton::protocol {

class JsonLine {
 public:
  JsonLine() { m_text.reserve(96); }

  // KEY must be a plain ASCII literal: it is written unescaped.
  JsonLine& string(std::string_view key, std::string_view value);
  JsonLine& boolean(std::string_view key, bool value);
  // VALUE is already JSON (e.g. a pre-encoded object).
  JsonLine& raw(std::string_view key, std::string_view value);
  template <typename T>
    requires std::is_integral_v<T> && (!std::is_same_v<T, bool>)
  JsonLine& number(std::string_view key, T value) {
    return raw(key, std::to_string(value));
  }

  // The object closed and newline-terminated.
  std::string finish();  // leaves this line empty

 private:
  void key(std::string_view key);
  std::string m_text = "{";
};

// VALUE as a JSON string. Invalid UTF-8 becomes U+FFFD, as in encode_line.
void append_json_string(std::string& out, std::string_view value);

}  // namespace baton::protocol
