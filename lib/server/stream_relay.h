// Streamed replies: a chunked text/event-stream to the client, relayed from
// the upstream as it arrives (through the adapter's and the inbound API's
// translators), and the watch that notices a client going away meanwhile.
#pragma once

#include <atomic>
#include <memory>
#include <string_view>

#include "lib/server/call.h"

namespace llmproxy::server {

// Watches the client socket while the upstream works: a client that goes away
// cancels the upstream exchange at once instead of at the next write.
// It waits for readability (no read, no speculative syscall, no timer): when
// the socket turns readable, a peek tells a closed connection from a
// pipelined next request. A wait still pending from an earlier request is
// reused, and stopping leaves it pending: the next request's arrival
// completes it, so keep-alive traffic costs no extra syscall per request.
class ClientWatch {
 public:
  ClientWatch(Client& c, upstream::Exchange& ex);
  ~ClientWatch() { stop(); }
  ClientWatch(const ClientWatch&) = delete;

  void stop() { state_->watched = nullptr; }
  bool client_gone() const { return state_->gone; }

 private:
  std::shared_ptr<WatchState> state_;
};

// Counts a streamed reply in llm_proxy_open_streams while it lasts, and marks
// the call's outcome as a stream.
class OpenStream {
 public:
  explicit OpenStream(Call& call) : n_(call.ctx().open_streams) {
    call.outcome.stream = true;
    ++n_;
  }
  ~OpenStream() { --n_; }
  OpenStream(const OpenStream&) = delete;

 private:
  std::atomic<int>& n_;
};

// The head of a chunked text/event-stream reply; false if the client is gone.
boost::asio::awaitable<bool> begin_stream(Call& call, int status);
// One HTTP/1.1 chunk (nothing for empty data); false if the client is gone.
boost::asio::awaitable<bool> send_chunk(Call& call, std::string_view data);
// The last chunk.
boost::asio::awaitable<bool> end_stream(Call& call);

// Relays the upstream's 2xx stream to the client and records the call: 200
// when it ended properly, 499 when the client left, 502 (with an in-band
// error event) when the upstream broke it.
boost::asio::awaitable<void> relay_stream(Call& call, const providers::Adapter& adapter,
                                          const providers::InboundRequest& in,
                                          upstream::Exchange& ex, ClientWatch& watch);

}  // namespace llmproxy::server
