// Which adapter serves which provider type.
#include "lib/providers/anthropic/anthropic_adapter.h"
#include "lib/providers/bedrock/bedrock_adapter.h"
#include "lib/providers/google/google_adapter.h"
#include "lib/providers/mock/mock_adapter.h"
#include "lib/providers/openai/openai_adapter.h"
#include "lib/providers/provider.h"
#include "lib/providers/template/template_adapter.h"

#include <stdexcept>
#include <string>

namespace llmproxy::providers {

const Adapter& adapter_for(Provider provider) {
  static const OpenAIAdapter openai;
  static const MockAdapter mock;
  static const anthropic::Adapter anthropic;
  static const templated::Adapter templated;
  static const bedrock::Adapter bedrock;
  static const google::Adapter google;
  switch (provider) {
    case Provider::kMock: return mock;
    case Provider::kOpenAI:
    case Provider::kAzure:
    case Provider::kOllama:
    case Provider::kVllm:
    case Provider::kLlamaCpp:
    case Provider::kOpenAICompatible: return openai;
    case Provider::kAnthropic: return anthropic;
    case Provider::kTemplate: return templated;
    case Provider::kBedrock: return bedrock;
    case Provider::kGoogle: return google;
  }
  throw std::logic_error("no adapter for provider type " +
                         std::to_string(static_cast<int>(provider)));
}

}  // namespace llmproxy::providers
