#include "daemon/lock_table.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "protocol/lock_name.hpp"
#include "protocol/messages.hpp"

namespace baton::daemon {
namespace {

namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;

constexpr std::size_t k_status_scan_limit = 1000;

std::chrono::microseconds since(SteadyClock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - start);
}

std::string describe_duration(std::chrono::microseconds us) {
  char text[32];
  if (us.count() < 1000)
    std::snprintf(text, sizeof text, "%lldus", static_cast<long long>(us.count()));
  else if (us.count() < 10'000'000)
    std::snprintf(text, sizeof text, "%.1fms", static_cast<double>(us.count()) / 1e3);
  else
    std::snprintf(text, sizeof text, "%.1fs", static_cast<double>(us.count()) / 1e6);
  return text;
}

Acquired failure(errc code, std::string message) {
  Acquired outcome;
  outcome.error = make_error_code(code);
  outcome.message = std::move(message);
  return outcome;
}

}  // namespace

std::string ClientInfo::describe() const {
  return "pid " + std::to_string(pid) + " uid " + std::to_string(uid) +
         " session " + std::to_string(session);
}

struct LockTable::Waiter {
  Waiter(asio::any_io_executor executor, LockClient& c, LockMode m, bool try_once)
      : client(&c), mode(m), try_only(try_once), wake(executor) {}
  LockClient* client;
  LockMode mode;
  bool try_only;
  SteadyClock::time_point queued_at = SteadyClock::now();
  SystemClock::time_point queued_wall = SystemClock::now();
  asio::steady_timer wake;  // cancelled when `outcome` is set
  std::optional<Acquired> outcome;
  std::function<void(const QueuedNotice&)> on_queued;
};

struct LockTable::Hold {
  LockClient* client;
  LockMode mode;
  std::uint64_t token;
  SystemClock::time_point since_wall;
  SteadyClock::time_point since;
};

struct LockTable::Entry {
  explicit Entry(std::uint64_t instance) : tokens(instance) {}
  std::string name;
  std::string file_name;
  std::shared_ptr<LockFile> file;
  std::optional<LockMode> held;  // the OFD lock this daemon holds on `file`
  bool tokens_checked = false;   // token record read since `held` was taken
  std::vector<Hold> holders;
  std::deque<std::shared_ptr<Waiter>> queue;
  bool pumping = false;
  std::shared_ptr<LockWaiter> file_wait;  // blocking wait in progress
  bool yielded = false;  // released for another pod: next wait is polite
  // Local grants since the file lock was taken, counted against
  // --max-local-handovers: exclusive hand-overs and readers joining readers.
  unsigned handovers = 0;
  // Another pod waits: no reader joins until the holders drained and the
  // file lock went to that pod (overlapping readers would starve it).
  bool draining_for_remote = false;
  TokenAllocator tokens;

  bool idle() const {
    return holders.empty() && queue.empty() && !held && !file_wait && !pumping;
  }
};

LockTable::LockTable(asio::any_io_executor executor, int locks_dir_fd,
                     std::string locks_dir_path, Offload& offload,
                     LockTableConfig config)
    : m_executor(std::move(executor)),
      m_dir_fd(locks_dir_fd),
      m_dir_path(std::move(locks_dir_path)),
      m_offload(offload),
      m_config(std::move(config)) {
  auto json_string = [](const std::string& text) {
    return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  m_holder_prefix = "{\"pod\":" + json_string(m_config.pod) +
                    ",\"node\":" + json_string(m_config.node) + ",";
}

LockTable::~LockTable() {
  for (auto& [name, entry] : m_entries)
    if (entry->file_wait) entry->file_wait->cancel();
}

LockTable::EntryPtr LockTable::find_or_create(const std::string& name) {
  auto it = m_entries.find(name);
  if (it != m_entries.end()) return it->second;
  auto entry = std::make_shared<Entry>(m_config.instance_id);
  entry->name = name;
  entry->file_name = protocol::lock_file_name(name);
  m_entries.emplace(name, entry);
  return entry;
}

asio::awaitable<Acquired> LockTable::acquire(
    LockClient& client, const std::string& name, LockMode mode,
    std::optional<std::chrono::milliseconds> timeout,
    std::function<void(const QueuedNotice&)> on_queued) {
  if (!m_granting) co_return failure(errc::shutting_down, "daemon is shutting down");
  const bool try_only = timeout && timeout->count() == 0;
  EntryPtr entry = find_or_create(name);
  // FIFO: a request that cannot wait never jumps the queue.
  if (try_only && !entry->queue.empty())
    co_return failure(errc::busy, "lock '" + name + "' is busy");

  auto waiter = std::make_shared<Waiter>(m_executor, client, mode, try_only);
  waiter->on_queued = std::move(on_queued);
  if (timeout && !try_only)
    waiter->wake.expires_after(*timeout);
  else
    waiter->wake.expires_at(SteadyClock::time_point::max());
  entry->queue.push_back(waiter);
  // Tell a newcomer at once when local holders or earlier waiters are ahead.
  const bool behind_others = entry->queue.size() > 1 ||
      (!entry->holders.empty() &&
       !(mode == LockMode::shared && entry->held == LockMode::shared));
  if (behind_others && !try_only) tell_queued(*entry, *waiter, entry->queue.size());
  schedule_pump(entry);

  if (!waiter->outcome) co_await waiter->wake.async_wait(asio::as_tuple(asio::use_awaitable));
  if (!waiter->outcome) {
    remove_waiter(entry, waiter);
    co_return failure(errc::timed_out,
                      "timed out after " + describe_duration(since(waiter->queued_at)) +
                          " waiting for lock '" + name + "'");
  }
  co_return std::move(*waiter->outcome);
}

void LockTable::tell_queued(const Entry& entry, Waiter& waiter, std::size_t position) {
  if (!waiter.on_queued) return;  // told already, or nobody asked
  QueuedNotice notice{position, std::nullopt};
  if (!entry.holders.empty()) {
    const Hold& hold = entry.holders.front();
    notice.holder = Holder{m_config.pod, m_config.node, hold.client->client_info().pid,
                           hold.mode, hold.token, hold.since_wall, true};
  }
  std::exchange(waiter.on_queued, nullptr)(notice);
}

void LockTable::finish(const std::shared_ptr<Waiter>& waiter, Acquired outcome) {
  waiter->outcome = std::move(outcome);
  waiter->wake.cancel();
}

void LockTable::remove_waiter(const EntryPtr& entry, const std::shared_ptr<Waiter>& waiter) {
  auto it = std::find(entry->queue.begin(), entry->queue.end(), waiter);
  if (it == entry->queue.end()) return;
  entry->queue.erase(it);
  // The file wait was for the old head: stop it if nobody wants that mode.
  if (entry->file_wait &&
      (entry->queue.empty() || entry->queue.front()->mode != entry->file_wait->mode()))
    entry->file_wait->cancel();
  schedule_pump(entry);
}

std::optional<Acquired> LockTable::acquire_now(LockClient& client, const std::string& name,
                                               LockMode mode) {
  if (!m_granting || !m_offload.inline_quick_calls()) return std::nullopt;
  EntryPtr entry = find_or_create(name);
  Entry& e = *entry;
  if (!e.queue.empty() || e.pumping || e.file_wait || e.yielded) return std::nullopt;
  if (!e.holders.empty()) {
    // Joining shared holders needs no file call and no token. Past the
    // hand-over bound, pump() first asks whether another pod waits.
    if (mode != LockMode::shared || e.held != LockMode::shared) return std::nullopt;
    if (e.draining_for_remote || e.handovers >= m_config.max_local_handovers)
      return std::nullopt;
    ++e.handovers;
    add_holder(e, client, mode, 0, {});
    return Acquired{};
  }
  if (e.held && *e.held != mode) return std::nullopt;
  if (!e.held) {
    if (!e.file) {
      std::error_code ec;
      auto opened = LockFile::open(m_dir_fd, e.file_name, m_dir_path + "/" + e.file_name,
                                   m_config.uncached_reads, ec);
      if (!opened) return std::nullopt;  // acquire() reports the error
      e.file = std::move(opened);
    }
    // Another pod waits: leave the contest to acquire(), which keeps the
    // hand-overs fair. Only the fast path asks, to spare the uncontended.
    std::error_code ec;
    if (e.file->others_waiting(ec) || ec) return std::nullopt;
    if (e.file->try_lock(mode)) return std::nullopt;
    e.held = mode;
    e.handovers = 0;
    e.tokens_checked = false;
  }
  // From here on the file lock is ours; bailing out leaves a state that
  // pump() continues from (held, nobody holding, nobody queued).
  std::uint64_t token = 0;
  if (mode == LockMode::exclusive) {
    if (!e.tokens_checked) {
      std::error_code ec;
      TokenRecord record = e.file->read_tokens(ec);
      if (ec) return std::nullopt;
      e.tokens.observe(record);
      e.tokens_checked = true;
    }
    if (e.tokens.needs_reservation()) return std::nullopt;  // an fsync: not inline
  }
  if (mode == LockMode::exclusive) token = e.tokens.take();
  if (e.file->write_holder(holder_record(client.client_info(), mode, token))) {
    // Nobody holds it yet: give the file up and let acquire() meet the error.
    unlock_file_now(entry);
    return std::nullopt;
  }
  add_holder(e, client, mode, token, {});
  Acquired granted;
  granted.token = token;
  return granted;
}

void LockTable::add_holder(Entry& e, LockClient& client, LockMode mode, std::uint64_t token,
                           std::chrono::microseconds waited) {
  e.holders.push_back(Hold{&client, mode, token, SystemClock::now(), SteadyClock::now()});
  if (spdlog::should_log(spdlog::level::info))
    spdlog::info("grant '{}' ({}) to {} after waiting {} (token {})", e.name,
                 protocol::lock_mode_name(mode), client.client_info().describe(),
                 describe_duration(waited), token);
}

std::error_code LockTable::release(LockClient& client, const std::string& name) {
  auto it = m_entries.find(name);
  if (it == m_entries.end()) return make_error_code(errc::not_held);
  EntryPtr entry = it->second;
  auto hold = std::find_if(entry->holders.begin(), entry->holders.end(),
                           [&](const Hold& h) { return h.client == &client; });
  if (hold == entry->holders.end()) return make_error_code(errc::not_held);
  if (spdlog::should_log(spdlog::level::info))
    spdlog::info("release '{}' by {} after holding {} (token {})", name,
                 client.client_info().describe(), describe_duration(since(hold->since)),
                 hold->token);
  entry->holders.erase(hold);
  if (!entry->holders.empty()) return {};
  // Nobody else here wants it: give the file lock back at once, so another
  // pod's waiter is not kept waiting for a coroutine hop.
  if (entry->queue.empty() && !entry->pumping && !entry->file_wait &&
      m_offload.inline_quick_calls()) {
    unlock_file_now(entry);
    forget_if_idle(entry);
  } else {
    schedule_pump(entry);
  }
  return {};
}

void LockTable::unlock_file_now(const EntryPtr& entry) {
  auto file = entry->file;
  entry->held.reset();
  entry->draining_for_remote = false;
  entry->tokens_checked = false;
  if (!file) return;
  if (std::error_code ec = file->unlock()) {
    // The lock is gone either way once the descriptor closes.
    spdlog::warn("lock '{}': unlocking {}: {}", entry->name, file->path(), ec.message());
    if (entry->file == file) entry->file.reset();
  }
}

void LockTable::release_all(LockClient& client) {
  std::vector<std::string> held;
  for (auto& [name, entry] : m_entries) {
    for (auto& waiter : std::vector(entry->queue.begin(), entry->queue.end())) {
      if (waiter->client != &client) continue;
      finish(waiter, failure(errc::connection_lost, "client went away"));
      remove_waiter(entry, waiter);
    }
    for (const Hold& hold : entry->holders)
      if (hold.client == &client) held.push_back(name);
  }
  for (const auto& name : held) release(client, name);
}

bool LockTable::involves(const LockClient& client, const std::string& name) const {
  auto it = m_entries.find(name);
  if (it == m_entries.end()) return false;
  const Entry& entry = *it->second;
  return std::any_of(entry.holders.begin(), entry.holders.end(),
                     [&](const Hold& h) { return h.client == &client; }) ||
         std::any_of(entry.queue.begin(), entry.queue.end(),
                     [&](const auto& w) { return w->client == &client; });
}

void LockTable::schedule_pump(const EntryPtr& entry) {
  if (entry->pumping) return;
  entry->pumping = true;
  asio::co_spawn(m_executor, pump(entry), [name = entry->name](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& error) {
      spdlog::error("lock '{}': internal error: {}", name, error.what());
    }
  });
}

// The one place that moves a lock forward: grants to the head of the queue,
// hands over locally, releases or contends for the file lock. It runs until
// nothing more can happen without an outside event, which reschedules it.
asio::awaitable<void> LockTable::pump(EntryPtr entry) {
  Entry& e = *entry;
  for (;;) {
    if (e.queue.empty()) {
      if (e.holders.empty() && e.held) {
        co_await release_file(entry);
        continue;
      }
      break;
    }
    std::shared_ptr<Waiter> head = e.queue.front();

    if (!e.holders.empty()) {
      if (e.held == LockMode::shared && head->mode == LockMode::shared) {
        if (e.draining_for_remote) {  // the readers release first
          tell_queued(e, *head, 1);
          break;
        }
        if (++e.handovers > m_config.max_local_handovers) {
          if (co_await others_waiting(e)) {
            e.draining_for_remote = true;
            continue;
          }
          e.handovers = 0;
        }
        co_await grant(entry, head);
        continue;
      }
      if (head->try_only) {
        e.queue.pop_front();
        finish(head, failure(errc::busy, "lock '" + e.name + "' is busy"));
        continue;
      }
      break;  // the holders release first
    }

    if (e.held) {
      if (*e.held != head->mode) {
        // Never convert a held lock: two daemons converting shared to
        // exclusive at once would deadlock (OFD locks detect no deadlocks).
        co_await release_file(entry);
        continue;
      }
      if (e.draining_for_remote || ++e.handovers > m_config.max_local_handovers) {
        e.handovers = 0;
        e.draining_for_remote = false;
        if (co_await others_waiting(e)) {
          spdlog::debug("lock '{}': another pod waits, handing it over", e.name);
          co_await release_file(entry);
          e.yielded = true;
          continue;
        }
      }
      co_await grant(entry, head);
      continue;
    }

    // Nothing held here: contend for the file lock.
    if (e.file_wait) break;  // in progress; its completion pumps again
    if (!e.file) {
      std::string path = m_dir_path + "/" + e.file_name;
      int dir = m_dir_fd;
      const bool uncached = m_config.uncached_reads;
      std::string file_name = e.file_name;
      auto [file, ec] = co_await m_offload.quick([&] {
        std::error_code error;
        auto opened = LockFile::open(dir, file_name, path, uncached, error);
        return std::pair{std::shared_ptr<LockFile>(std::move(opened)), error};
      });
      if (ec) {
        spdlog::error("lock '{}': cannot open {}: {}", e.name, path, ec.message());
        if (!e.queue.empty() && e.queue.front() == head) {
          e.queue.pop_front();
          finish(head, failure(errc::io_error, "cannot open lock file " + path + ": " +
                                                   ec.message()));
        }
        continue;
      }
      if (!e.file) e.file = std::move(file);
      continue;  // re-evaluate: the queue may have changed meanwhile
    }
    if (!e.yielded) {
      auto file = e.file;
      LockMode mode = head->mode;
      std::error_code ec = co_await m_offload.quick([&] { return file->try_lock(mode); });
      if (!ec) {
        e.held = mode;
        e.handovers = 0;
        e.tokens_checked = false;
        continue;
      }
      if (ec != errc::busy) {
        spdlog::error("lock '{}': {}: {}", e.name, e.file->path(), ec.message());
        if (!e.queue.empty() && e.queue.front() == head) {
          e.queue.pop_front();
          finish(head, failure(errc::io_error, "lock file " + e.file->path() + ": " +
                                                   ec.message()));
        }
        continue;
      }
    }
    if (e.queue.empty() || e.queue.front() != head) continue;
    if (head->try_only) {
      e.queue.pop_front();
      finish(head, failure(errc::busy, "lock '" + e.name + "' is held by another pod"));
      continue;
    }
    if (head->on_queued) {
      auto notify = std::exchange(head->on_queued, nullptr);
      // Not `QueuedNotice{1, co_await ...}`: g++ 12 miscompiles a co_await
      // inside an aggregate initializer (the member is destroyed twice).
      std::optional<Holder> holder = co_await current_holder(entry);
      QueuedNotice notice;
      notice.position = 1;
      notice.holder = std::move(holder);
      notify(notice);
      if (e.held || e.file_wait || e.queue.empty() || e.queue.front() != head) continue;
    }
    start_file_wait(entry, head->mode);
    break;
  }
  e.pumping = false;
  forget_if_idle(entry);
}

void LockTable::start_file_wait(const EntryPtr& entry, LockMode mode) {
  const bool polite = std::exchange(entry->yielded, false);
  std::weak_ptr<Entry> weak = entry;
  entry->file_wait = LockWaiter::start(
      m_executor, entry->file, mode, polite, [this, weak, mode](std::error_code ec) {
        if (auto strong = weak.lock()) on_file_wait_done(strong, mode, ec);
      });
}

void LockTable::on_file_wait_done(const EntryPtr& entry, LockMode mode, std::error_code ec) {
  entry->file_wait.reset();
  if (!ec) {
    entry->held = mode;
    entry->handovers = 0;
    entry->tokens_checked = false;
  } else if (ec != std::errc::operation_canceled) {
    spdlog::error("lock '{}': waiting on {}: {}", entry->name,
                  entry->file ? entry->file->path() : m_dir_path, ec.message());
    if (!entry->queue.empty() && entry->queue.front()->mode == mode) {
      auto head = entry->queue.front();
      entry->queue.pop_front();
      finish(head, failure(errc::io_error, "waiting for lock '" + entry->name +
                                               "': " + ec.message()));
    }
  }
  schedule_pump(entry);
}

asio::awaitable<bool> LockTable::grant(EntryPtr entry, std::shared_ptr<Waiter> waiter) {
  Entry& e = *entry;
  auto file = e.file;
  std::uint64_t token = 0;
  if (waiter->mode == LockMode::exclusive) {
    if (!e.tokens_checked) {
      auto [record, ec] = co_await m_offload.quick([&] {
        std::error_code error;
        TokenRecord r = file->read_tokens(error);
        return std::pair{r, error};
      });
      if (ec) {
        fail_grant(entry, waiter, "reading " + file->path() + ": " + ec.message());
        co_return false;
      }
      e.tokens.observe(record);
      e.tokens_checked = true;
    }
    if (e.tokens.needs_reservation()) {
      TokenRecord record = e.tokens.next_reservation(TokenAllocator::wall_clock_us());
      std::error_code ec = co_await m_offload.slow(
          [&] { return file->write_tokens(record, /*sync=*/true); });
      if (ec) {
        fail_grant(entry, waiter, "writing " + file->path() + ": " + ec.message());
        co_return false;
      }
      e.tokens.reserved(record);
    }
    token = e.tokens.take();
  }
  // The waiter may have timed out or left while we were writing.
  if (e.queue.empty() || e.queue.front() != waiter || e.file != file) co_return false;

  std::string record = holder_record(waiter->client->client_info(), waiter->mode, token);
  std::error_code ec = co_await m_offload.quick([&] { return file->write_holder(record); });
  if (ec) {
    fail_grant(entry, waiter, "writing " + file->path() + ": " + ec.message());
    co_return false;
  }
  if (e.queue.empty() || e.queue.front() != waiter || e.file != file) co_return false;

  e.queue.pop_front();
  Acquired granted;
  granted.token = token;
  granted.waited = since(waiter->queued_at);
  add_holder(e, *waiter->client, waiter->mode, token, granted.waited);
  finish(waiter, std::move(granted));
  co_return true;
}

asio::awaitable<bool> LockTable::others_waiting(Entry& entry) {
  auto file = entry.file;
  if (!file) co_return false;
  co_return co_await m_offload.quick([&] {
    std::error_code ec;
    return file->others_waiting(ec);
  });
}

asio::awaitable<void> LockTable::release_file(EntryPtr entry) {
  auto file = entry->file;
  entry->held.reset();
  entry->draining_for_remote = false;
  entry->tokens_checked = false;
  if (!file) co_return;
  std::error_code ec = co_await m_offload.quick([&] { return file->unlock(); });
  if (ec) {
    // The lock is gone either way once the descriptor closes.
    spdlog::warn("lock '{}': unlocking {}: {}", entry->name, file->path(), ec.message());
    if (entry->file == file) entry->file.reset();
  }
}

asio::awaitable<std::optional<Holder>> LockTable::current_holder(EntryPtr entry) {
  if (!entry->holders.empty()) {
    const Hold& hold = entry->holders.front();
    co_return Holder{m_config.pod, m_config.node, hold.client->client_info().pid,
                     hold.mode, hold.token, hold.since_wall, true};
  }
  auto file = entry->file;
  if (!file) co_return std::nullopt;
  std::string text = co_await m_offload.quick([&] {
    std::error_code ec;
    return file->read_holder(ec);
  });
  auto record = nlohmann::json::parse(text, nullptr, false);
  if (record.is_discarded() || !record.is_object()) co_return std::nullopt;
  Holder holder = record.get<Holder>();
  holder.local = false;
  co_return holder;
}

// The fields of `Holder` as its from_json reads them, less "local". Written
// by hand around the pre-encoded pod and node: once per grant, and a JSON
// document built and dumped would cost more than the write itself.
std::string LockTable::holder_record(const ClientInfo& client, LockMode mode,
                                     std::uint64_t token) const {
  const auto since_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            SystemClock::now().time_since_epoch())
                            .count();
  return fmt::format("{}\"pid\":{},\"mode\":\"{}\",\"token\":{},\"since_ms\":{}}}",
                     m_holder_prefix, client.pid, protocol::lock_mode_name(mode), token,
                     since_ms);
}

void LockTable::lose(const EntryPtr& entry, const std::string& why) {
  spdlog::error("lock '{}' lost: {}", entry->name, why);
  auto holders = std::move(entry->holders);
  entry->holders.clear();
  for (const Hold& hold : holders) hold.client->lock_lost(entry->name, hold.token, why);
  // Close the descriptor: whatever lock it still has is not to be trusted,
  // and the next acquisition starts from a freshly opened file.
  entry->file.reset();
  entry->held.reset();
  entry->tokens_checked = false;
  schedule_pump(entry);
}

// An I/O error while granting: the file can no longer be trusted, so
// whoever holds through it loses it, and the waiter gets the error rather
// than a retry loop against a failing file.
void LockTable::fail_grant(const EntryPtr& entry, const std::shared_ptr<Waiter>& waiter,
                           const std::string& why) {
  if (!entry->queue.empty() && entry->queue.front() == waiter) {
    entry->queue.pop_front();
    finish(waiter, failure(errc::io_error, "lock '" + entry->name + "': " + why));
  }
  lose(entry, why);
}

void LockTable::forget_if_idle(const EntryPtr& entry) {
  if (!entry->idle() || m_entries.size() <= m_config.max_idle_files) return;
  m_entries.erase(entry->name);
}

asio::awaitable<void> LockTable::verify_held() {
  std::vector<EntryPtr> held;
  for (auto& [name, entry] : m_entries)
    if (entry->held && entry->file && !entry->pumping) held.push_back(entry);
  for (const EntryPtr& entry : held) {
    auto file = entry->file;
    if (!file || !entry->held) continue;
    LockMode mode = *entry->held;
    int dir = m_dir_fd;
    std::string file_name = entry->file_name;
    std::error_code ec = co_await m_offload.quick(
        [&] { return file->verify(dir, file_name, mode); });
    // Only judge the state we checked; it may have moved on meanwhile.
    if (!ec || entry->file != file || entry->held != mode) continue;
    lose(entry, ec == errc::busy
                    ? "lock file " + file->path() + " is locked by another pod"
                    : "lock file " + file->path() + ": " + ec.message());
  }
}

void LockTable::stop_granting() {
  m_granting = false;
  for (auto& [name, entry] : m_entries) {
    for (auto& waiter : std::vector(entry->queue.begin(), entry->queue.end())) {
      finish(waiter, failure(errc::shutting_down, "daemon is shutting down"));
      remove_waiter(entry, waiter);
    }
  }
}

void LockTable::revoke_all(const std::string& why) {
  for (auto& [name, entry] : m_entries) {
    if (entry->file_wait) entry->file_wait->cancel();
    if (!entry->holders.empty()) lose(entry, why);
  }
}

bool LockTable::has_holders() const {
  return std::any_of(m_entries.begin(), m_entries.end(),
                     [](const auto& item) { return !item.second->holders.empty(); });
}

asio::awaitable<std::vector<LockStatus>> LockTable::status() {
  std::vector<LockStatus> locks;
  for (auto& [name, entry] : m_entries) {
    if (entry->holders.empty() && entry->queue.empty()) continue;
    LockStatus lock;
    lock.name = name;
    for (const Hold& hold : entry->holders)
      lock.holders.push_back(Holder{m_config.pod, m_config.node,
                                    hold.client->client_info().pid, hold.mode,
                                    hold.token, hold.since_wall, true});
    for (const auto& waiter : entry->queue)
      lock.waiters.push_back(Holder{m_config.pod, m_config.node,
                                    waiter->client->client_info().pid, waiter->mode, 0,
                                    waiter->queued_wall, true});
    locks.push_back(std::move(lock));
  }
  std::vector<std::string> local_names;
  for (auto& [name, entry] : m_entries)
    if (entry->held) local_names.push_back(name);

  // Other pods: every lock file someone else holds, with the record its
  // holder wrote. A directory scan, so off the loop.
  int dir = m_dir_fd;
  std::string dir_path = m_dir_path;
  const bool uncached = m_config.uncached_reads;
  auto remote = co_await m_offload.slow([&] {
    std::vector<LockStatus> found;
    int scan_fd = ::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (scan_fd < 0) return found;
    DIR* listing = ::fdopendir(scan_fd);
    if (!listing) {
      ::close(scan_fd);
      return found;
    }
    std::size_t scanned = 0;
    while (dirent* item = ::readdir(listing)) {
      if (++scanned > k_status_scan_limit) break;
      std::string name = protocol::lock_name_from_file(item->d_name);
      if (name.empty() ||
          std::find(local_names.begin(), local_names.end(), name) != local_names.end())
        continue;
      std::error_code ec;
      auto file = LockFile::open(dir, item->d_name, dir_path + "/" + item->d_name, uncached, ec);
      if (!file || !file->held_elsewhere(ec) || ec) continue;
      LockStatus lock;
      lock.name = name;
      auto record = nlohmann::json::parse(file->read_holder(ec), nullptr, false);
      if (record.is_object()) {
        Holder holder = record.get<Holder>();
        holder.local = false;
        lock.holders.push_back(holder);
      }
      found.push_back(std::move(lock));
    }
    ::closedir(listing);
    return found;
  });
  for (auto& lock : remote) {
    auto local = std::find_if(locks.begin(), locks.end(),
                              [&](const LockStatus& l) { return l.name == lock.name; });
    if (local == locks.end()) {
      locks.push_back(std::move(lock));
    } else if (local->holders.empty()) {
      local->holders = std::move(lock.holders);
    }
  }
  std::sort(locks.begin(), locks.end(),
            [](const LockStatus& a, const LockStatus& b) { return a.name < b.name; });
  co_return locks;
}

}  // namespace baton::daemon
