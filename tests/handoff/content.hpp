// Self-describing content for the handoff tests, so that a reader can tell
// a whole version from a torn one without knowing what was written.
//
// A version file is made of 4 KiB blocks. Every block starts with a header
// that names the version, the block's index, the number of blocks and a
// checksum of the whole file's payload; the rest of the block is payload
// derived from (version, index). A file is whole when it has the announced
// size, every header agrees, and the payload matches the checksum.
//
// A queue item carries its index, its size and a checksum in a first line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace baton::test {

inline constexpr std::size_t k_block_size = 4096;

// BLOCKS blocks of version VERSION.
std::string make_version_content(std::uint64_t version, std::size_t blocks);

struct ContentCheck {
  bool whole = false;
  std::uint64_t version = 0;  // when whole
  std::string error;          // when not: what is wrong, one line
};

// Whether DATA is one whole version (of any size of at least one block).
ContentCheck check_version_content(std::string_view data);

// Item number INDEX of a queue, SIZE bytes in all (at least 64).
std::string make_item_content(std::uint64_t index, std::size_t size);

// Whether DATA is one whole item; its index in VERSION.
ContentCheck check_item_content(std::string_view data);

// Reads all of FD from offset 0 (pread). False on an error.
bool read_all(int fd, std::string& out);

// Writes all of DATA to FD. False on an error.
bool write_all(int fd, std::string_view data);

}  // namespace baton::test
