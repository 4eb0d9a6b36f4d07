// The proxy pipeline: one request on a client API, from the key to the
// record. Each step either passes the call on or stops it with the answer the
// client gets (a refusal in its API's shape, recorded like any other reply):
//
//   authenticate  the key, against the config snapshot    (lib/auth)
//   parse         the body, by the inbound API             (lib/inbound)
//   route         the model to a connection + assignment   (lib/routing)
//   admit         claims from the assignment's and key's limits (lib/limits)
//   translate     the request as the adapter takes it      (lib/inbound, lib/providers)
//   forward       upstream, or answered in-process         (forward.h, stream_relay.h)
//   record        Call::finish, once, whatever happened: claims settled,
//                 usage recorded                           (call.h → lib/usage)
#pragma once

#include "lib/server/call.h"

namespace llmproxy::server {

// Runs the pipeline for a request to `api`. Never throws: a bug costs one
// request (500, or a cut stream), not the connection.
boost::asio::awaitable<void> proxy(Call& call);

// GET /v1/models: the aliases the key may use.
boost::asio::awaitable<void> list_models(Call& call);

}  // namespace llmproxy::server
