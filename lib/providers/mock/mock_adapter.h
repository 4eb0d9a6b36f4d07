// The built-in `mock` provider: no network. It echoes the last user message,
// streams it word by word, and reports usage (one token per word), so smoke
// tests, demos and load tests run without any real provider.
#pragma once

#include "lib/providers/provider.h"

namespace llmproxy::providers {

class MockAdapter final : public Adapter {
 public:
  bool local() const override { return true; }
  Reply answer(const InboundRequest& in, const routing::Route& route) const override;
  std::vector<std::string> answer_stream(const InboundRequest& in, const routing::Route& route,
                                         Usage& usage) const override;

  UpstreamRequest build_request(const InboundRequest&, const routing::Route&) const override {
    return {};
  }
  Reply translate_reply(const InboundRequest&, int status, std::string body,
                        const HeaderView&) const override {
    return {status, "application/json", std::move(body), {}, {}};
  }
  std::unique_ptr<StreamTranslator> stream_translator(const InboundRequest&) const override {
    return nullptr;
  }
};

}  // namespace llmproxy::providers
