#include "lib/util/deadlines.h"

namespace llmproxy::util {

Deadline::Deadline(Deadlines& owner, boost::asio::ip::tcp::socket& socket)
    : owner_(owner), socket_(socket) {
  owner_.link(this);
}

Deadline::~Deadline() { owner_.unlink(this); }

void Deadlines::start(boost::asio::io_context& ioc) {
  timer_ = std::make_unique<boost::asio::steady_timer>(ioc);
  schedule();
}

void Deadlines::link(Deadline* d) {
  d->next_ = head_;
  if (head_) head_->prev_ = d;
  head_ = d;
  ++size_;
}

void Deadlines::unlink(Deadline* d) {
  if (d->prev_) d->prev_->next_ = d->next_;
  else head_ = d->next_;
  if (d->next_) d->next_->prev_ = d->prev_;
  d->prev_ = d->next_ = nullptr;
  --size_;
}

void Deadlines::schedule() {
  timer_->expires_after(tick_);
  timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec || !timer_) return;  // stopped
    sweep();
    schedule();
  });
}

void Deadlines::sweep() {
  auto now = Deadline::Clock::now();
  for (Deadline* d = head_; d; d = d->next_) {
    if (d->at_ > now) continue;
    d->at_ = Deadline::Clock::time_point::max();
    d->expired_ = true;
    // Cancelling only queues the aborted handlers: the list is not changed
    // under this loop.
    boost::system::error_code ignore;
    d->socket_.cancel(ignore);
  }
}

}  // namespace llmproxy::util
