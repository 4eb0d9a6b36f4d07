// The secret part of a connection, sealed into one opaque string for storage.
// Shared by every backend so that what is encrypted, and how, is decided once.
#pragma once

#include <string>
#include <string_view>

#include "lib/crypto/secret_box.h"
#include "lib/domain/types.h"

namespace llmproxy::storage {

// Seals api_key, secret_access_key, session_token and headers (their values may
// carry credentials) as AES-256-GCM-encrypted JSON.
std::string seal_connection_secrets(const crypto::SecretBox& box, const Connection& c);
// Fills those fields of c back in. Throws Error(kStorage) on a wrong key.
void open_connection_secrets(const crypto::SecretBox& box, std::string_view sealed, Connection& c);

// The key for a backend that has no place beside its data for a key file
// (PostgreSQL, MongoDB): LLM_PROXY_SECRET if set, else the contents of the file
// LLM_PROXY_SECRET_FILE names (read, never created: every instance on the
// database must use the same key, so one is not made up on the spot). Both
// derive the key exactly as SQLite's key file does, so an existing
// llm-proxy.db.key can be named here. Throws Error(kStorage) when neither is
// set or the file cannot be read; `backend` names the backend in the message.
crypto::SecretBox secret_box_from_env(std::string_view backend);

}  // namespace llmproxy::storage
