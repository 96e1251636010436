#include "daemon/change_notifier.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace baton::daemon {
namespace {

namespace asio = boost::asio;
using boost::asio::experimental::awaitable_operators::operator||;
constexpr auto k_tuple = asio::as_tuple(asio::use_awaitable);

}  // namespace

ChangeNotifier::ChangeNotifier(asio::any_io_executor executor, const std::string& watch_dir,
                               std::chrono::milliseconds poll_interval)
    : m_inotify(executor), m_changed(executor), m_poll_interval(poll_interval) {
  m_changed.expires_at(std::chrono::steady_clock::time_point::max());
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    spdlog::warn("inotify unavailable ({}): waits rely on polling only", std::strerror(errno));
    return;
  }
  if (::inotify_add_watch(fd, watch_dir.c_str(),
                          IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO) < 0) {
    spdlog::warn("cannot watch {} ({}): waits rely on polling only", watch_dir,
                 std::strerror(errno));
    ::close(fd);
    return;
  }
  m_inotify.assign(fd);
}

asio::awaitable<void> ChangeNotifier::run() {
  if (!m_inotify.is_open()) co_return;
  alignas(inotify_event) char events[4096];
  for (;;) {
    auto [ec, size] = co_await m_inotify.async_read_some(asio::buffer(events), k_tuple);
    if (ec) break;
    (void)size;  // which record changed does not matter: every waiter re-checks
    ++m_generation;
    m_changed.cancel();
  }
}

bool ChangeNotifier::watch(const std::string& dir) {
  if (!m_inotify.is_open() || m_watched.size() >= 4096 || m_watched.contains(dir)) return false;
  if (::inotify_add_watch(m_inotify.native_handle(), dir.c_str(),
                          IN_MOVED_TO | IN_CREATE | IN_CLOSE_WRITE) < 0)
    return false;  // not there yet: tried again on the next wait
  m_watched.insert(dir);
  return true;
}

void ChangeNotifier::stop() {
  boost::system::error_code ignored;
  m_inotify.close(ignored);
  m_changed.cancel();
}

asio::awaitable<void> ChangeNotifier::wait_for_change(
    std::optional<std::chrono::steady_clock::time_point> deadline,
    std::optional<std::uint64_t> seen) {
  if (seen && *seen != m_generation) co_return;
  auto until = std::chrono::steady_clock::now() + m_poll_interval;
  if (deadline && *deadline < until) until = *deadline;
  asio::steady_timer poll(m_changed.get_executor(), until);
  co_await (m_changed.async_wait(k_tuple) || poll.async_wait(k_tuple));
}

}  // namespace baton::daemon
