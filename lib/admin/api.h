// The admin REST API (`/admin/api/…` on `llm-proxy serve`): everything the CLI
// does, as JSON, through the same operations in lib/ops (same validation,
// same error messages, same field names as the CLI's --json output).
//
// A pure function of (store, request): the server runs it on its admin thread,
// never on a worker, because it does storage I/O.
#pragma once

#include <string>
#include <string_view>

#include "storage/store.h"

namespace llmproxy::admin {

enum class Role { kViewer, kAdmin };

struct ApiRequest {
  std::string method;  // GET, POST, PATCH, PUT, DELETE
  std::string path;    // after "/admin/api", e.g. "/vkeys/3/rotate"
  std::string query;   // without '?'
  std::string body;
};

struct ApiResponse {
  int status = 200;
  std::string body;  // JSON
};

ApiResponse handle(storage::Store& store, const ApiRequest& req, Role role);

// {"error":{"message","type"}} with type unauthorized|forbidden|invalid_request|
// not_found|conflict|storage_error.
std::string error_body(std::string_view type, std::string_view message);

}  // namespace llmproxy::admin
