// Signed, expiring admin tokens: compact JWTs (RFC 7519) signed with
// HMAC-SHA256 (HS256). What `POST /admin/api/login` hands out and every other
// admin call may present as `Authorization: Bearer <token>`.
//
// The token only says who signed in, and when; the role and whether the user
// still exists are looked up on every call, so deleting a user or changing
// their role or password takes effect at once (tokens issued before the user's
// last change are refused).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "lib/domain/types.h"

namespace llmproxy::admin {

struct TokenClaims {
  std::string username;   // "sub"
  TimeMs issued_at = 0;   // "iat", to the millisecond
  TimeMs expires_at = 0;  // "exp", whole seconds
};

class TokenSigner {
 public:
  // key: the raw HMAC key (32 random or derived bytes).
  explicit TokenSigner(std::string key) : key_(std::move(key)) {}

  std::string issue(std::string_view username, TimeMs now, std::chrono::seconds ttl) const;

  // The claims of a well-formed token with a valid HS256 signature that has
  // not expired at `now`; nullopt for anything else (other algorithms,
  // "none", tampering, expiry, garbage).
  std::optional<TokenClaims> verify(std::string_view token, TimeMs now) const;

  // True when the text has a JWT's shape (three base64url parts), so that a
  // malformed bearer can be told apart from a wrong master key in messages.
  static bool looks_like_token(std::string_view text);

 private:
  std::string key_;
};

}  // namespace llmproxy::admin
