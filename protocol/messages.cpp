#include "protocol/messages.hpp"

#include <algorithm>
#include <limits>
#include <tuple>
#include <vector>

#include "protocol/json_line.hpp"
#include "protocol/lock_name.hpp"
#include "protocol/path_name.hpp"

namespace baton::protocol {
namespace {

using json = nlohmann::json;

// IDs must survive a trip through a JavaScript client's doubles.
constexpr std::uint64_t k_max_id = (std::uint64_t{1} << 53) - 1;

// LINE as a JSON object, or nullopt. A key given twice in one object makes
// it no object at all (DUPLICATE names the key): nlohmann keeps the last,
// so {"op":"ping","op":"lock",...} would take a lock a reader sees as ping.
std::optional<json> parse_object(std::string_view line, std::string* duplicate = nullptr) {
  std::vector<std::vector<std::string>> keys;  // of each object being parsed
  bool repeated = false;
  auto check = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (event == json::parse_event_t::key && !keys.empty() && !repeated) {
      auto& seen = keys.back();
      const auto& key = parsed.get_ref<const std::string&>();
      if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
        repeated = true;
        if (duplicate) *duplicate = key.substr(0, 64);
      } else {
        seen.push_back(key);
      }
    }
    return true;
  };
  json object = json::parse(line, check, /*allow_exceptions=*/false);
  if (repeated || object.is_discarded() || !object.is_object()) return std::nullopt;
  return object;
}

std::optional<std::uint64_t> read_id(const json& object) {
  auto it = object.find("id");
  if (it == object.end() || !it->is_number_unsigned()) return std::nullopt;
  auto id = it->get<std::uint64_t>();
  if (id > k_max_id) return std::nullopt;
  return id;
}

// A required string field; sets ERROR on failure.
bool read_string(const json& object, const char* field, std::string& out,
                 DecodeError& error) {
  auto it = object.find(field);
  if (it == object.end() || !it->is_string()) {
    error.code = errc::invalid_argument;
    error.message = std::string("'") + field + "' must be a string";
    return false;
  }
  out = it->get<std::string>();
  return true;
}

bool read_lock_name(const json& object, std::string& name,
                    DecodeError& error) {
  if (!read_string(object, "name", name, error)) return false;
  if (std::string why = check_lock_name(name); !why.empty()) {
    error.code = errc::invalid_name;
    error.message = why;
    return false;
  }
  return true;
}

bool read_path(const json& object, std::string& path, DecodeError& error) {
  if (!read_string(object, "path", path, error)) return false;
  if (std::string why = check_relative_path(path); !why.empty()) {
    error.code = errc::invalid_path;
    error.message = why;
    return false;
  }
  return true;
}

// An optional unsigned field below 2^63; false (ERROR set) if ill-typed.
bool read_optional_u64(const json& object, const char* field,
                       std::optional<std::uint64_t>& out, DecodeError& error) {
  auto it = object.find(field);
  if (it == object.end() || it->is_null()) return true;
  if (!it->is_number_unsigned() || it->get<std::uint64_t>() >= (std::uint64_t{1} << 63)) {
    error.code = errc::invalid_argument;
    error.message = std::string("'") + field + "' must be an unsigned integer below 2^63";
    return false;
  }
  out = it->get<std::uint64_t>();
  return true;
}

bool read_required_u64(const json& object, const char* field,
                       std::optional<std::uint64_t>& out, DecodeError& error) {
  if (!read_optional_u64(object, field, out, error)) return false;
  if (out) return true;
  error.code = errc::invalid_argument;
  error.message = std::string("'") + field + "' is required";
  return false;
}

bool read_queue(const json& object, std::string& queue, DecodeError& error) {
  if (!read_string(object, "queue", queue, error)) return false;
  if (std::string why = check_relative_path(queue); !why.empty()) {
    error.code = errc::invalid_path;
    error.message = "queue " + why;
    return false;
  }
  return true;
}

bool read_optional_timeout(const json& object, std::optional<std::chrono::milliseconds>& out,
                           DecodeError& error) {
  std::optional<std::uint64_t> ms;
  if (!read_optional_u64(object, "timeout_ms", ms, error)) return false;
  // Bounded so that deadline arithmetic cannot overflow: ~278 years max.
  if (ms && *ms > (std::uint64_t{1} << 43)) {
    error.code = errc::invalid_argument;
    error.message = "'timeout_ms' must be an integer from 0 to 2^43";
    return false;
  }
  if (ms) out = std::chrono::milliseconds(*ms);
  return true;
}

std::variant<LockRequest, DecodeError> decode_lock(const json& object,
                                                   DecodeError error) {
  LockRequest lock;
  if (!read_lock_name(object, lock.name, error)) return error;
  if (auto it = object.find("mode"); it != object.end()) {
    if (!it->is_string() ||
        !lock_mode_from_name(it->get_ref<const std::string&>(), lock.mode)) {
      error.code = errc::invalid_argument;
      error.message = "'mode' must be \"exclusive\" or \"shared\"";
      return error;
    }
  }
  if (!read_optional_timeout(object, lock.timeout, error)) return error;
  return lock;
}

}  // namespace

std::string lock_mode_name(LockMode mode) {
  return mode == LockMode::shared ? "shared" : "exclusive";
}

bool lock_mode_from_name(std::string_view name, LockMode& mode) {
  if (name == "exclusive") {
    mode = LockMode::exclusive;
  } else if (name == "shared") {
    mode = LockMode::shared;
  } else {
    return false;
  }
  return true;
}

namespace {
std::variant<Request, DecodeError> decode_request_fields(std::string_view line);
}  // namespace

std::variant<Request, DecodeError> decode_request(std::string_view line) {
  auto decoded = decode_request_fields(line);
  // The message may quote the request (an unknown op): keep it one line.
  if (auto* error = std::get_if<DecodeError>(&decoded))
    for (char& c : error->message)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return decoded;
}

namespace {
std::variant<Request, DecodeError> decode_request_fields(std::string_view line) {
  DecodeError error;
  std::string duplicate;
  std::optional<json> object = parse_object(line, &duplicate);
  if (!object) {
    // JSON text is UTF-8: say so rather than blame the syntax.
    const std::size_t bad = find_invalid_utf8(line);
    if (bad != std::string_view::npos)
      error.message = "message is not valid UTF-8 (byte " + std::to_string(bad) + ")";
    else if (!duplicate.empty())
      error.message = "key '" + duplicate + "' appears twice in one object";
    else
      error.message = line.empty() ? "empty line is not a JSON object" : "message is not a JSON object";
    return error;
  }
  error.id = read_id(*object);
  if (!error.id) {
    error.message = "'id' must be an unsigned integer below 2^53";
    return error;
  }
  std::string op;
  if (!read_string(*object, "op", op, error)) return error;

  Request request;
  request.id = *error.id;
  if (auto it = object->find("client"); it != object->end() && !it->is_null()) {
    std::string why;
    request.client = decode_client_identity(*it, why);
    if (!request.client) {
      error.code = errc::invalid_argument;
      error.message = "'client' " + why;
      return error;
    }
  }
  if (op == "ping") {
    request.body = PingRequest{};
  } else if (op == "status") {
    request.body = StatusRequest{};
  } else if (op == "lock") {
    auto lock = decode_lock(*object, error);
    if (auto* e = std::get_if<DecodeError>(&lock)) return *e;
    request.body = std::get<LockRequest>(std::move(lock));
  } else if (op == "unlock") {
    UnlockRequest unlock;
    if (!read_lock_name(*object, unlock.name, error)) return error;
    request.body = std::move(unlock);
  } else if (op == "publish_begin") {
    PublishBeginRequest begin;
    if (!read_path(*object, begin.path, error)) return error;
    std::optional<std::uint64_t> mode;
    if (!read_optional_u64(*object, "mode", mode, error)) return error;
    if (mode && *mode > 07777) {
      error.code = errc::invalid_argument;
      error.message = "'mode' must be a permission mode up to 07777";
      return error;
    }
    if (mode) begin.mode = static_cast<unsigned>(*mode);
    if (auto it = object->find("no_replace"); it != object->end()) {
      if (!it->is_boolean()) {
        error.code = errc::invalid_argument;
        error.message = "'no_replace' must be true or false";
        return error;
      }
      begin.no_replace = it->get<bool>();
    }
    request.body = std::move(begin);
  } else if (op == "publish_commit" || op == "publish_abort" || op == "enqueue_commit" ||
             op == "enqueue_abort") {
    std::optional<std::uint64_t> stage;
    if (!read_required_u64(*object, "stage", stage, error)) return error;
    if (op == "publish_abort") {
      request.body = PublishAbortRequest{*stage};
    } else if (op == "enqueue_commit") {
      request.body = EnqueueCommitRequest{*stage};
    } else if (op == "enqueue_abort") {
      request.body = EnqueueAbortRequest{*stage};
    } else {
      PublishCommitRequest commit{*stage, std::nullopt};
      if (!read_optional_u64(*object, "token", commit.token, error)) return error;
      request.body = commit;
    }
  } else if (op == "ack" || op == "nack") {
    std::optional<std::uint64_t> claim;
    if (!read_required_u64(*object, "claim", claim, error)) return error;
    if (op == "ack")
      request.body = AckRequest{*claim};
    else
      request.body = NackRequest{*claim};
  } else if (op == "enqueue_begin") {
    EnqueueBeginRequest begin;
    if (!read_queue(*object, begin.queue, error)) return error;
    request.body = std::move(begin);
  } else if (op == "claim") {
    ClaimRequest claim;
    if (!read_queue(*object, claim.queue, error)) return error;
    if (!read_optional_timeout(*object, claim.timeout, error)) return error;
    request.body = std::move(claim);
  } else if (op == "read") {
    ReadRequest read;
    if (!read_path(*object, read.path, error)) return error;
    request.body = std::move(read);
  } else if (op == "wait") {
    WaitRequest wait;
    if (!read_path(*object, wait.path, error)) return error;
    if (!read_optional_u64(*object, "newer_than", wait.newer_than, error)) return error;
    if (!read_optional_timeout(*object, wait.timeout, error)) return error;
    request.body = std::move(wait);
  } else {
    error.code = errc::invalid_argument;
    error.message = "unknown op '" + op + "'";
    return error;
  }
  return request;
}

}  // namespace

std::string sanitize_reported(std::string_view text, std::size_t max) {
  std::string out(text.substr(0, max));
  // Cut back to a character boundary: never leave half a UTF-8 sequence.
  if (out.size() < text.size()) {
    std::size_t end = out.size();
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80)
      --end;
    out.resize(end);
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    auto c = static_cast<unsigned char>(out[i]);
    if (c < 0x20 || c == 0x7f) {
      out[i] = '?';
    } else if (c == 0xC2 && i + 1 < out.size() &&
               static_cast<unsigned char>(out[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(out[i + 1]) <= 0x9F) {
      out.replace(i, 2, "?");  // a C1 control character
    }
  }
  return out;
}

std::optional<ClientIdentity> decode_client_identity(const json& object,
                                                     std::string& why) {
  if (!object.is_object()) {
    why = "must be an object";
    return std::nullopt;
  }
  ClientIdentity identity;
  if (auto it = object.find("pid"); it != object.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<std::int64_t>() < 1 ||
        it->get<std::int64_t>() > k_max_reported_pid) {
      why = "pid must be an integer from 1 to " +
            std::to_string(k_max_reported_pid);
      return std::nullopt;
    }
    identity.pid = static_cast<int>(it->get<std::int64_t>());
  }
  for (auto [key, out, max] :
       {std::tuple{"host", &identity.host, k_max_reported_host},
        std::tuple{"program", &identity.program, k_max_reported_program}}) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) continue;
    if (!it->is_string()) {
      why = std::string(key) + " must be a string";
      return std::nullopt;
    }
    *out = sanitize_reported(it->get_ref<const std::string&>(), max);
  }
  return identity;
}

std::string encode_client_identity(const ClientIdentity& identity) {
  JsonLine line;
  if (identity.pid > 0) line.number("pid", identity.pid);
  if (!identity.host.empty()) line.string("host", identity.host);
  if (!identity.program.empty()) line.string("program", identity.program);
  std::string text = line.finish();
  text.pop_back();  // the newline: this object goes inside another
  return text;
}

std::string encode_request(const Request& request) {
  JsonLine line;
  line.number("id", request.id);
  if (request.client)
    line.raw("client", encode_client_identity(*request.client));
  std::visit(
      [&](const auto& body) {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, PingRequest>) {
          line.string("op", "ping");
        } else if constexpr (std::is_same_v<T, StatusRequest>) {
          line.string("op", "status");
        } else if constexpr (std::is_same_v<T, LockRequest>) {
          line.string("op", "lock").string("name", body.name);
          line.string("mode", lock_mode_name(body.mode));
          if (body.timeout) line.number("timeout_ms", body.timeout->count());
        } else if constexpr (std::is_same_v<T, UnlockRequest>) {
          line.string("op", "unlock").string("name", body.name);
        } else if constexpr (std::is_same_v<T, PublishBeginRequest>) {
          line.string("op", "publish_begin").string("path", body.path);
          line.number("mode", body.mode).boolean("no_replace", body.no_replace);
        } else if constexpr (std::is_same_v<T, PublishCommitRequest>) {
          line.string("op", "publish_commit").number("stage", body.stage);
          if (body.token) line.number("token", *body.token);
        } else if constexpr (std::is_same_v<T, PublishAbortRequest>) {
          line.string("op", "publish_abort").number("stage", body.stage);
        } else if constexpr (std::is_same_v<T, ReadRequest>) {
          line.string("op", "read").string("path", body.path);
        } else if constexpr (std::is_same_v<T, EnqueueBeginRequest>) {
          line.string("op", "enqueue_begin").string("queue", body.queue);
        } else if constexpr (std::is_same_v<T, EnqueueCommitRequest>) {
          line.string("op", "enqueue_commit").number("stage", body.stage);
        } else if constexpr (std::is_same_v<T, EnqueueAbortRequest>) {
          line.string("op", "enqueue_abort").number("stage", body.stage);
        } else if constexpr (std::is_same_v<T, ClaimRequest>) {
          line.string("op", "claim").string("queue", body.queue);
          if (body.timeout) line.number("timeout_ms", body.timeout->count());
        } else if constexpr (std::is_same_v<T, AckRequest>) {
          line.string("op", "ack").number("claim", body.claim);
        } else if constexpr (std::is_same_v<T, NackRequest>) {
          line.string("op", "nack").number("claim", body.claim);
        } else if constexpr (std::is_same_v<T, WaitRequest>) {
          line.string("op", "wait").string("path", body.path);
          if (body.newer_than) line.number("newer_than", *body.newer_than);
          if (body.timeout) line.number("timeout_ms", body.timeout->count());
        }
      },
      request.body);
  return line.finish();
}

std::variant<ServerMessage, DecodeError> decode_server_message(
    std::string_view line) {
  DecodeError error;
  std::optional<json> object = parse_object(line);
  if (!object) {
    error.message = "daemon sent something that is not a JSON object";
    return error;
  }
  ServerMessage message;
  message.id = read_id(*object);
  if (object->contains("baton")) {
    message.kind = ServerMessageKind::greeting;
  } else if (object->contains("event")) {
    message.kind = ServerMessageKind::event;
  } else if (object->contains("queued") && message.id) {
    message.kind = ServerMessageKind::interim;
  } else if (object->contains("ok")) {
    message.kind = ServerMessageKind::reply;
  } else {
    error.message = "daemon sent a message of unknown kind";
    return error;
  }
  message.object = std::move(*object);
  return message;
}

std::error_code reply_error(const json& reply, std::string& message) {
  auto ok = reply.find("ok");
  if (ok != reply.end() && ok->is_boolean() && ok->get<bool>()) return {};
  message = field(reply, "message", std::string());
  errc code = errc::protocol_error;
  auto name = reply.find("error");
  if (name == reply.end() || !name->is_string() ||
      !errc_from_name(name->get_ref<const std::string&>(), code)) {
    code = errc::protocol_error;
  }
  return make_error_code(code);
}

std::string encode_greeting(const Greeting& greeting) {
  json object{
      {"baton", greeting.version},
      {"server", greeting.server},
      {"pod", greeting.pod},
      {"node", greeting.node},
      {"capabilities", greeting.capabilities},
      {"limits",
       {{"max_message_bytes", greeting.limits.max_message_bytes},
        {"max_locks_per_session", greeting.limits.max_locks_per_session},
        {"max_connections", greeting.limits.max_connections},
        {"max_name_length", k_max_lock_name}}}};
  return encode_line(object);
}

std::optional<Greeting> decode_greeting(const json& object) {
  auto version = object.find("baton");
  if (version == object.end() || !version->is_number_integer()) return std::nullopt;
  for (const char* text : {"server", "pod", "node"}) {
    auto it = object.find(text);
    if (it != object.end() && !it->is_string()) return std::nullopt;  // not a daemon we know
  }
  Greeting greeting;
  greeting.version = version->get<int>();
  greeting.server = field(object, "server", std::string());
  greeting.pod = field(object, "pod", std::string());
  greeting.node = field(object, "node", std::string());
  if (auto caps = object.find("capabilities");
      caps != object.end() && caps->is_array()) {
    for (const auto& cap : *caps)
      if (cap.is_string()) greeting.capabilities.push_back(cap.get<std::string>());
  }
  if (auto limits = object.find("limits");
      limits != object.end() && limits->is_object()) {
    greeting.limits.max_message_bytes =
        field(*limits, "max_message_bytes", k_default_max_message);
    greeting.limits.max_locks_per_session =
        field(*limits, "max_locks_per_session", std::size_t{64});
    greeting.limits.max_connections =
        field(*limits, "max_connections", std::size_t{1024});
  }
  return greeting;
}

std::string encode_ok(std::uint64_t id, const json& fields) {
  json object{{"id", id}, {"ok", true}};
  if (fields.is_object()) object.update(fields);
  return encode_line(object);
}

std::string encode_ok(std::uint64_t id) {
  return JsonLine().number("id", id).boolean("ok", true).finish();
}

std::string encode_error(std::optional<std::uint64_t> id, errc code,
                         std::string_view message) {
  // One line, no terminal escapes, whatever of the request it quotes.
  std::string line(message);
  for (char& c : line)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  json object{{"id", id ? json(*id) : json(nullptr)},
              {"ok", false},
              {"error", error_name(code)},
              {"message", line}};
  return encode_line(object);
}

std::string encode_line(const json& object) {
  // Replace invalid UTF-8 (e.g. a hostile name echoed in a message) rather
  // than throwing from the serializer.
  std::string line = object.dump(-1, ' ', false, json::error_handler_t::replace);
  line += '\n';
  return line;
}

}  // namespace baton::protocol

namespace baton {

using nlohmann::json;

void to_json(json& j, const Holder& holder) {
  using namespace std::chrono;
  j = json{{"pod", holder.pod},
           {"node", holder.node},
           {"pid", holder.pid},
           {"mode", protocol::lock_mode_name(holder.mode)},
           {"token", holder.token},
           {"since_ms",
            duration_cast<milliseconds>(holder.since.time_since_epoch()).count()},
           {"local", holder.local}};
  if (!holder.reported.empty()) {
    json client = json::object();
    if (holder.reported.pid > 0) client["pid"] = holder.reported.pid;
    if (!holder.reported.host.empty()) client["host"] = holder.reported.host;
    if (!holder.reported.program.empty())
      client["program"] = holder.reported.program;
    j["client"] = std::move(client);
  }
}

void from_json(const json& j, Holder& holder) {
  using namespace std::chrono;
  if (!j.is_object()) return;
  holder.pod = protocol::field(j, "pod", std::string());
  holder.node = protocol::field(j, "node", std::string());
  holder.pid = protocol::field(j, "pid", 0);
  protocol::lock_mode_from_name(protocol::field(j, "mode", std::string("exclusive")), holder.mode);
  holder.token = protocol::field(j, "token", std::uint64_t{0});
  holder.since = system_clock::time_point(
      milliseconds(protocol::field(j, "since_ms", std::int64_t{0})));
  holder.local = protocol::field(j, "local", true);
  // Records come from other pods' files: as untrusted as a request.
  holder.reported = {};
  if (auto it = j.find("client"); it != j.end() && it->is_object()) {
    std::string why;
    if (auto identity = protocol::decode_client_identity(*it, why))
      holder.reported = std::move(*identity);
  }
}

}  // namespace baton
