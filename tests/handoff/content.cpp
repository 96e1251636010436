#include "tests/handoff/content.hpp"

#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace baton::test {
namespace {

constexpr std::size_t k_header_size = 128;
constexpr std::size_t k_payload_size = k_block_size - k_header_size;
constexpr std::size_t k_item_header_size = 64;

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// SIZE bytes derived from SEED.
void fill_payload(char* out, std::size_t size, std::uint64_t seed) {
  std::uint64_t state = seed;
  for (std::size_t at = 0; at < size; at += 8) {
    std::uint64_t word = splitmix64(state);
    std::memcpy(out + at, &word, std::min<std::size_t>(8, size - at));
  }
}

// A word-at-a-time FNV-style hash: every byte counts, and it is fast enough
// to check a MiB in a millisecond or two.
std::uint64_t checksum(std::string_view data, std::uint64_t hash) {
  std::size_t at = 0;
  for (; at + 8 <= data.size(); at += 8) {
    std::uint64_t word;
    std::memcpy(&word, data.data() + at, 8);
    hash = (hash ^ word) * 1099511628211ull;
  }
  for (; at < data.size(); ++at)
    hash = (hash ^ static_cast<unsigned char>(data[at])) * 1099511628211ull;
  return hash;
}

constexpr std::uint64_t k_hash_start = 1469598103934665603ull;

std::uint64_t block_seed(std::uint64_t version, std::size_t index) {
  return version * 0x100000001B3ull + index;
}

std::string header_text(std::uint64_t version, std::size_t index,
                        std::size_t blocks, std::uint64_t sum) {
  char text[k_header_size + 1];
  int n = std::snprintf(text, sizeof text,
                        "baton-test v=%" PRIu64 " b=%zu n=%zu sum=%016" PRIx64,
                        version, index, blocks, sum);
  std::string header(text, static_cast<std::size_t>(n));
  header.resize(k_header_size - 1, ' ');
  header += '\n';
  return header;
}

}  // namespace

std::string make_version_content(std::uint64_t version, std::size_t blocks) {
  std::string data(blocks * k_block_size, '\0');
  std::uint64_t sum = k_hash_start;
  for (std::size_t i = 0; i < blocks; ++i) {
    char* payload = data.data() + i * k_block_size + k_header_size;
    fill_payload(payload, k_payload_size, block_seed(version, i));
    sum = checksum(std::string_view(payload, k_payload_size), sum);
  }
  for (std::size_t i = 0; i < blocks; ++i) {
    std::string header = header_text(version, i, blocks, sum);
    std::memcpy(data.data() + i * k_block_size, header.data(), k_header_size);
  }
  return data;
}

ContentCheck check_version_content(std::string_view data) {
  ContentCheck result;
  if (data.size() < k_block_size) {
    result.error = "only " + std::to_string(data.size()) + " bytes";
    return result;
  }
  std::uint64_t first_version = 0, first_sum = 0;
  std::size_t first_blocks = 0;
  std::uint64_t sum = k_hash_start;
  const std::size_t present = data.size() / k_block_size;
  for (std::size_t i = 0; i < present; ++i) {
    std::string header(data.substr(i * k_block_size, k_header_size));
    unsigned long long version = 0, file_sum = 0;
    std::size_t index = 0, blocks = 0;
    if (std::sscanf(header.c_str(), "baton-test v=%llu b=%zu n=%zu sum=%llx",
                    &version, &index, &blocks, &file_sum) != 4) {
      result.error = "block " + std::to_string(i) + " has no header";
      return result;
    }
    if (i == 0) {
      first_version = version;
      first_blocks = blocks;
      first_sum = file_sum;
    } else if (version != first_version || blocks != first_blocks ||
               file_sum != first_sum) {
      result.error = "torn: block 0 is version " +
                     std::to_string(first_version) + ", block " +
                     std::to_string(i) + " is version " +
                     std::to_string(version);
      return result;
    }
    if (index != i) {
      result.error = "block " + std::to_string(i) + " says it is block " +
                     std::to_string(index);
      return result;
    }
    sum = checksum(
        data.substr(i * k_block_size + k_header_size, k_payload_size), sum);
  }
  if (data.size() != first_blocks * k_block_size) {
    result.error = "version " + std::to_string(first_version) + " has " +
                   std::to_string(data.size()) + " bytes, not " +
                   std::to_string(first_blocks * k_block_size);
    return result;
  }
  if (sum != first_sum) {
    result.error = "version " + std::to_string(first_version) +
                   ": payload checksum mismatch";
    return result;
  }
  result.whole = true;
  result.version = first_version;
  return result;
}

std::string make_item_content(std::uint64_t index, std::size_t size) {
  if (size < k_item_header_size) size = k_item_header_size;
  std::string data(size, '\0');
  fill_payload(data.data() + k_item_header_size, size - k_item_header_size,
               index ^ 0xA5A5A5A5ull);
  std::uint64_t sum =
      checksum(std::string_view(data).substr(k_item_header_size), k_hash_start);
  char text[k_item_header_size + 1];
  int n = std::snprintf(text, sizeof text,
                        "baton-item i=%" PRIu64 " size=%zu sum=%016" PRIx64,
                        index, size, sum);
  std::string header(text, static_cast<std::size_t>(n));
  header.resize(k_item_header_size - 1, ' ');
  header += '\n';
  std::memcpy(data.data(), header.data(), k_item_header_size);
  return data;
}

ContentCheck check_item_content(std::string_view data) {
  ContentCheck result;
  if (data.size() < k_item_header_size) {
    result.error = "item of only " + std::to_string(data.size()) + " bytes";
    return result;
  }
  std::string header(data.substr(0, k_item_header_size));
  unsigned long long index = 0, sum = 0;
  std::size_t size = 0;
  if (std::sscanf(header.c_str(), "baton-item i=%llu size=%zu sum=%llx", &index,
                  &size, &sum) != 3) {
    result.error = "item has no header";
    return result;
  }
  if (size != data.size()) {
    result.error = "item " + std::to_string(index) + " has " +
                   std::to_string(data.size()) + " bytes, not " +
                   std::to_string(size);
    return result;
  }
  if (checksum(data.substr(k_item_header_size), k_hash_start) != sum) {
    result.error = "item " + std::to_string(index) + ": checksum mismatch";
    return result;
  }
  result.whole = true;
  result.version = index;
  return result;
}

bool read_all(int fd, std::string& out) {
  out.clear();
  char buffer[65536];
  off_t offset = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buffer, sizeof buffer, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    out.append(buffer, static_cast<std::size_t>(n));
    offset += n;
  }
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace baton::test
