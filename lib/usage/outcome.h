// What happened to one proxied request: its usage record (stored) and what
// only the observers need (metrics, the access log), which is not stored.
#pragma once

#include <span>
#include <string>

#include "lib/domain/types.h"

namespace llmproxy::usage {

struct Outcome {
  UsageRecord record;
  // The error code the client got ("rate_limit_exceeded", "upstream_timeout",
  // "client_closed", "upstream_http_503", …); empty on success.
  std::string error;
  bool stream = false;
  // The HTTP status the upstream answered; 0 when it was not asked or did
  // not answer (timeout, refused connection).
  int upstream_status = 0;
  // Usage is stored per key: a request no key was proven for (401) is only
  // counted and logged.
  bool store = true;
  // The request's method and path as the client sent them (for the log:
  // which URLs clients try to reach, refused ones included).
  std::string method;
  std::string path;
  // Only with `serve --log-bodies`: the client's request and the reply as sent.
  std::string request_body;
  std::string reply_body;
};

// Sees every outcome exactly once, on the usage writer thread, before it is
// stored (so a storage outage does not blind metrics or logs).
class OutcomeObserver {
 public:
  virtual ~OutcomeObserver() = default;
  virtual void observe(std::span<const Outcome> outcomes) = 0;
};

}  // namespace llmproxy::usage
