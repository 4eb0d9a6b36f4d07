// One request through the proxy: what was asked, who asked, where it went,
// and its outcome. Every request the front end answers on the client APIs
// (refusals included) is a Call, and every Call is recorded exactly once, by
// finish(): the one place the usage record and the observers' outcome are
// filled in.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "lib/auth/authenticate.h"
#include "lib/inbound/inbound_api.h"
#include "lib/limits/limiter.h"
#include "lib/routing/route.h"
#include "lib/server/client.h"
#include "lib/usage/outcome.h"

namespace llmproxy::server {

using Clock = std::chrono::steady_clock;

struct Call {
  // `api` is the inbound API addressed, or null (refusals before one is
  // known, local endpoints): errors are then in OpenAI's shape.
  Call(Client& c, const Request& r, const inbound::InboundApi* a);
  Call(const Call&) = delete;
  // A request cut short (shutdown past the grace period) is still recorded.
  ~Call() { finish(499); }

  Client& client;
  const Request& req;
  const inbound::InboundApi* api;
  Clock::time_point start = Clock::now();
  std::string request_id;
  bool keep_alive = true;
  config::SnapshotPtr snapshot;

  // Filled in as the request moves along the pipeline.
  auth::Principal who;
  std::string model;  // as the client asked for it
  routing::Route route;
  limits::Claim claim;          // what admission took; settled by finish()
  limits::Decision limits;      // the refusal, and the x-ratelimit-* headers
  bool translated = false;      // replies translated back into the client's API
  std::string translated_body;  // the request as the adapter takes it, if translated
  std::optional<double> ttft_ms;
  bool headers_sent = false;  // a reply (or stream) has started going out
  usage::Outcome outcome;     // the error code, stream flag, upstream status, bodies

  Context& ctx() { return client.ctx; }

  // Identifies the caller from the request's key without answering; false
  // (and the status why) when the key is missing or not good.
  bool identify(auth::AuthStatus& status);

  // Records the request: the usage record (stored when a key was proven),
  // the limits' claims settled with what it used, metrics and the access
  // log. Once per Call.
  void finish(int status, const providers::Usage& usage = {});

  // x-request-id and the rate-limit headers, on every reply.
  template <class Fields>
  void decorate(Fields& h) const {
    h.set("x-request-id", request_id);
    add_rate_limit_headers(h, limits);
  }

  // Gives the limits' claims back with what the request used, before its
  // last bytes go out: a client that sends its next request as soon as it has
  // the reply finds the window already settled. finish() does it otherwise.
  void settle_limits(const providers::Usage& usage);

  // Keeps the reply for the access log, only with --log-bodies.
  void log_reply(std::string_view body);

  // For a successful local answer (the model list): not a use of a model,
  // so neither stored nor logged.
  void skip_record() { recorded_ = true; }

 private:
  bool recorded_ = false;
};

double ms_since(Clock::time_point t);

// An error of the proxy's own, in the shape the client's API uses.
Response error_for(const Call& call, http::status status, std::string_view message,
                   std::string_view type, std::optional<std::string_view> code,
                   std::optional<std::string_view> param = std::nullopt);

// Sends a finished reply and records the call.
boost::asio::awaitable<void> reply(Call& call, Response res, const providers::Usage& usage = {});

// Sends an error of the proxy's own and records the call with its code.
boost::asio::awaitable<void> reply_error(Call& call, http::status status, std::string_view message,
                                         std::string_view type,
                                         std::optional<std::string_view> code,
                                         std::optional<std::string_view> param = std::nullopt);

// An OpenAI-shaped body from an adapter as the client's API expects it.
std::string client_body(const Call& call, int status, std::string body,
                        std::string_view content_type = "application/json");

}  // namespace llmproxy::server
