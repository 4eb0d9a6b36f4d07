// Writing to a socket without a trip through the event loop when it can take
// the bytes at once (the usual case for a reply or a request that fits the
// socket buffer). An async_write that completes immediately still posts its
// completion, which costs a scheduler round and an extra epoll_wait per
// write; a direct non-blocking send costs only the send.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>

namespace llmproxy::util {

// Writes all of `buffers` to `socket`, which must be in non-blocking mode
// (socket.non_blocking(true)); sets `ec` on failure.
template <class ConstBufferSequence>
boost::asio::awaitable<void> send_all(boost::asio::ip::tcp::socket& socket,
                                      const ConstBufferSequence& buffers,
                                      boost::system::error_code& ec) {
  namespace net = boost::asio;
  std::size_t total = net::buffer_size(buffers);
  std::size_t sent = socket.write_some(buffers, ec);
  if (ec == net::error::would_block || ec == net::error::try_again) {
    ec = {};
    sent = 0;
  }
  if (ec || sent == total) co_return;
  boost::beast::buffers_suffix<ConstBufferSequence> rest(buffers);
  rest.consume(sent);
  co_await net::async_write(socket, rest, net::redirect_error(net::use_awaitable, ec));
}

}  // namespace llmproxy::util
