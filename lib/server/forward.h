// The last step of the pipeline: the request goes to the provider (through
// its adapter and the worker's upstream pool) or is answered in-process, and
// the reply, stream or failure goes back to the client and is recorded.
#pragma once

#include "lib/server/call.h"

namespace llmproxy::server {

// Sends `up` (built by `adapter` from `in`) and relays the answer.
boost::asio::awaitable<void> forward(Call& call, const providers::Adapter& adapter,
                                     const providers::InboundRequest& in,
                                     const providers::UpstreamRequest& up);

// For adapters that answer in-process (mock).
boost::asio::awaitable<void> answer_locally(Call& call, const providers::Adapter& adapter,
                                            const providers::InboundRequest& in);

}  // namespace llmproxy::server
