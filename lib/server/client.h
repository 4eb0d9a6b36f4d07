// The client side of one connection: its socket, read buffer and deadline,
// and writing whole replies to it.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "lib/providers/provider.h"
#include "lib/server/context.h"
#include "lib/server/respond.h"
#include "lib/upstream/client.h"
#include "lib/util/deadlines.h"

namespace llmproxy::server {

using Request = http::request<http::string_body>;

// Whether the client is still there while the upstream works (ClientWatch,
// stream_relay.h). Shared with the pending wait's handler, which may outlive
// the Client.
struct WatchState {
  upstream::Exchange* watched = nullptr;  // cancelled if the client goes away
  bool pending = false;                   // a wait on the socket is outstanding
  bool gone = false;
};

struct Client {
  Client(boost::asio::ip::tcp::socket s, Context& c, upstream::Pool& p, limits::Gate& g)
      : socket(std::move(s)), ctx(c), pool(p), gate(g), deadline(p.deadlines(), socket) {}

  boost::asio::ip::tcp::socket socket;
  boost::beast::flat_buffer buffer;
  Context& ctx;
  upstream::Pool& pool;  // this worker's upstream connections
  limits::Gate& gate;    // this worker's admissions
  util::Deadline deadline;  // reading a request, or writing a large reply / a stream
  std::shared_ptr<WatchState> watch = std::make_shared<WatchState>();
};

// The value of the request's first header called `name`, or empty.
std::string_view header(const http::fields& fields, std::string_view name);

// A request's headers as the provider and inbound interfaces look them up.
class RequestHeaders final : public providers::HeaderView {
 public:
  explicit RequestHeaders(const http::fields& fields) : fields_(fields) {}
  std::string_view get(std::string_view name) const override { return header(fields_, name); }

 private:
  const http::fields& fields_;
};

// The status line and headers of a reply, in one buffer: a reply goes out in
// one gather write (head + body) rather than beast's per-field buffers.
std::string serialize_head(const http::response_header<>& head);

// Writes a whole reply.
boost::asio::awaitable<void> write(Client& c, Response& res);

}  // namespace llmproxy::server
