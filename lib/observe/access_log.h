// The access log: one line per request (JSON or text) on stdout or a file.
// Written on the usage writer thread from request outcomes, so the request
// path never formats or writes a log line. Never contains a secret; prompt
// and reply text only when built with `bodies` (serve --log-bodies).
#pragma once

#include <cstdio>
#include <string>

#include "lib/usage/outcome.h"

namespace llmproxy::observe {

enum class LogFormat { kJson, kText };

class AccessLog final : public usage::OutcomeObserver {
 public:
  // `out` stays owned by the caller (stdout, or a file opened for append).
  AccessLog(std::FILE* out, LogFormat format, bool bodies)
      : out_(out), format_(format), bodies_(bodies) {}

  void observe(std::span<const usage::Outcome> outcomes) override;

  // One line, newline included (exposed for tests).
  std::string line(const usage::Outcome& o) const;

 private:
  std::FILE* out_;
  LogFormat format_;
  bool bodies_;
};

}  // namespace llmproxy::observe
