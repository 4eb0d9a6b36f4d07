#include "lib/auth/authenticate.h"

#include "lib/crypto/hash.h"

namespace llmproxy::auth {

std::string_view extract_key(std::string_view authorization, std::string_view x_api_key,
                             std::string_view api_key) {
  if (authorization.size() > 7) {
    std::string_view scheme = authorization.substr(0, 7);
    if (scheme == "Bearer " || scheme == "bearer " || scheme == "BEARER ") {
      std::string_view key = authorization.substr(7);
      while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
      while (!key.empty() && key.back() == ' ') key.remove_suffix(1);
      return key;
    }
  }
  if (!x_api_key.empty()) return x_api_key;
  return api_key;
}

AuthResult authenticate(const config::Snapshot& snapshot, std::string_view presented,
                        std::string_view master_key, TimeMs now) {
  if (presented.empty()) return {AuthStatus::kMissing, {}};
  if (!master_key.empty() && crypto::constant_time_equal(presented, master_key)) {
    return {AuthStatus::kOk, {nullptr, true}};
  }
  // Lookup by hash: the hash of a wrong key reveals nothing about a right one,
  // so a plain map lookup does not leak timing about stored keys.
  const config::KeyEntry* entry = snapshot.key_by_hash(crypto::sha256_hex(presented));
  if (!entry) return {AuthStatus::kUnknown, {}};
  if (!entry->vkey.enabled) return {AuthStatus::kDisabled, {}};
  if (entry->vkey.expires_at && *entry->vkey.expires_at <= now) return {AuthStatus::kExpired, {}};
  return {AuthStatus::kOk, {entry, false}};
}

}  // namespace llmproxy::auth
