// The fuzz target's properties (decoder_properties.hpp) on every file of the
// seed corpus and on a few thousand deterministic mutations of them, so a
// plain test run covers what the fuzzer checks, and a crash the fuzzer found
// stays fixed once its input is added to corpus/.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/fuzz/decoder_properties.hpp"

namespace {

std::string printable(const std::string& text) {
  return nlohmann::json(text.substr(0, 300))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<std::string> load_corpus() {
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(BATON_FUZZ_CORPUS_DIR))
    if (entry.is_regular_file()) paths.push_back(entry.path());
  std::sort(paths.begin(), paths.end());  // a stable order for the mutations
  std::vector<std::string> corpus;
  for (const auto& path : paths) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    corpus.push_back(text.str());
  }
  return corpus;
}

// One mutation of the kinds libFuzzer tries most: byte flips, inserted and
// erased bytes, JSON-ish tokens, repeats, splices and truncations.
std::string mutate(std::string input, const std::vector<std::string>& corpus,
                   std::mt19937_64& random) {
  static const std::vector<std::string> k_tokens = {
      "{", "}", "[", "]", "\"", ":", ",", "\\", "\\u0000", "\\ud800", "null", "true", "-1", "0",
      "1e999", "-0", "1.5", "9007199254740992", "18446744073709551616", "\"id\":", "\"op\":",
      "\"name\":", "\"lock\"", "\"unlock\"", "\"baton\":", "\"event\":", "\"ok\":", "\"queued\":",
      "\"holder\":", std::string(1, '\0'), "\xff", "\xc3\x28", "\r", "\n"};
  auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n)(random); };
  const int rounds = 1 + static_cast<int>(pick(3));
  for (int round = 0; round < rounds; ++round) {
    const std::size_t at = input.empty() ? 0 : pick(input.size());
    switch (pick(6)) {
      case 0:  // flip a byte
        if (!input.empty()) input[std::min(at, input.size() - 1)] ^= static_cast<char>(1 + pick(254));
        break;
      case 1:  // insert a random byte
        input.insert(at, 1, static_cast<char>(pick(255)));
        break;
      case 2:  // erase a range
        if (!input.empty()) input.erase(std::min(at, input.size() - 1), 1 + pick(8));
        break;
      case 3:  // insert a token
        input.insert(at, k_tokens[pick(k_tokens.size() - 1)]);
        break;
      case 4:  // repeat a slice
        if (!input.empty()) {
          std::string slice = input.substr(std::min(at, input.size() - 1), 1 + pick(16));
          input.insert(at, slice);
        }
        break;
      case 5: {  // splice with another corpus entry
        const std::string& other = corpus[pick(corpus.size() - 1)];
        input = input.substr(0, at) + other.substr(pick(other.size()));
        break;
      }
      default:  // truncate
        input.resize(at);
        break;
    }
  }
  return input;
}

TEST(DecoderReplay, CorpusFilesKeepTheProperties) {
  std::vector<std::string> corpus = load_corpus();
  ASSERT_GE(corpus.size(), 12u) << "seed corpus missing at " << BATON_FUZZ_CORPUS_DIR;
  for (const std::string& input : corpus)
    EXPECT_EQ(baton::fuzz::check_decoders(input), "") << "input " << printable(input);
}

TEST(DecoderReplay, CorpusDecodesAsItClaims) {
  // The seeds are meant to reach both outcomes: some valid requests, some not.
  std::size_t requests = 0, errors = 0;
  for (const std::string& input : load_corpus()) {
    auto decoded = baton::protocol::decode_request(input);
    (std::holds_alternative<baton::protocol::Request>(decoded) ? requests : errors)++;
  }
  EXPECT_GE(requests, 8u);
  EXPECT_GE(errors, 8u);
}

TEST(DecoderReplay, RandomMutationsKeepTheProperties) {
  std::vector<std::string> corpus = load_corpus();
  ASSERT_FALSE(corpus.empty());
  std::mt19937_64 random(0xba70'f022);
  int failures = 0;
  for (int i = 0; i < 5000 && failures < 10; ++i) {
    std::string input = mutate(corpus[static_cast<std::size_t>(i) % corpus.size()], corpus, random);
    std::string why = baton::fuzz::check_decoders(input);
    if (!why.empty()) {
      ++failures;
      ADD_FAILURE() << "mutation " << i << ": " << why << "\ninput " << printable(input);
    }
  }
}

TEST(DecoderReplay, RandomBytesKeepTheProperties) {
  std::mt19937_64 random(20240601);
  for (int i = 0; i < 2000; ++i) {
    std::string input(std::uniform_int_distribution<std::size_t>(0, 64)(random), '\0');
    for (char& c : input) c = static_cast<char>(random());
    ASSERT_EQ(baton::fuzz::check_decoders(input), "") << "input " << printable(input);
  }
}

// A DecodeError's message is sent as the reply's one-line "message": it must
// not carry a line break even when it quotes what the client sent.
TEST(DecoderReplay, DecodeErrorMessagesAreOneLine) {
  for (const char* line : {R"({"id":1,"op":"evil\nline"})", R"({"id":1,"op":"x\r"})",
                           R"({"id":1,"op":"\u2028"})"}) {
    auto decoded = baton::protocol::decode_request(line);
    auto* error = std::get_if<baton::protocol::DecodeError>(&decoded);
    ASSERT_NE(error, nullptr) << line;
    EXPECT_EQ(error->message.find_first_of("\r\n"), std::string::npos)
        << "message " << printable(error->message) << " for " << line;
  }
}

// What libbaton reads out of a daemon's line must not throw when a field
// has the wrong type: Client::connect(options, ec) is noexcept, and every
// error_code& overload promises not to throw.
TEST(DecoderReplay, ServerMessageAccessorsNeverThrowOnIllTypedFields) {
  for (const char* line : {
           R"({"baton":1,"server":5})",
           R"({"baton":1,"limits":{"max_message_bytes":"big"}})",
           R"({"id":null,"ok":false,"error":"busy","message":7})",
           R"({"id":1,"ok":true,"fd":1})",
           R"({"id":1,"queued":true,"position":"first"})",
           R"({"id":1,"queued":true,"holder":{"pod":1}})",
           R"({"event":5})",
           R"({"event":"lock_lost","name":["x"]})",
       })
    EXPECT_EQ(baton::fuzz::check_server_message_accessors(line), "") << line;
}

}  // namespace
