#include "daemon/backlog.hpp"

#include <sys/stat.h>

namespace baton::daemon {

bool Backlog::stale(Clock::time_point now, Clock::duration rescan_after) const {
  return m_names.empty() || !m_listed_at || now - *m_listed_at >= rescan_after;
}

bool Backlog::needs_listing(Clock::time_point now, Clock::duration rescan_after) const {
  std::lock_guard lock(m_mutex);
  return stale(now, rescan_after);
}

std::optional<std::string> Backlog::take(Clock::time_point now, Clock::duration rescan_after,
                                         const Lister& list, bool may_list) {
  std::unique_lock lock(m_mutex);
  if (may_list && stale(now, rescan_after)) {
    // Not under the mutex: the loop thread takes it too, and a listing on a
    // sick NFS server may take seconds. Two claims may then list at once,
    // which only costs the work.
    lock.unlock();
    std::vector<std::string> names = list();
    lock.lock();
    m_names = std::set<std::string>(names.begin(), names.end());
    m_listed_at = now;
  }
  if (m_names.empty()) return std::nullopt;
  auto oldest = m_names.begin();
  std::string name = *oldest;
  m_names.erase(oldest);
  return name;
}

void Backlog::put_back(const std::string& name) {
  std::lock_guard lock(m_mutex);
  m_names.insert(name);
}

std::shared_ptr<Backlog> Backlogs::of(const std::string& path, int new_dir) {
  struct stat info{};
  ::fstat(new_dir, &info);  // on failure all zero: never matches a real one
  const dev_t dev = info.st_dev;
  const ino_t ino = info.st_ino;
  std::lock_guard lock(m_mutex);
  std::shared_ptr<Backlog>& backlog = m_by_path[path];
  if (!backlog || !backlog->is(dev, ino)) backlog = std::make_shared<Backlog>(dev, ino);
  return backlog;
}

std::shared_ptr<Backlog> Backlogs::find(const std::string& path) const {
  std::lock_guard lock(m_mutex);
  auto it = m_by_path.find(path);
  return it == m_by_path.end() ? nullptr : it->second;
}

void Backlogs::forget(const std::string& path, const std::shared_ptr<Backlog>& backlog) {
  std::lock_guard lock(m_mutex);
  auto it = m_by_path.find(path);
  if (it != m_by_path.end() && it->second == backlog) m_by_path.erase(it);
}

std::size_t Backlogs::size() const {
  std::lock_guard lock(m_mutex);
  return m_by_path.size();
}

}  // namespace baton::daemon
