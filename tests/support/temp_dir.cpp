#include "tests/support/temp_dir.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <vector>

namespace baton::test {

TempDir::TempDir(std::string_view prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string pattern =
      (base && *base ? std::string(base) : std::string("/tmp")) + "/" +
      std::string(prefix) + ".XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (!::mkdtemp(buffer.data()))
    throw std::system_error(errno, std::system_category(),
                            "mkdtemp " + pattern);
  m_path = buffer.data();
}

TempDir::~TempDir() {
  const char* keep = std::getenv("BATON_TEST_KEEP");
  if (keep && *keep) {
    std::fprintf(stderr, "BATON_TEST_KEEP: keeping %s\n", m_path.c_str());
    return;
  }
  remove_tree(m_path);
}

std::string TempDir::file(std::string_view name) const {
  return m_path + "/" + std::string(name);
}

std::string TempDir::make_dir(std::string_view name) const {
  std::string dir = file(name);
  std::filesystem::create_directories(dir);
  return dir;
}

void remove_tree(const std::string& path) {
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
}

}  // namespace baton::test
