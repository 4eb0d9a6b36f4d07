// Which adapter serves which provider type.
#include "lib/providers/anthropic/anthropic_adapter.h"
#include "lib/providers/mock/mock_adapter.h"
#include "lib/providers/openai/openai_adapter.h"
#include "lib/providers/provider.h"

namespace llmproxy::providers {

const Adapter* adapter_for(Provider provider) {
  static const OpenAIAdapter openai;
  static const MockAdapter mock;
  static const anthropic::Adapter anthropic;
  switch (provider) {
    case Provider::kMock: return &mock;
    case Provider::kOpenAI:
    case Provider::kAzure:
    case Provider::kOllama:
    case Provider::kVllm:
    case Provider::kLlamaCpp:
    case Provider::kOpenAICompatible: return &openai;
    case Provider::kAnthropic: return &anthropic;
    case Provider::kGoogle:
    case Provider::kBedrock: return nullptr;  // translating adapters: not in this build yet
  }
  return nullptr;
}

}  // namespace llmproxy::providers
