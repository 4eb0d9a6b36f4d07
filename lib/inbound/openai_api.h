// OpenAI's API as clients send it: POST /v1/chat/completions, /v1/completions
// and /v1/embeddings. The form every adapter takes, so nothing is translated.
#pragma once

#include "lib/inbound/inbound_api.h"

namespace llmproxy::inbound {

const InboundApi& openai_chat();
const InboundApi& openai_completions();
const InboundApi& openai_embeddings();

}  // namespace llmproxy::inbound
