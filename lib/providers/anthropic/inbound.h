// The inbound Anthropic Messages API (POST /v1/messages) for clients built on
// Anthropic's SDK. For anthropic connections the request passes through (only
// `model` and auth change); for every other provider it is translated to an
// OpenAI chat request, sent through that provider's adapter, and the reply,
// stream and errors are translated back into Anthropic's shapes here.
#pragma once

#include <memory>
#include <string>

#include "lib/providers/anthropic/anthropic_adapter.h"

namespace llmproxy::providers::anthropic {

// Messages request → OpenAI chat request. Streams ask for usage so that the
// final message_delta can report it. Throws RequestError naming the field.
Json chat_request_from_messages(const Json& messages_request);
// OpenAI chat.completion → Anthropic message.
Json message_from_chat_completion(const Json& completion);
// OpenAI finish_reason → Anthropic stop_reason.
std::string_view stop_reason(std::string_view finish_reason);

// {"type":"error","error":{"type","message"}} with the type Anthropic uses
// for `status`.
std::string error_body(int status, std::string_view message);
// Any OpenAI-shaped (or other) error body → Anthropic's shape.
std::string error_body_from_openai(int status, std::string_view openai_body);

// OpenAI chat.completion.chunk SSE → Anthropic's event sequence
// (message_start, content_block_*, message_delta, message_stop). Wraps the
// translator that turns the provider's stream into OpenAI chunks.
std::unique_ptr<StreamTranslator> events_from_chunks(std::unique_ptr<StreamTranslator> inner);

// Adapter for anthropic connections addressed through /v1/messages: the body
// passes through; usage is read from the reply and from the event stream.
const providers::Adapter& passthrough();

}  // namespace llmproxy::providers::anthropic
