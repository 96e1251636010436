// libFuzzer target: any bytes through decode_request and
// decode_server_message must give a value or a clean DecodeError, never a
// throw, a crash or undefined behaviour; see decoder_properties.hpp for the
// full list. Built with -DBATON_BUILD_FUZZERS=ON (clang).
//
// BATON_FUZZ_ACCESSORS=1 also checks what libbaton reads out of a decoded
// server message (greeting, reply error, interim holder, event fields).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "tests/fuzz/decoder_properties.hpp"

namespace {
bool g_check_accessors = false;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* accessors = std::getenv("BATON_FUZZ_ACCESSORS");
  g_check_accessors = accessors && std::strcmp(accessors, "1") == 0;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  std::string why = baton::fuzz::check_decoders(line);
  if (why.empty() && g_check_accessors) why = baton::fuzz::check_server_message_accessors(line);
  if (!why.empty()) {
    std::fprintf(stderr, "decoder property violated: %s\n", why.c_str());
    std::abort();
  }
  return 0;
}
