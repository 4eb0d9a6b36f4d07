// Who is calling: the presented key checked against the master key and the
// snapshot's hashed virtual keys. No storage access.
#pragma once

#include <string>
#include <string_view>

#include "lib/config/snapshot.h"

namespace llmproxy::auth {

struct Principal {
  const config::KeyEntry* key = nullptr;  // null for the master key
  bool master = false;
};

enum class AuthStatus { kOk, kMissing, kUnknown, kDisabled, kExpired };

struct AuthResult {
  AuthStatus status = AuthStatus::kMissing;
  Principal principal;
};

AuthResult authenticate(const config::Snapshot& snapshot, std::string_view presented,
                        std::string_view master_key, TimeMs now);

// The key from `Authorization: Bearer …`, `x-api-key` or `api-key`.
std::string_view extract_key(std::string_view authorization, std::string_view x_api_key,
                             std::string_view api_key);

}  // namespace llmproxy::auth
