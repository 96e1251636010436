# Settings every baton target links: warnings and sanitizers, as INTERFACE
# targets rather than global flags.
add_library(baton_warnings INTERFACE)
target_compile_options(baton_warnings INTERFACE -Wall -Wextra -Wpedantic
  -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Wunused
  -Woverloaded-virtual -Wformat=2 -Wimplicit-fallthrough)
if(BATON_WARNINGS_AS_ERRORS)
  target_compile_options(baton_warnings INTERFACE -Werror)
endif()
# g++ 12 at -O3 (Release) warns a false -Wrestrict inside libstdc++'s
# std::string operator+ (GCC bug 105329), wherever strings are joined.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(baton_warnings INTERFACE -Wno-restrict)
endif()

add_library(baton_sanitizers INTERFACE)
if(BATON_SANITIZE STREQUAL "address")
  # -Wno-mismatched-new-delete: g++ 12 false positive on Asio's awaitable
  # frames under ASan (GCC PR 109224).
  target_compile_options(baton_sanitizers INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
    -Wno-mismatched-new-delete)
  target_link_options(baton_sanitizers INTERFACE -fsanitize=address,undefined)
elseif(BATON_SANITIZE STREQUAL "thread")
  # -Wno-tsan: g++ 12 warns that TSan ignores atomic_thread_fence, which
  # Asio uses; -Wno-mismatched-new-delete as above.
  target_compile_options(baton_sanitizers INTERFACE -fsanitize=thread -fno-omit-frame-pointer
    -Wno-tsan -Wno-mismatched-new-delete)
  target_link_options(baton_sanitizers INTERFACE -fsanitize=thread)
elseif(NOT BATON_SANITIZE STREQUAL "")
  message(FATAL_ERROR "BATON_SANITIZE must be '', 'address' or 'thread'")
endif()

add_library(baton_settings INTERFACE)
target_link_libraries(baton_settings INTERFACE
  $<BUILD_INTERFACE:baton_warnings> $<BUILD_INTERFACE:baton_sanitizers>)
