#include "lib/server/stream_relay.h"

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstdio>

#include "lib/util/send.h"

namespace llmproxy::server {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

void arm_watch(tcp::socket& socket, const std::shared_ptr<WatchState>& state) {
  state->pending = true;
  socket.async_wait(tcp::socket::wait_read,
                    [&socket, weak = std::weak_ptr<WatchState>(state)](beast::error_code ec) {
                      auto s = weak.lock();
                      if (!s) return;  // the session is over; so is its socket
                      s->pending = false;
                      if (ec || !s->watched) return;
                      char byte;
                      ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
                      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                        s->gone = true;
                        s->watched->cancel();
                      }
                    });
}

// Why a relayed stream could not be finished, for the in-band error event.
std::string broken_reason(upstream::Failure f, const upstream::Exchange& ex,
                          const std::string& translator_failure) {
  if (f != upstream::Failure::kNone) return ex.error();
  if (!translator_failure.empty()) return translator_failure;
  return "ended early";
}

}  // namespace

ClientWatch::ClientWatch(Client& c, upstream::Exchange& ex) : state_(c.watch) {
  state_->watched = &ex;
  state_->gone = false;
  if (!state_->pending) arm_watch(c.socket, state_);
}

net::awaitable<bool> begin_stream(Call& call, int status) {
  http::response<http::empty_body> res{static_cast<http::status>(status), 11};
  res.set(http::field::content_type, "text/event-stream");
  res.set(http::field::cache_control, "no-cache");
  res.keep_alive(call.keep_alive);
  res.chunked(true);
  call.decorate(res);
  call.headers_sent = true;
  std::string head = serialize_head(res.base());
  beast::error_code ec;
  call.client.deadline.arm(call.ctx().options.client_read_timeout);
  co_await util::send_all(call.client.socket, net::buffer(head), ec);
  co_return !ec;
}

net::awaitable<bool> send_chunk(Call& call, std::string_view data) {
  if (data.empty()) co_return true;
  call.log_reply(data);
  char size_line[24];
  int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
  std::array<net::const_buffer, 3> out{net::buffer(size_line, static_cast<std::size_t>(n)),
                                       net::buffer(data), net::buffer("\r\n", 2)};
  beast::error_code ec;
  call.client.deadline.arm(call.ctx().options.client_read_timeout);
  co_await util::send_all(call.client.socket, out, ec);
  co_return !ec;
}

net::awaitable<bool> end_stream(Call& call) {
  beast::error_code ec;
  co_await util::send_all(call.client.socket, net::buffer("0\r\n\r\n", 5), ec);
  call.client.deadline.disarm();
  co_return !ec;
}

net::awaitable<void> relay_stream(Call& call, const providers::Adapter& adapter,
                                  const providers::InboundRequest& in, upstream::Exchange& ex,
                                  ClientWatch& watch) {
  OpenStream open(call);
  auto translator = adapter.stream_translator(in);
  if (call.translated) translator = call.api->client_stream(std::move(translator));
  bool client_ok = co_await begin_stream(call, ex.status());
  std::string piece, out;
  upstream::Failure f = upstream::Failure::kNone;
  while (client_ok && !ex.done()) {
    piece.clear();
    f = co_await ex.read_some(piece);
    if (!piece.empty() && !call.ttft_ms) call.ttft_ms = ms_since(call.start);
    out.clear();
    translator->feed(piece, out);
    if (f != upstream::Failure::kNone) break;
    client_ok = co_await send_chunk(call, out);
    if (!translator->failure().empty()) break;  // nothing more can be decoded
  }
  std::string failure = translator->failure();
  if (f == upstream::Failure::kNone && client_ok && failure.empty()) {
    out.clear();
    translator->finish(out);
    if (translator->complete()) call.settle_limits(translator->usage());
    client_ok = co_await send_chunk(call, out);
  }
  watch.stop();
  const providers::Usage& usage = translator->usage();
  if (!client_ok || watch.client_gone() || f == upstream::Failure::kCancelled) {
    ex.cancel();
    call.keep_alive = false;
    call.finish(499, usage);  // abandoned by the client: never billed as complete
    co_return;
  }
  if (f != upstream::Failure::kNone || !translator->complete()) {
    // The upstream broke the stream: tell the client in-band, then end it.
    call.outcome.error = "upstream_stream_broken";
    ex.cancel();  // the rest of a stream that cannot be decoded is not read
    std::string message = "connection '" + call.route.connection->name +
                          "' broke the stream: " + broken_reason(f, ex, failure);
    std::string event =
        call.api->stream_error_event(message, "upstream_error", "upstream_stream_broken");
    if (!translator->error_sent()) co_await send_chunk(call, event);
    co_await end_stream(call);
    call.keep_alive = false;
    call.finish(502, usage);
    co_return;
  }
  ex.finish();
  if (!co_await end_stream(call)) call.keep_alive = false;
  call.finish(200, usage);
}

}  // namespace llmproxy::server
