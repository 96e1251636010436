#include "protocol/messages.hpp"

#include <gtest/gtest.h>

namespace baton::protocol {
namespace {

template <typename T>
T expect_request(std::string_view line) {
  auto decoded = decode_request(line);
  if (auto* error = std::get_if<DecodeError>(&decoded)) {
    ADD_FAILURE() << line << ": " << error->message;
    return T{};
  }
  auto& request = std::get<Request>(decoded);
  EXPECT_TRUE(std::holds_alternative<T>(request.body)) << line;
  return std::holds_alternative<T>(request.body) ? std::get<T>(request.body) : T{};
}

DecodeError expect_error(std::string_view line) {
  auto decoded = decode_request(line);
  EXPECT_TRUE(std::holds_alternative<DecodeError>(decoded)) << line;
  return std::holds_alternative<DecodeError>(decoded) ? std::get<DecodeError>(decoded)
                                                      : DecodeError{};
}

TEST(Codec, DecodesLockWithDefaults) {
  auto lock = expect_request<LockRequest>(R"({"id":7,"op":"lock","name":"a/b"})");
  EXPECT_EQ(lock.name, "a/b");
  EXPECT_EQ(lock.mode, LockMode::exclusive);
  EXPECT_FALSE(lock.timeout);
}

TEST(Codec, SaysWhenALineIsNotUtf8) {
  auto error = expect_error("{\"id\":1,\"op\":\"lock\",\"name\":\"a\xff\"}");
  EXPECT_EQ(error.message, "message is not valid UTF-8 (byte 29)");
  EXPECT_EQ(expect_error("{\"id\":1,").message, "message is not a JSON object");
}

TEST(Codec, DecodesEveryField) {
  auto lock = expect_request<LockRequest>(
      R"({"id":1,"op":"lock","name":"x","mode":"shared","timeout_ms":250,"future":[1]})");
  EXPECT_EQ(lock.mode, LockMode::shared);
  ASSERT_TRUE(lock.timeout);
  EXPECT_EQ(lock.timeout->count(), 250);
  EXPECT_EQ(expect_request<UnlockRequest>(R"({"id":2,"op":"unlock","name":"x"})").name, "x");
  expect_request<PingRequest>(R"({"id":3,"op":"ping"})");
  expect_request<StatusRequest>(R"({"id":4,"op":"status"})");
}

TEST(Codec, RoundTripsEncodedRequests) {
  Request request{42, LockRequest{"n/m", LockMode::shared, std::chrono::milliseconds(0)}, std::nullopt};
  std::string line = encode_request(request);
  ASSERT_EQ(line.back(), '\n');
  auto lock = expect_request<LockRequest>(std::string_view(line).substr(0, line.size() - 1));
  EXPECT_EQ(lock.name, "n/m");
  EXPECT_EQ(lock.mode, LockMode::shared);
  EXPECT_EQ(lock.timeout->count(), 0);
}

TEST(Codec, RefusesMalformedLinesWithTheRightCode) {
  EXPECT_EQ(expect_error("not json").code, errc::protocol_error);
  EXPECT_EQ(expect_error("[1,2]").code, errc::protocol_error);
  EXPECT_EQ(expect_error(R"({"op":"ping"})").code, errc::protocol_error);
  EXPECT_EQ(expect_error(R"({"id":-1,"op":"ping"})").code, errc::protocol_error);
  EXPECT_EQ(expect_error(R"({"id":9007199254740992,"op":"ping"})").code, errc::protocol_error);

  auto unknown = expect_error(R"({"id":5,"op":"explode"})");
  EXPECT_EQ(unknown.code, errc::invalid_argument);
  EXPECT_EQ(unknown.id, 5u);  // so the reply can be matched
  EXPECT_EQ(expect_error(R"({"id":5,"op":"lock","name":7})").code, errc::invalid_argument);
  EXPECT_EQ(expect_error(R"({"id":5,"op":"lock","name":"../x"})").code, errc::invalid_name);
  EXPECT_EQ(expect_error(R"({"id":5,"op":"lock","name":"x","mode":"weird"})").code,
            errc::invalid_argument);
  EXPECT_EQ(expect_error(R"({"id":5,"op":"lock","name":"x","timeout_ms":-3})").code,
            errc::invalid_argument);
  EXPECT_EQ(expect_error(R"({"id":5,"op":"lock","name":"x","timeout_ms":1e3})").code,
            errc::invalid_argument);
}

TEST(Codec, ErrorLinesAreOneLineAndCarryTheCode) {
  std::string line = encode_error(3, errc::busy, "lock 'a\nb' is \"busy\"\x1b");
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  auto decoded = decode_server_message(line.substr(0, line.size() - 1));
  ASSERT_TRUE(std::holds_alternative<ServerMessage>(decoded));
  std::string message;
  EXPECT_EQ(reply_error(std::get<ServerMessage>(decoded).object, message), errc::busy);
  EXPECT_EQ(message, "lock 'a?b' is \"busy\"?");  // control bytes never reach a terminal
}

TEST(Codec, InvalidUtf8NeverBreaksEncoding) {
  std::string line = encode_error(std::nullopt, errc::invalid_name, "bad \xff\xfe name");
  EXPECT_EQ(line.back(), '\n');
  EXPECT_TRUE(std::holds_alternative<ServerMessage>(
      decode_server_message(line.substr(0, line.size() - 1))));
}

TEST(Codec, ClassifiesDaemonMessages) {
  auto kind = [](std::string_view line) {
    auto decoded = decode_server_message(line);
    EXPECT_TRUE(std::holds_alternative<ServerMessage>(decoded)) << line;
    return std::get<ServerMessage>(decoded).kind;
  };
  EXPECT_EQ(kind(R"({"baton":1,"server":"batond"})"), ServerMessageKind::greeting);
  EXPECT_EQ(kind(R"({"id":1,"ok":true})"), ServerMessageKind::reply);
  EXPECT_EQ(kind(R"({"id":1,"queued":true,"position":2})"), ServerMessageKind::interim);
  EXPECT_EQ(kind(R"({"event":"lock_lost","name":"x"})"), ServerMessageKind::event);
  EXPECT_TRUE(std::holds_alternative<DecodeError>(decode_server_message(R"({"id":1})")));
}

TEST(Codec, GreetingRoundTrips) {
  Greeting greeting;
  greeting.server = "batond 0.1.0";
  greeting.pod = "p";
  greeting.node = "n";
  greeting.capabilities = {"lock"};
  greeting.limits.max_message_bytes = 4096;
  std::string line = encode_greeting(greeting);
  auto decoded = decode_server_message(line.substr(0, line.size() - 1));
  auto back = decode_greeting(std::get<ServerMessage>(decoded).object);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->version, k_version);
  EXPECT_EQ(back->pod, "p");
  EXPECT_EQ(back->limits.max_message_bytes, 4096u);
}

TEST(Codec, HoldersRoundTrip) {
  Holder holder{"pod", "node", 41, LockMode::shared, 17,
                std::chrono::system_clock::time_point(std::chrono::milliseconds(1234)), false};
  nlohmann::json j = holder;
  Holder back = j.get<Holder>();
  EXPECT_EQ(back.pod, "pod");
  EXPECT_EQ(back.pid, 41);
  EXPECT_EQ(back.mode, LockMode::shared);
  EXPECT_EQ(back.token, 17u);
  EXPECT_EQ(back.since, holder.since);
  EXPECT_FALSE(back.local);
}

TEST(Codec, ClientIdentityRoundTripsOnAnyRequest) {
  Request request{5, PingRequest{}, ClientIdentity{41, "job-abc", "baton"}};
  std::string line = encode_request(request);
  auto decoded = decode_request(line.substr(0, line.size() - 1));
  ASSERT_TRUE(std::holds_alternative<Request>(decoded)) << line;
  const auto& back = std::get<Request>(decoded);
  ASSERT_TRUE(back.client) << line;
  EXPECT_EQ(back.client->pid, 41);
  EXPECT_EQ(back.client->host, "job-abc");
  EXPECT_EQ(back.client->program, "baton");
  auto plain = std::get<Request>(decode_request(R"({"id":1,"op":"ping"})"));
  EXPECT_FALSE(plain.client);
}

TEST(Codec, ClientIdentityIsBoundedAndSanitised) {
  const std::string long_host(300, 'h');
  auto request = std::get<Request>(
      decode_request(R"({"id":1,"op":"ping","client":{"host":")" + long_host +
                     R"(","program":"a\u0007b\u001b[2Jc\u0085d\u00e9"}})"));
  ASSERT_TRUE(request.client);
  EXPECT_EQ(request.client->pid, 0);
  EXPECT_EQ(request.client->host, std::string(k_max_reported_host, 'h'));
  EXPECT_EQ(request.client->program, "a?b?[2Jc?d\xc3\xa9");
  // Cut on a character boundary: never half of a two-byte character.
  EXPECT_EQ(sanitize_reported("ab\xc3\xa9", 3), "ab");
  for (const char* bad : {R"({"id":1,"op":"ping","client":7})",
                          R"({"id":1,"op":"ping","client":{"pid":0}})",
                          R"({"id":1,"op":"ping","client":{"pid":-3}})",
                          R"({"id":1,"op":"ping","client":{"pid":4194305}})",
                          R"({"id":1,"op":"ping","client":{"pid":"41"}})",
                          R"({"id":1,"op":"ping","client":{"host":5}})"}) {
    DecodeError error = expect_error(bad);
    EXPECT_EQ(error.code, errc::invalid_argument) << bad;
    EXPECT_NE(error.message.find("'client'"), std::string::npos)
        << error.message;
  }
}

TEST(Codec, HoldersCarryTheReportedIdentity) {
  Holder holder;
  holder.pod = "p";
  holder.pid = 0;
  holder.reported = {41, "job-abc", "baton"};
  nlohmann::json j = holder;
  EXPECT_EQ(j["client"]["pid"], 41);
  Holder back = j.get<Holder>();
  EXPECT_EQ(back.reported.pid, 41);
  EXPECT_EQ(back.reported.host, "job-abc");
  bool reported = false;
  EXPECT_EQ(shown_pid(back, reported), 41);
  EXPECT_TRUE(reported);
  back.pid = 41;  // the daemon sees the same pid: nothing to mark
  EXPECT_EQ(shown_pid(back, reported), 41);
  EXPECT_FALSE(reported);
  // A record from another pod is as untrusted as a request.
  j["client"]["host"] = std::string(100, 'x') + "\n";
  EXPECT_EQ(j.get<Holder>().reported.host.size(), k_max_reported_host);
}

}  // namespace
}  // namespace baton::protocol
