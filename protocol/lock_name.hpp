// The lock name grammar, shared by the daemon and its clients so both refuse
// the same names with the same words.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace baton::protocol {

inline constexpr std::size_t k_max_lock_name = 200;

// Empty when NAME is valid, else one line saying what is wrong with it.
std::string check_lock_name(std::string_view name);

// The lock file's name under <root>/.baton/locks/: one flat directory, '/'
// spelled '+' (not in the grammar, so the mapping is one-to-one), ".lock"
// appended. Requires a valid name.
std::string lock_file_name(std::string_view name);

// The inverse of lock_file_name; empty when FILE is not a lock file name.
std::string lock_name_from_file(std::string_view file);

}  // namespace baton::protocol
