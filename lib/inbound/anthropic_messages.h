// Anthropic's Messages API (POST /v1/messages) for clients built on
// Anthropic's SDK: passed through to connections whose adapter speaks it
// natively (anthropic), translated to an OpenAI chat request for every other
// provider, with replies, streams and errors translated back.
#pragma once

#include "lib/inbound/inbound_api.h"

namespace llmproxy::inbound {

const InboundApi& anthropic_messages();

}  // namespace llmproxy::inbound
