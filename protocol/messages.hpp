// Protocol v1 messages (docs/protocol.md): one JSON object per line.
// The decoders are the only place that trusts nothing: every field a peer
// sends is checked here, so the daemon and client deal in typed values.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "baton/error.hpp"
#include "baton/lock.hpp"
#include "baton/status.hpp"

namespace baton::protocol {

inline constexpr int k_version = 1;
inline constexpr std::size_t k_default_max_message = 64 * 1024;

struct Limits {
  std::size_t max_message_bytes = k_default_max_message;
  std::size_t max_locks_per_session = 64;
  std::size_t max_connections = 1024;
};

struct Greeting {
  int version = k_version;
  std::string server;
  std::string pod;
  std::string node;
  std::vector<std::string> capabilities;
  Limits limits;
};

// Requests, one struct per op.
struct PingRequest {};
struct StatusRequest {};
struct LockRequest {
  std::string name;
  LockMode mode = LockMode::exclusive;
  std::optional<std::chrono::milliseconds> timeout;  // nullopt: forever
};
struct UnlockRequest {
  std::string name;
};
struct PublishBeginRequest {
  std::string path;
  unsigned mode = 0644;
  bool no_replace = false;
};
struct PublishCommitRequest {
  std::uint64_t stage = 0;
  std::optional<std::uint64_t> token;
};
struct PublishAbortRequest {
  std::uint64_t stage = 0;
};
struct ReadRequest {
  std::string path;
};
struct WaitRequest {
  std::string path;
  std::optional<std::uint64_t> newer_than;
  std::optional<std::chrono::milliseconds> timeout;  // nullopt: forever
};
struct EnqueueBeginRequest {
  std::string queue;
};
struct EnqueueCommitRequest {
  std::uint64_t stage = 0;
};
struct EnqueueAbortRequest {
  std::uint64_t stage = 0;
};
struct ClaimRequest {
  std::string queue;
  std::optional<std::chrono::milliseconds> timeout;  // nullopt: forever
};
struct AckRequest {
  std::uint64_t claim = 0;
};
struct NackRequest {
  std::uint64_t claim = 0;
};
using RequestBody =
    std::variant<PingRequest, StatusRequest, LockRequest, UnlockRequest, PublishBeginRequest,
                 PublishCommitRequest, PublishAbortRequest, ReadRequest, WaitRequest,
                 EnqueueBeginRequest, EnqueueCommitRequest, EnqueueAbortRequest, ClaimRequest,
                 AckRequest, NackRequest>;

// Bounds of a reported client identity (ClientIdentity): PID_MAX_LIMIT,
// HOST_NAME_MAX, and room for a program name.
inline constexpr int k_max_reported_pid = 1 << 22;
inline constexpr std::size_t k_max_reported_host = 64;
inline constexpr std::size_t k_max_reported_program = 64;

// TEXT made fit to show: control characters (C0, DEL, C1) become '?', and
// it is cut to at most MAX bytes on a UTF-8 character boundary.
std::string sanitize_reported(std::string_view text, std::size_t max);

// OBJECT as a client identity: bounded and sanitised; nullopt with a reason
// in WHY when a field has the wrong type or the pid is out of range.
std::optional<ClientIdentity> decode_client_identity(
    const nlohmann::json& object, std::string& why);
// The identity as a JSON object, e.g. {"pid":41,"host":"job-abc"}.
std::string encode_client_identity(const ClientIdentity& identity);

struct Request {
  std::uint64_t id = 0;
  RequestBody body;
  // "client": who the client says it is; libbaton sends it with the first
  // request of a connection. Any request may carry it.
  std::optional<ClientIdentity> client{};
};

// Why a line could not be decoded; id is set when the line had a usable one,
// so the error can be matched to the request.
struct DecodeError {
  std::optional<std::uint64_t> id;
  errc code = errc::protocol_error;
  std::string message;
};

std::variant<Request, DecodeError> decode_request(std::string_view line);
std::string encode_request(const Request& request);

// Daemon -> client lines.
enum class ServerMessageKind { greeting, reply, interim, event };

// A decoded daemon line: its kind, id (replies and interims) and the whole
// object, which the client reads typed fields from.
struct ServerMessage {
  ServerMessageKind kind = ServerMessageKind::reply;
  std::optional<std::uint64_t> id;
  nlohmann::json object;
};
std::variant<ServerMessage, DecodeError> decode_server_message(
    std::string_view line);

// OBJECT[KEY] as a T, or FALLBACK when missing, null or of another type.
// Replaces nlohmann's value(), which throws on a wrong type: a daemon (or
// client) sending {"message":7} must get an error, not an exception.
template <typename T>
T field(const nlohmann::json& object, const char* key, T fallback) {
  if (!object.is_object()) return fallback;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if constexpr (std::is_same_v<T, bool>) {
    return it->is_boolean() ? it->get<bool>() : fallback;
  } else if constexpr (std::is_same_v<T, std::string>) {
    return it->is_string() ? it->get<std::string>() : fallback;
  } else if constexpr (std::is_unsigned_v<T>) {
    return it->is_number_unsigned() ? it->get<T>() : fallback;
  } else {
    return it->is_number_integer() ? it->get<T>() : fallback;
  }
}

std::string encode_greeting(const Greeting& greeting);
std::optional<Greeting> decode_greeting(const nlohmann::json& object);

std::string lock_mode_name(LockMode mode);
bool lock_mode_from_name(std::string_view name, LockMode& mode);

// The error a reply carries: empty for {"ok":true}; unknown codes from a
// newer daemon become protocol_error. MESSAGE gets the daemon's words.
std::error_code reply_error(const nlohmann::json& reply, std::string& message);

// Reply lines. `fields` is a JSON object merged into the reply.
std::string encode_ok(std::uint64_t id, const nlohmann::json& fields);
std::string encode_ok(std::uint64_t id);
std::string encode_error(std::optional<std::uint64_t> id, errc code,
                         std::string_view message);
std::string encode_line(const nlohmann::json& object);

}  // namespace baton::protocol

namespace baton {
// Holders travel as objects with since_ms (milliseconds since the epoch).
// In namespace baton, beside Holder, so nlohmann's lookup finds them.
void to_json(nlohmann::json& j, const Holder& holder);
void from_json(const nlohmann::json& j, Holder& holder);
}  // namespace baton
