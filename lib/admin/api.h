// The admin REST API (`/admin/api/…` on `llm-proxy serve`): everything the CLI
// does, as JSON, through the same operations in lib/ops (same validation,
// same error messages, same field names as the CLI's --json output).
//
// Who may call it: the holder of the master key (admin), or an admin user
// signed in with `POST /admin/api/login` presenting the token it returned
// (role admin or viewer; viewers may only read).
//
// The server runs it on its admin thread, never on a worker, because it does
// storage I/O and password hashing; the class is therefore not thread-safe.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "lib/admin/login_throttle.h"
#include "lib/admin/token.h"
#include "storage/store.h"

namespace llmproxy::admin {

using Role = AdminRole;

struct ApiRequest {
  std::string method;  // GET, POST, PATCH, PUT, DELETE
  std::string path;    // after "/admin/api", e.g. "/vkeys/3/rotate"
  std::string query;   // without '?'
  std::string body;
  std::string bearer;  // the Authorization: Bearer credential, if any
  std::string client;  // the client's address, for login throttling
};

struct ApiResponse {
  int status = 200;
  std::string body;  // JSON
  std::vector<Header> headers = {};
};

struct ApiOptions {
  std::string master_key;  // empty: only signed-in users
  std::string token_key;   // HMAC key for login tokens
  std::chrono::seconds token_ttl{8 * 3600};
  LoginThrottle::Policy throttle = {};
};

class Api {
 public:
  Api(storage::Store& store, ApiOptions options);

  // Authenticates, checks the role, runs the request.
  ApiResponse handle(const ApiRequest& req);

 private:
  ApiResponse login(const ApiRequest& req);
  // The caller's identity and role, or an error response in `refusal`.
  std::optional<AdminUser> authenticate(const ApiRequest& req, ApiResponse& refusal);

  storage::Store& store_;
  ApiOptions options_;
  TokenSigner signer_;
  LoginThrottle throttle_;
  std::string dummy_hash_;  // verified against for unknown users (equal timing)
};

// Runs an authenticated request as `role` (no authentication of its own).
ApiResponse handle(storage::Store& store, const ApiRequest& req, Role role);

// {"error":{"message","type"}} with type unauthorized|forbidden|invalid_request|
// not_found|conflict|storage_error.
std::string error_body(std::string_view type, std::string_view message);

}  // namespace llmproxy::admin
