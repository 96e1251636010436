#include "daemon/lock_waiter.hpp"

#include <pthread.h>
#include <signal.h>

#include <chrono>

#include <boost/asio/post.hpp>

namespace baton::daemon {
namespace {

int interrupt_signal() { return SIGRTMIN + 2; }

void ignore_signal(int) {}

// How often a cancelled wait is re-interrupted: the signal can land just
// before the thread enters fcntl(2), so one signal is not enough.
constexpr auto k_interrupt_period = std::chrono::milliseconds(5);

// How long a polite waiter at most leaves the lock to another pod's waiter.
// It stops as soon as that waiter holds the lock, so the bound matters only
// when its thread is slow to run: at 5 ms, on 2 loaded cores, this daemon
// re-took the lock before the other pod's woken thread ran (issue 7, 8).
constexpr auto k_polite_window = std::chrono::milliseconds(200);

std::atomic<std::size_t> g_running{0};

}  // namespace

void install_wait_interrupt_handler() {
  struct sigaction action{};
  action.sa_handler = ignore_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: the signal must break fcntl(2)
  sigaction(interrupt_signal(), &action, nullptr);
}

LockWaiter::LockWaiter(boost::asio::any_io_executor executor,
                       std::shared_ptr<LockFile> file, LockMode mode, Done done)
    : m_executor(executor),
      m_file(std::move(file)),
      m_mode(mode),
      m_done(std::move(done)),
      m_interrupt_timer(executor) {}

std::shared_ptr<LockWaiter> LockWaiter::start(boost::asio::any_io_executor executor,
                                              std::shared_ptr<LockFile> file,
                                              LockMode mode, bool polite, Done done) {
  std::shared_ptr<LockWaiter> waiter(
      new LockWaiter(executor, std::move(file), mode, std::move(done)));
  // The completion on the loop joins the thread, so its pthread_t stays
  // valid for pthread_kill until then.
  ++g_running;
  waiter->m_thread = std::thread([self = waiter, polite] { self->run(polite); });
  return waiter;
}

LockWaiter::~LockWaiter() {
  // The last reference can be the thread's own when the loop is gone.
  if (m_thread.joinable()) {
    if (m_thread.get_id() == std::this_thread::get_id())
      m_thread.detach();
    else
      m_thread.join();
  }
}

void LockWaiter::run(bool polite) {
  std::error_code outcome;
  if (polite) {
    // Give the other pod's woken waiter its turn before we contend again:
    // without this the releasing daemon usually re-takes the lock at once.
    auto until = std::chrono::steady_clock::now() + k_polite_window;
    std::error_code ignored;
    while (!m_cancelled && std::chrono::steady_clock::now() < until &&
           !m_file->held_elsewhere(ignored) && m_file->others_waiting(ignored))
      std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  std::error_code advertise = m_file->advertise_waiting(true);
  for (;;) {
    if (m_cancelled) {
      outcome = std::make_error_code(std::errc::operation_canceled);
      break;
    }
    outcome = m_file->wait_lock(m_mode);
    if (outcome != std::errc::interrupted) break;
  }
  if (!advertise) m_file->advertise_waiting(false);
  m_finished = true;
  --g_running;
  auto self = shared_from_this();
  boost::asio::post(m_executor, [self, outcome] {
    self->m_interrupt_timer.cancel();
    if (self->m_thread.joinable()) self->m_thread.join();
    if (auto done = std::move(self->m_done)) done(outcome);
  });
}

std::size_t LockWaiter::running() noexcept { return g_running.load(); }

void LockWaiter::cancel() {
  if (m_cancelled.exchange(true)) return;
  interrupt_until_done();
}

void LockWaiter::interrupt_until_done() {
  if (m_finished || !m_thread.joinable()) return;
  pthread_kill(m_thread.native_handle(), interrupt_signal());
  m_interrupt_timer.expires_after(k_interrupt_period);
  m_interrupt_timer.async_wait(
      [weak = weak_from_this()](const boost::system::error_code& ec) {
        if (ec) return;
        if (auto self = weak.lock()) self->interrupt_until_done();
      });
}

}  // namespace baton::daemon
