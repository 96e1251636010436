#include "cli/time_format.hpp"

#include <cstdio>
#include <ctime>

namespace baton::cli {

std::string format_since(std::chrono::system_clock::time_point when,
                         std::chrono::system_clock::time_point now) {
  if (when.time_since_epoch().count() == 0) return {};
  std::time_t when_t = std::chrono::system_clock::to_time_t(when);
  std::time_t now_t = std::chrono::system_clock::to_time_t(now);
  std::tm when_tm{};
  std::tm now_tm{};
  if (!localtime_r(&when_t, &when_tm) || !localtime_r(&now_t, &now_tm))
    return {};
  bool today =
      when_tm.tm_year == now_tm.tm_year && when_tm.tm_yday == now_tm.tm_yday;
  char buffer[32];
  std::size_t length =
      std::strftime(buffer, sizeof buffer,
                    today ? "%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &when_tm);
  return std::string(buffer, length);
}

std::string format_seconds(std::chrono::milliseconds duration) {
  long long millis = duration.count();
  char buffer[32];
  int length = std::snprintf(buffer, sizeof buffer, "%lld", millis / 1000);
  std::string text(buffer, static_cast<std::size_t>(length));
  if (long long fraction = millis % 1000; fraction != 0) {
    std::snprintf(buffer, sizeof buffer, ".%03lld", fraction);
    text += buffer;
    while (text.back() == '0') text.pop_back();
  }
  return text;
}

}  // namespace baton::cli
