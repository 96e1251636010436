// What must hold for any bytes fed to the protocol decoders; shared by the
// libFuzzer target and its GoogleTest replay so both check the same thing.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <variant>

#include "baton/error.hpp"
#include "protocol/messages.hpp"

namespace baton::fuzz {

// Feeds LINE (one line without its '\n', as the daemon and libbaton pass it)
// through decode_request and decode_server_message. Returns what was
// violated, or an empty string:
//  - neither decoder throws;
//  - each yields a value or a DecodeError with a non-empty message and a
//    named code, and an id (if any) below 2^53;
//  - a decoded Request encodes to one line that decodes to the same Request
//    (same encoding again);
//  - a DecodeError encodes (encode_error) to one line that libbaton reads back
//    as a reply with the same code;
//  - an empty line is a protocol_error without id (docs/protocol.md: every
//    line that is not a JSON object);
//  - a decoded request with its "op" given a second time is a protocol_error:
//    no key counts twice, so no reader can see another request than we did.
inline std::string check_decoders(std::string_view line) {
  using namespace baton::protocol;
  constexpr std::uint64_t k_id_limit = std::uint64_t{1} << 53;
  auto one_line = [](const std::string& encoded) {
    return !encoded.empty() && encoded.back() == '\n' &&
           encoded.find('\n') == encoded.size() - 1;
  };
  auto check_error = [&](const DecodeError& error, const char* who) -> std::string {
    if (error.message.empty()) return std::string(who) + ": DecodeError with an empty message";
    if (error_name(error.code).empty()) return std::string(who) + ": DecodeError code unnamed";
    if (error.id && *error.id >= k_id_limit) return std::string(who) + ": id not below 2^53";
    return {};
  };
  try {
    if (line.empty()) {
      auto empty = decode_request(line);
      auto* refused = std::get_if<DecodeError>(&empty);
      if (!refused || refused->code != baton::errc::protocol_error || refused->id)
        return "decode_request: an empty line is not a protocol_error without id";
    }
    auto request = decode_request(line);
    if (auto* error = std::get_if<DecodeError>(&request)) {
      if (auto why = check_error(*error, "decode_request"); !why.empty()) return why;
      std::string reply = encode_error(error->id, error->code, error->message);
      if (!one_line(reply)) return "encode_error: not one line";
      auto back = decode_server_message(std::string_view(reply).substr(0, reply.size() - 1));
      auto* message = std::get_if<ServerMessage>(&back);
      if (!message || message->kind != ServerMessageKind::reply || message->id != error->id)
        return "encode_error: its line does not decode as the same reply";
      std::string text;
      if (reply_error(message->object, text) != make_error_code(error->code))
        return "encode_error: reply_error reads another code back";
    } else {
      const Request& decoded = std::get<Request>(request);
      if (decoded.id >= k_id_limit) return "decode_request: id not below 2^53";
      std::string_view object = line;
      while (!object.empty() && (object.back() == ' ' || object.back() == '\t' ||
                                 object.back() == '\r' || object.back() == '\n'))
        object.remove_suffix(1);
      if (!object.empty() && object.back() == '}') {
        std::string twice = std::string(object.substr(0, object.size() - 1)) + R"(,"op":"ping"})";
        auto repeated = decode_request(twice);
        auto* refused = std::get_if<DecodeError>(&repeated);
        if (!refused || refused->code != baton::errc::protocol_error)
          return "decode_request: a repeated \"op\" key was accepted: " + twice;
      }
      std::string encoded = encode_request(decoded);
      if (!one_line(encoded)) return "encode_request: not one line";
      auto again = decode_request(std::string_view(encoded).substr(0, encoded.size() - 1));
      auto* redecoded = std::get_if<Request>(&again);
      if (!redecoded) return "encode_request: its line does not decode: " + encoded;
      if (redecoded->id != decoded.id || redecoded->body.index() != decoded.body.index() ||
          encode_request(*redecoded) != encoded)
        return "encode_request: round trip changed the request: " + encoded;
    }

    auto server = decode_server_message(line);
    if (auto* error = std::get_if<DecodeError>(&server)) {
      if (auto why = check_error(*error, "decode_server_message"); !why.empty()) return why;
    } else {
      const ServerMessage& message = std::get<ServerMessage>(server);
      if (!message.object.is_object()) return "decode_server_message: not an object";
      if (message.id && *message.id >= k_id_limit)
        return "decode_server_message: id not below 2^53";
    }
  } catch (const std::exception& e) {
    return std::string("threw: ") + e.what();
  } catch (...) {
    return "threw something that is not a std::exception";
  }
  return {};
}

// What libbaton does with a decoded server message (client/connection.cpp,
// client/client.cpp): read a greeting, a reply's error and "fd" flag, an
// interim's position and holder, an event's name and message. Returns what
// threw, or an empty string. These reads see whatever the peer sent, so
// they must not throw on ill-typed fields either.
inline std::string check_server_message_accessors(std::string_view line) {
  using namespace baton::protocol;
  try {
    auto server = decode_server_message(line);
    auto* message = std::get_if<ServerMessage>(&server);
    if (!message) return {};
    const nlohmann::json& object = message->object;
    switch (message->kind) {
      case ServerMessageKind::greeting:
        (void)decode_greeting(object);
        break;
      case ServerMessageKind::reply: {
        std::string text;
        (void)reply_error(object, text);
        (void)field(object, "fd", false);
        break;
      }
      case ServerMessageKind::interim:
        (void)field(object, "position", std::size_t{0});
        if (auto holder = object.find("holder"); holder != object.end() && holder->is_object())
          (void)holder->get<baton::Holder>();
        break;
      case ServerMessageKind::event:
        (void)field(object, "event", std::string());
        (void)field(object, "name", std::string());
        (void)field(object, "message", std::string());
        break;
    }
  } catch (const std::exception& e) {
    return std::string("threw: ") + e.what();
  }
  return {};
}

}  // namespace baton::fuzz
