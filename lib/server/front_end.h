// The HTTP front end of one client connection: reads requests, answers
// malformed ones, dispatches the rest by route, keeps the connection alive.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "lib/server/context.h"
#include "lib/upstream/client.h"

namespace llmproxy::server {

// Serves HTTP/1.1 keep-alive requests on `socket` until the client closes,
// an error occurs, or the server drains.
boost::asio::awaitable<void> run_session(boost::asio::ip::tcp::socket socket, Context& ctx,
                                         upstream::Pool& pool, limits::Gate& gate);

}  // namespace llmproxy::server
