#include "lib/server/client.h"

#include <array>

#include "lib/util/send.h"

namespace llmproxy::server {

namespace net = boost::asio;
namespace beast = boost::beast;

std::string_view header(const http::fields& fields, std::string_view name) {
  auto it = fields.find(beast::string_view(name.data(), name.size()));
  if (it == fields.end()) return {};
  return {it->value().data(), it->value().size()};
}

std::string serialize_head(const http::response_header<>& h) {
  std::string head;
  head.reserve(512);
  beast::string_view reason = h.reason();
  head.append("HTTP/1.1 ").append(std::to_string(h.result_int())).append(" ");
  head.append(reason.data(), reason.size()).append("\r\n");
  for (const auto& f : h) {
    beast::string_view name = f.name_string(), value = f.value();
    head.append(name.data(), name.size()).append(": ").append(value.data(), value.size());
    head.append("\r\n");
  }
  head.append("\r\n");
  return head;
}

net::awaitable<void> write(Client& c, Response& res) {
  // A reply that fits in the socket buffer is written at once; only larger
  // ones can be held up by a client that stops reading, so only they pay for
  // a write deadline (each deadline is a timer update on the hot path).
  constexpr std::size_t kBufferedReply = 128 * 1024;
  bool guarded = res.body().size() > kBufferedReply;
  if (guarded) c.deadline.arm(c.ctx.options.client_read_timeout);
  std::string head = serialize_head(res.base());
  std::array<net::const_buffer, 2> out{net::buffer(head), net::buffer(res.body())};
  beast::error_code ec;
  co_await util::send_all(c.socket, out, ec);
  if (guarded) c.deadline.disarm();
}

}  // namespace llmproxy::server
