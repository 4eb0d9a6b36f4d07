// Coarse socket deadlines for one event loop.
//
// Why not a timer per operation (beast::tcp_stream's expires_after): every
// request would arm and cancel several timers, and each arm that changes the
// loop's earliest timer is a timerfd_settime syscall — a measurable share of
// the proxy's per-request CPU. Here arming a deadline is two stores to memory;
// one sweeper per loop wakes every `tick` and cancels the pending I/O of the
// sockets whose deadline has passed. Timeouts therefore fire up to one tick
// late, which is fine for timeouts measured in seconds.
//
// Single-threaded: a Deadlines and all its Deadline entries belong to one
// io_context and are only touched from its thread.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>

namespace llmproxy::util {

class Deadlines;

// One socket's deadline. While armed and past due, the sweeper cancels the
// socket's pending operations (they complete with operation_aborted) and
// marks the deadline expired, so the owner can tell a timeout from other
// cancellations. Not copyable or movable: it is linked into its Deadlines.
class Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  Deadline(Deadlines& owner, boost::asio::ip::tcp::socket& socket);
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  void arm(Clock::duration after) {
    at_ = Clock::now() + after;
    expired_ = false;
  }
  void disarm() { at_ = Clock::time_point::max(); }
  bool expired() const { return expired_; }

 private:
  friend class Deadlines;
  Deadlines& owner_;
  boost::asio::ip::tcp::socket& socket_;
  Clock::time_point at_ = Clock::time_point::max();
  bool expired_ = false;
  Deadline* prev_ = nullptr;
  Deadline* next_ = nullptr;
};

class Deadlines {
 public:
  explicit Deadlines(std::chrono::milliseconds tick = std::chrono::milliseconds(100))
      : tick_(tick) {}
  Deadlines(const Deadlines&) = delete;
  Deadlines& operator=(const Deadlines&) = delete;

  // Starts the sweeper on `ioc`; it runs until stop() or the loop stops.
  // The Deadlines must outlive every Deadline, which may include coroutine
  // frames the io_context destroys only in its destructor; the sweeper's
  // timer, though, must go before the io_context: hence stop(), separately.
  void start(boost::asio::io_context& ioc);
  void stop() { timer_.reset(); }
  std::size_t size() const { return size_; }

 private:
  friend class Deadline;
  void link(Deadline* d);
  void unlink(Deadline* d);
  void sweep();
  void schedule();

  std::chrono::milliseconds tick_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  Deadline* head_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace llmproxy::util
