// Where blocking filesystem calls run. On a local filesystem a non-blocking
// lock call, a small pread or creating a file takes microseconds, and a hop
// to another thread costs far more (50 us or so each way on a busy VM), so
// such calls run inline. On a network filesystem every
// call is a round trip that a sick server can stretch without bound, so all
// of them run on a thread pool and the loop only awaits the result.
// fsync always runs on the pool.
//
// Callers pass lambdas that capture by reference: the caller's coroutine
// frame outlives the call. That also keeps F trivially destructible, which
// g++ 12 needs: it destroys a capturing lambda made inside a co_await
// expression twice (a double free for captures that own memory).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <functional>
#include <type_traits>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace baton::daemon {

class Offload {
 public:
  // INLINE_QUICK_CALLS: the root is on a local filesystem.
  Offload(std::size_t threads, bool inline_quick_calls)
      : m_pool(threads), m_inline_quick(inline_quick_calls) {}
  ~Offload() { stop(); }

  bool inline_quick_calls() const noexcept { return m_inline_quick; }

  // A call that is quick on a local filesystem (lock, unlock, small I/O).
  template <typename F>
  boost::asio::awaitable<std::invoke_result_t<F>> quick(F f) {
    static_assert(std::is_trivially_destructible_v<F>, "capture by reference");
    if (m_inline_quick) co_return f();
    co_return co_await slow(std::move(f));
  }

  // A call that may block on any filesystem (fsync, directory scans).
  template <typename F>
  boost::asio::awaitable<std::invoke_result_t<F>> slow(F f) {
    static_assert(std::is_trivially_destructible_v<F>, "capture by reference");
    InFlight counted(m_in_flight);
    co_return co_await boost::asio::co_spawn(
        m_pool,
        [f]() mutable
        -> boost::asio::awaitable<std::invoke_result_t<F>> { co_return f(); },
        boost::asio::use_awaitable);
  }

  // A call that may never return (a hung network mount): runs F on the pool
  // and waits for it until DEADLINE at most. nullopt when the deadline came
  // first; F then runs on (or stays stuck) unobserved, so it must own all
  // it touches: F is a std::function built by the caller, capturing by value.
  template <typename R>
  boost::asio::awaitable<std::optional<R>> bounded(
      std::function<R()> f, std::chrono::steady_clock::time_point deadline) {
    auto executor = co_await boost::asio::this_coro::executor;
    auto state = std::make_shared<BoundedState<R>>(executor);
    state->done.expires_at(deadline);
    ++m_in_flight;
    boost::asio::post(m_pool, [state, f = std::move(f), executor, this]() mutable {
      R result = f();
      {
        std::lock_guard lock(state->mutex);
        state->result = std::move(result);
      }
      --m_in_flight;
      boost::asio::post(executor, [state] { state->done.cancel(); });
    });
    co_await state->done.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    std::lock_guard lock(state->mutex);
    co_return std::move(state->result);
  }

  // Calls queued or running on the pool: at shutdown, more than zero means
  // some may be stuck in the kernel, and the pool must not be joined.
  std::size_t in_flight() const noexcept { return m_in_flight.load(); }

  // For fire-and-forget blocking work (removing a staging file).
  boost::asio::thread_pool::executor_type pool_executor() { return m_pool.get_executor(); }

  // Stops the pool without waiting for calls stuck in the kernel.
  void stop() { m_pool.stop(); }

 private:
  struct InFlight {
    explicit InFlight(std::atomic<std::size_t>& counter) : count(counter) { ++count; }
    ~InFlight() { --count; }
    std::atomic<std::size_t>& count;
  };
  template <typename R>
  struct BoundedState {
    explicit BoundedState(boost::asio::any_io_executor executor) : done(executor) {}
    boost::asio::steady_timer done;  // touched on the loop only
    std::mutex mutex;
    std::optional<R> result;
  };

  boost::asio::thread_pool m_pool;
  std::atomic<std::size_t> m_in_flight{0};
  bool m_inline_quick;
};

}  // namespace baton::daemon
