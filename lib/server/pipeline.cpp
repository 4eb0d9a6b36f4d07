#include "lib/server/pipeline.h"

#include <iostream>

#include "lib/domain/time.h"
#include "lib/server/forward.h"
#include "lib/util/json_scan.h"

namespace llmproxy::server {
namespace {

namespace net = boost::asio;

const char* auth_message(auth::AuthStatus s) {
  switch (s) {
    case auth::AuthStatus::kMissing:
      return "no API key provided: send it as 'Authorization: Bearer <key>'";
    case auth::AuthStatus::kDisabled:
      return "this API key has been disabled";
    case auth::AuthStatus::kExpired:
      return "this API key has expired";
    default:
      return "incorrect API key provided";
  }
}

// Why a step stopped the call: what the client is told. Steps are plain
// functions (no coroutine frame each); the one answer is sent by the caller.
struct Stop {
  http::status status;
  std::string message;
  std::string type = "invalid_request_error";
  std::optional<std::string> code;
  std::optional<std::string> param;
};
using Step = std::optional<Stop>;  // nullopt: go on

Step authenticate(Call& call) {
  auth::AuthStatus status;
  if (call.identify(status)) return std::nullopt;
  return Stop{http::status::unauthorized, auth_message(status), "invalid_request_error",
              "invalid_api_key", std::nullopt};
}

Step parse(Call& call, providers::InboundRequest& in) {
  std::optional<inbound::Refusal> refused = call.api->parse(call.req.body(), in, call.model);
  if (!refused) return std::nullopt;
  return Stop{http::status::bad_request, std::move(refused->message), "invalid_request_error",
              std::move(refused->code), std::move(refused->param)};
}

Step route(Call& call) {
  routing::RouteResult routed = routing::resolve(*call.snapshot, call.who, call.model);
  call.route = routed.route;
  switch (routed.status) {
    case routing::RouteStatus::kOk:
      return std::nullopt;
    case routing::RouteStatus::kNotFound:
      return Stop{http::status::not_found, "the model '" + call.model + "' does not exist",
                  "invalid_request_error", "model_not_found", "model"};
    case routing::RouteStatus::kForbidden:
      break;
  }
  return Stop{http::status::forbidden,
              "this key is not allowed to use the model '" + call.model + "'", "permission_error",
              "model_not_allowed", "model"};
}

// Claims what the request may use from every limit of its assignment and key
// (claim.h); refused when any of them has nothing left.
net::awaitable<Step> admit(Call& call, const providers::InboundRequest& in) {
  if (!call.route.assignment) co_return std::nullopt;  // the master key has no limits
  call.ctx().limiter.prepare(call.claim, call.route.assignment, &call.who.key->vkey,
                             call.route.model, in.body,
                             in.endpoint == providers::Endpoint::kEmbeddings);
  if (call.claim.empty()) co_return std::nullopt;
  limits::Admission admission = co_await call.client.gate.admit(call.claim);
  call.limits = limits::describe(call.claim, admission);
  if (call.limits.allowed()) co_return std::nullopt;
  std::string type(limits::refusal_type(call.limits.refusal));
  http::status status = call.limits.refusal == limits::Refusal::kUnavailable
                            ? http::status::service_unavailable
                            : http::status::too_many_requests;
  co_return Stop{status, call.limits.message, type, type, std::nullopt};
}

// The request as the routed connection's adapter takes it: bound by the
// inbound API (as sent, or translated) and, unless the adapter answers
// in-process, built into the upstream request.
Step translate(Call& call, providers::InboundRequest& in, const providers::Adapter*& adapter,
               providers::UpstreamRequest& up) {
  try {
    RequestHeaders headers(call.req);
    inbound::Binding binding = call.api->bind(
        providers::adapter_for(call.route.connection->provider), in, headers, call.translated_body);
    adapter = binding.adapter;
    call.translated = binding.translated;
    in.route = &call.route;
    if (!adapter->local()) up = adapter->build_request(in, call.route);
    return std::nullopt;
  } catch (const providers::RequestError& e) {
    return Stop{http::status::bad_request, e.what(), "invalid_request_error",
                "unsupported_parameter", e.param()};
  }
}

net::awaitable<void> run_pipeline(Call& call) {
  providers::InboundRequest in;
  in.request_id = call.request_id;
  const providers::Adapter* adapter = nullptr;
  providers::UpstreamRequest up;
  Step stop = authenticate(call);
  if (!stop) stop = parse(call, in);
  if (!stop) stop = route(call);
  if (!stop) stop = co_await admit(call, in);
  if (!stop) stop = translate(call, in, adapter, up);
  if (stop) {
    co_await reply_error(call, stop->status, stop->message, stop->type, stop->code, stop->param);
  } else if (adapter->local()) {
    co_await answer_locally(call, *adapter, in);
  } else {
    co_await forward(call, *adapter, in, up);
  }
}

}  // namespace

net::awaitable<void> proxy(Call& call) {
  std::optional<std::string> failure;
  try {
    co_await run_pipeline(call);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (!failure) co_return;
  std::cerr << "llm-proxy: internal error on request " << call.request_id << ": " << *failure
            << "\n";
  call.keep_alive = false;
  if (call.headers_sent) {
    call.finish(500);
  } else {
    co_await reply_error(call, http::status::internal_server_error, "internal error: " + *failure,
                         "api_error", "internal_error");
  }
}

net::awaitable<void> list_models(Call& call) {
  if (Step stop = authenticate(call)) {
    co_await reply_error(call, stop->status, stop->message, stop->type, stop->code);
    co_return;
  }
  std::string data = "[";
  for (const config::ModelEntry& m : routing::visible_models(*call.snapshot, call.who)) {
    if (data.size() > 1) data += ",";
    data += "{\"id\":" + json_scan::encode_string(m.model->name) +
            ",\"object\":\"model\",\"created\":" + std::to_string(m.model->created_at / 1000) +
            ",\"owned_by\":" + json_scan::encode_string(m.connection->name) + "}";
  }
  data += "]";
  Response res = json_response(http::status::ok, "{\"object\":\"list\",\"data\":" + data + "}",
                               call.keep_alive);
  res.set("x-request-id", call.request_id);
  call.skip_record();
  co_await write(call.client, res);
}

}  // namespace llmproxy::server
