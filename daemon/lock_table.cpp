#include "daemon/lock_table.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
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

// Shared records list holders up to this size (a slot is 2048 bytes); the
// rest are counted in "more".
constexpr std::size_t k_shared_record_limit = 2000;
constexpr std::size_t k_max_more = 1000;

std::string instance_hex(std::uint64_t instance) {
  return fmt::format("{:016x}", instance);
}

// The holders a shared slot record names, unless it is daemon SKIP's own.
void parse_shared_record(const std::string& text, const std::string& skip,
                         std::vector<Holder>& out) {
  auto record = nlohmann::json::parse(text, nullptr, false);
  if (!record.is_object()) return;
  if (protocol::field(record, "daemon", std::string()) == skip) return;
  Holder base;
  base.pod = protocol::field(record, "pod", std::string());
  base.node = protocol::field(record, "node", std::string());
  base.mode = LockMode::shared;
  base.local = false;
  if (auto it = record.find("holders"); it != record.end() && it->is_array()) {
    for (const auto& item : *it) {
      if (!item.is_object()) continue;
      Holder holder = item.get<Holder>();
      holder.pod = base.pod;
      holder.node = base.node;
      holder.mode = LockMode::shared;
      holder.token = 0;
      holder.local = false;
      out.push_back(std::move(holder));
    }
  }
  // Holders that did not fit: shown without a pid.
  const auto more =
      std::min(protocol::field(record, "more", std::size_t{0}), k_max_more);
  for (std::size_t i = 0; i < more; ++i) out.push_back(base);
}

// Who holds FILE's lock in other daemons (not daemon SKIP): the exclusive
// holder's record, or the records of the live shared slots. May block.
std::vector<Holder> remote_holders(LockFile& file, const std::string& skip) {
  std::vector<Holder> holders;
  std::error_code ec;
  if (file.held_exclusively_elsewhere(ec)) {
    auto record = nlohmann::json::parse(file.read_holder(ec), nullptr, false);
    if (!ec && record.is_object()) {
      Holder holder = record.get<Holder>();
      holder.local = false;
      holders.push_back(std::move(holder));
    }
    return holders;
  }
  if (ec) return holders;
  for (const std::string& text : file.read_live_slots(ec))
    parse_shared_record(text, skip, holders);
  return holders;
}

}  // namespace

void ClientInfo::set_reported(ClientIdentity identity) {
  reported = std::move(identity);
  reported_json =
      reported.empty() ? "" : protocol::encode_client_identity(reported);
}

std::string ClientInfo::describe() const {
  std::string text = "pid " + std::to_string(pid) + " uid " +
                     std::to_string(uid) + " session " +
                     std::to_string(session);
  if (!reported.empty()) {
    text += " (reported";
    if (reported.pid > 0) text += " pid " + std::to_string(reported.pid);
    if (!reported.host.empty()) text += " host " + reported.host;
    if (!reported.program.empty()) text += " program " + reported.program;
    text += ')';
  }
  return text;
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
  // The slot of the file holding this daemon's shared record, while it has
  // shared holders (-1: none); the one to try first next time.
  int slot = -1;
  int slot_hint = 0;
  bool record_dirty = false;  // the shared record is to be rewritten

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
  entry->slot_hint = static_cast<int>(m_config.instance_id % 64);
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
    notice.holder = holder_of(hold.client->client_info(), hold.mode, hold.token,
                              hold.since_wall);
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
    // Other pods' status shows every holder: rewrite this pod's record.
    if (std::error_code ec = publish_shared_now(e, nullptr))
      spdlog::warn("lock '{}': writing the holder record to {}: {}", e.name,
                   e.file->path(), ec.message());
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
  if (mode == LockMode::exclusive ? e.file->write_holder(holder_record(
                                        client.client_info(), mode, token))
                                  : publish_shared_now(e, &client)) {
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
  if (!entry->holders.empty()) {
    if (entry->slot >= 0) {  // the record names the one that left
      if (m_offload.inline_quick_calls() && !entry->pumping) {
        if (std::error_code ec = publish_shared_now(*entry, nullptr))
          spdlog::warn("lock '{}': writing the holder record: {}", name,
                       ec.message());
      } else {
        entry->record_dirty = true;
        schedule_pump(entry);
      }
    }
    return {};
  }
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
  // The record first: a departed holder is never shown, even for a moment.
  release_slot_now(*entry);
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

bool LockTable::cancel(LockClient& client, const std::string& name) {
  auto it = m_entries.find(name);
  if (it == m_entries.end()) return false;
  EntryPtr entry = it->second;
  auto waiter = std::find_if(entry->queue.begin(), entry->queue.end(),
                             [&](const auto& w) { return w->client == &client; });
  if (waiter == entry->queue.end()) return false;
  std::shared_ptr<Waiter> withdrawn = *waiter;
  finish(withdrawn, failure(errc::cancelled, "lock request for '" + name + "' withdrawn"));
  remove_waiter(entry, withdrawn);
  return true;
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
    if (std::exchange(e.record_dirty, false) && e.slot >= 0 &&
        !e.holders.empty() && e.held == LockMode::shared) {
      if (std::error_code ec = co_await publish_shared(entry, nullptr))
        spdlog::warn("lock '{}': writing the holder record: {}", e.name,
                     ec.message());
      continue;
    }
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
      auto pool = m_offload.pool_executor();
      const bool close_on_pool = !m_offload.inline_quick_calls();
      auto [file, ec] = co_await m_offload.quick([&] {
        std::error_code error;
        auto opened = LockFile::open(dir, file_name, path, uncached, error);
        if (!opened || !close_on_pool)
          return std::pair{std::shared_ptr<LockFile>(std::move(opened)), error};
        // On a network root close(2) is a round trip too (a FUSE FLUSH the
        // kernel waits for uninterruptibly): whoever drops the last
        // reference, the descriptor is closed on the pool, never the loop.
        return std::pair{std::shared_ptr<LockFile>(opened.release(),
                                                   [pool](LockFile* f) {
                                                     asio::post(pool, [f] { delete f; });
                                                   }),
                         error};
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
  if (e.record_dirty) {  // a holder left while this pump was past its check
    schedule_pump(entry);
    co_return;
  }
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

  std::error_code ec;
  if (waiter->mode == LockMode::exclusive) {
    std::string record =
        holder_record(waiter->client->client_info(), waiter->mode, token);
    ec = co_await m_offload.quick([&] { return file->write_holder(record); });
  } else {
    // Shared: this daemon's slot, listing its holders and this one.
    ec = co_await publish_shared(entry, waiter->client);
  }
  if (ec) {
    fail_grant(entry, waiter, "writing " + file->path() + ": " + ec.message());
    co_return false;
  }
  if (e.queue.empty() || e.queue.front() != waiter || e.file != file) {
    // The record names a waiter that left meanwhile.
    if (waiter->mode == LockMode::shared) e.record_dirty = true;
    co_return false;
  }

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
  const int slot = std::exchange(entry->slot, -1);
  entry->held.reset();
  entry->draining_for_remote = false;
  entry->tokens_checked = false;
  if (!file) co_return;
  std::error_code ec = co_await m_offload.quick([&] {
    // The record first: a departed holder is never shown, even for a moment.
    if (slot >= 0) {
      if (std::error_code error = file->release_slot(slot)) return error;
    }
    return file->unlock();
  });
  if (ec) {
    // The lock is gone either way once the descriptor closes.
    spdlog::warn("lock '{}': unlocking {}: {}", entry->name, file->path(), ec.message());
    if (entry->file == file) entry->file.reset();
  }
}

asio::awaitable<std::optional<Holder>> LockTable::current_holder(EntryPtr entry) {
  if (!entry->holders.empty()) {
    const Hold& hold = entry->holders.front();
    co_return holder_of(hold.client->client_info(), hold.mode, hold.token,
                        hold.since_wall);
  }
  auto file = entry->file;
  if (!file) co_return std::nullopt;
  const std::string own = instance_hex(m_config.instance_id);
  std::vector<Holder> holders =
      co_await m_offload.quick([&] { return remote_holders(*file, own); });
  if (holders.empty()) co_return std::nullopt;
  co_return std::move(holders.front());
}

Holder LockTable::holder_of(const ClientInfo& client, LockMode mode,
                            std::uint64_t token,
                            SystemClock::time_point since) const {
  Holder holder{m_config.pod, m_config.node, client.pid, mode,
                token,        since,         true,       {}};
  holder.reported = client.reported;
  return holder;
}

// The fields of `Holder` as its from_json reads them, less "local". Written
// by hand around the pre-encoded pod and node: once per grant, and a JSON
// document built and dumped would cost more than the write itself.
std::string LockTable::holder_record(const ClientInfo& client, LockMode mode,
                                     std::uint64_t token) const {
  const auto since_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            SystemClock::now().time_since_epoch())
                            .count();
  std::string record =
      fmt::format("{}\"pid\":{},\"mode\":\"{}\",\"token\":{},\"since_ms\":{}",
                  m_holder_prefix, client.pid, protocol::lock_mode_name(mode),
                  token, since_ms);
  // The client's own word, if the record has room for it (448 bytes).
  if (!client.reported_json.empty() &&
      record.size() + client.reported_json.size() < 430)
    record += ",\"client\":" + client.reported_json;
  record += '}';
  return record;
}

std::string LockTable::shared_record(const Entry& entry,
                                     const LockClient* joining) const {
  const auto ms = [](SystemClock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               t.time_since_epoch())
        .count();
  };
  std::string record = m_holder_prefix + "\"daemon\":\"" +
                       instance_hex(m_config.instance_id) +
                       "\",\"mode\":\"shared\",\"holders\":[";
  std::size_t listed = 0;
  std::size_t more = 0;
  auto add = [&](const ClientInfo& client, SystemClock::time_point since) {
    std::string item =
        fmt::format("{{\"pid\":{},\"since_ms\":{}", client.pid, ms(since));
    if (!client.reported_json.empty())
      item += ",\"client\":" + client.reported_json;
    item += '}';
    if (record.size() + item.size() + 24 > k_shared_record_limit) {
      ++more;
      return;
    }
    if (listed++ > 0) record += ',';
    record += item;
  };
  for (const Hold& hold : entry.holders)
    if (hold.mode == LockMode::shared)
      add(hold.client->client_info(), hold.since_wall);
  if (joining) add(joining->client_info(), SystemClock::now());
  record += ']';
  if (more > 0) record += ",\"more\":" + std::to_string(more);
  record += '}';
  return record;
}

std::error_code LockTable::publish_shared_now(Entry& entry,
                                              const LockClient* joining) {
  if (!entry.file) return {};
  std::error_code ec;
  if (entry.slot < 0) {
    entry.slot = entry.file->claim_slot(entry.slot_hint, ec);
    if (entry.slot < 0) {
      if (!ec)
        spdlog::debug("lock '{}': every holder slot is taken", entry.name);
      return ec;
    }
    entry.slot_hint = entry.slot;
  }
  return entry.file->write_slot(entry.slot, shared_record(entry, joining));
}

asio::awaitable<std::error_code> LockTable::publish_shared(
    EntryPtr entry, const LockClient* joining) {
  Entry& e = *entry;
  auto file = e.file;
  if (!file) co_return std::error_code{};
  std::string record = shared_record(e, joining);
  int slot = e.slot;
  const int hint = e.slot_hint;
  auto [claimed, ec] = co_await m_offload.quick([&] {
    std::error_code error;
    int s = slot >= 0 ? slot : file->claim_slot(hint, error);
    if (s >= 0) error = file->write_slot(s, record);
    return std::pair{s, error};
  });
  if (e.file == file && claimed >= 0) {
    e.slot = claimed;
    e.slot_hint = claimed;
  } else if (claimed < 0 && !ec) {
    spdlog::debug("lock '{}': every holder slot is taken", e.name);
  }
  co_return ec;
}

void LockTable::release_slot_now(Entry& entry) {
  const int slot = std::exchange(entry.slot, -1);
  if (slot < 0 || !entry.file) return;
  if (std::error_code ec = entry.file->release_slot(slot))
    spdlog::warn("lock '{}': releasing holder slot {} of {}: {}", entry.name,
                 slot, entry.file->path(), ec.message());
}

void LockTable::lose(const EntryPtr& entry, const std::string& why) {
  spdlog::error("lock '{}' lost: {}", entry->name, why);
  auto holders = std::move(entry->holders);
  entry->holders.clear();
  for (const Hold& hold : holders) hold.client->lock_lost(entry->name, hold.token, why);
  // Close the descriptor: whatever lock it still has is not to be trusted,
  // and the next acquisition starts from a freshly opened file (its slot's
  // lock goes with it).
  entry->file.reset();
  entry->slot = -1;
  entry->record_dirty = false;
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

void LockTable::announce_revocation(std::chrono::milliseconds revoke_in,
                                    const std::string& why) {
  for (auto& [name, entry] : m_entries)
    for (const Hold& hold : entry->holders)
      hold.client->lock_revoking(name, hold.token, revoke_in, why);
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

// A scan of the lock directory for status(). It runs on the pool and may
// never return (a hung mount), so it owns what it touches, and it records
// what it found as it goes: a status that gives up still shows that part.
struct LockTable::Scan {
  std::mutex mutex;
  std::vector<LockStatus> found;  // guarded by mutex
  std::string at;                 // the file being read; guarded by mutex
  bool done = false;              // guarded by mutex
  SteadyClock::time_point started = SteadyClock::now();
};

asio::awaitable<StatusReport> LockTable::status(SteadyClock::time_point deadline) {
  StatusReport report;
  std::vector<LockStatus>& locks = report.locks;
  for (auto& [name, entry] : m_entries) {
    if (entry->holders.empty() && entry->queue.empty()) continue;
    LockStatus lock;
    lock.name = name;
    for (const Hold& hold : entry->holders)
      lock.holders.push_back(holder_of(hold.client->client_info(), hold.mode,
                                       hold.token, hold.since_wall));
    for (const auto& waiter : entry->queue)
      lock.waiters.push_back(holder_of(waiter->client->client_info(),
                                       waiter->mode, 0, waiter->queued_wall));
    locks.push_back(std::move(lock));
  }
  // Held here: exclusively, nobody else holds it; shared, other pods may too.
  std::vector<std::string> held_exclusive;
  std::vector<std::string> held_shared;
  for (auto& [name, entry] : m_entries)
    if (entry->held)
      (*entry->held == LockMode::exclusive ? held_exclusive : held_shared)
          .push_back(name);
  auto contains = [](const std::vector<std::string>& names,
                     const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };

  // Other pods: every lock file someone else holds, with the records its
  // holders' daemons wrote (only live ones). A directory scan, so off the
  // loop, and bounded: one scan at a time, so that a stuck one does not pile
  // more onto the pool.
  std::shared_ptr<Scan> scan = m_scan;
  bool stuck_before = false;
  if (scan) {
    std::lock_guard lock(scan->mutex);
    stuck_before = !scan->done;
  }
  if (!stuck_before) {
    scan = m_scan = std::make_shared<Scan>();
    std::function<int()> run = [scan, dir = m_dir_fd, dir_path = m_dir_path,
                                uncached = m_config.uncached_reads, held_exclusive,
                                held_shared, contains,
                                own = instance_hex(m_config.instance_id)] {
      int scan_fd = ::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      DIR* listing = scan_fd >= 0 ? ::fdopendir(scan_fd) : nullptr;
      if (!listing && scan_fd >= 0) ::close(scan_fd);
      std::size_t scanned = 0;
      while (dirent* item = listing ? ::readdir(listing) : nullptr) {
        if (++scanned > k_status_scan_limit) break;
        std::string name = protocol::lock_name_from_file(item->d_name);
        if (name.empty() || contains(held_exclusive, name)) continue;
        {
          std::lock_guard lock(scan->mutex);
          scan->at = name;
        }
        std::error_code ec;
        auto file = LockFile::open(dir, item->d_name, dir_path + "/" + item->d_name, uncached, ec);
        if (!file) continue;
        // Our own shared lock conflicts with this new descriptor: go straight
        // to the slots, skipping our own.
        if (!contains(held_shared, name) && (!file->held_elsewhere(ec) || ec)) continue;
        LockStatus lock;
        lock.name = name;
        lock.holders = remote_holders(*file, own);
        if (lock.holders.empty() && contains(held_shared, name)) continue;
        std::lock_guard guard(scan->mutex);
        scan->found.push_back(std::move(lock));
      }
      if (listing) ::closedir(listing);
      std::lock_guard lock(scan->mutex);
      scan->at.clear();
      scan->done = true;
      return 0;
    };
    co_await m_offload.bounded<int>(std::move(run), deadline);
  }
  std::vector<LockStatus> remote;
  {
    std::lock_guard lock(scan->mutex);
    remote = scan->found;
    if (!scan->done) {
      const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
          SteadyClock::now() - scan->started);
      report.unknown.push_back(
          "locks held by other pods: " + m_dir_path + " has not answered for " +
          std::to_string(waited.count()) + " ms" +
          (scan->at.empty() ? std::string(" (no filesystem call could start)")
                            : " (stuck reading lock '" + scan->at + "')") +
          (stuck_before ? ", since an earlier status" : ""));
    }
  }
  for (auto& lock : remote) {
    auto local = std::find_if(locks.begin(), locks.end(),
                              [&](const LockStatus& l) { return l.name == lock.name; });
    if (local == locks.end()) {
      locks.push_back(std::move(lock));
    } else {
      for (Holder& holder : lock.holders)
        local->holders.push_back(std::move(holder));
    }
  }
  std::sort(locks.begin(), locks.end(),
            [](const LockStatus& a, const LockStatus& b) { return a.name < b.name; });
  co_return report;
}

}  // namespace baton::daemon
