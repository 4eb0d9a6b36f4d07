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

}  // namespace llmproxy::storage
