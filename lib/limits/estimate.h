// What a request may cost before it runs: the tokens an admission claims
// against token and budget windows (lib/limits/claim.h), settled against the
// real usage when the request ends.
//
// The rule (README "Limits"):
//   prompt      ceil(bytes of the body's string values / 4)
//               + 4 per message (an element of messages, contents or input)
//               + 3 for the reply's priming (not for embeddings)
//               + 1000 per image, audio or document part (their data is not
//                 counted as text)
//   completion  max_tokens, max_completion_tokens, max_output_tokens or
//               generationConfig.maxOutputTokens when the client sets one,
//               times n when it asks for several choices; otherwise the
//               assignment's reserve (--reserve-tokens) or serve's
//               --default-completion-reserve. Embeddings complete nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace llmproxy::limits {

inline constexpr std::int64_t kTokensPerMessage = 4;
inline constexpr std::int64_t kTokensPerReply = 3;
inline constexpr std::int64_t kTokensPerMediaPart = 1000;

struct Estimate {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;

  std::int64_t total() const { return prompt_tokens + completion_tokens; }
};

// `body` is the client's JSON request (already validated; anything else gives
// a rough but safe figure). `default_completion` applies when the client sets
// no completion cap; `embeddings` requests complete nothing.
Estimate estimate_request(std::string_view body, std::int64_t default_completion,
                          bool embeddings = false);

}  // namespace llmproxy::limits
