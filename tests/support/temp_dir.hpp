// A fresh directory for one test, removed with everything in it when the
// TempDir goes (kept, and its path printed, when BATON_TEST_KEEP is set).
#pragma once

#include <string>
#include <string_view>

namespace baton::test {

class TempDir {
 public:
  // mkdtemp under $TMPDIR (else /tmp), named PREFIX.XXXXXX. Throws
  // std::system_error. Keep PREFIX short: Unix socket paths inside it must
  // stay under 108 bytes.
  explicit TempDir(std::string_view prefix = "baton-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const noexcept { return m_path; }
  // PATH/NAME (not created).
  std::string file(std::string_view name) const;
  // Creates PATH/NAME as a directory (and its parents); returns its path.
  std::string make_dir(std::string_view name) const;

 private:
  std::string m_path;
};

// Removes PATH and everything under it; ignores what does not exist.
void remove_tree(const std::string& path);

}  // namespace baton::test
