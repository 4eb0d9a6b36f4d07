// Password hashing for admin users: PBKDF2-HMAC-SHA256 from OpenSSL with a
// random 16-byte salt. The encoded form carries its own parameters, so the
// iteration count can be raised later without invalidating stored hashes.
#pragma once

#include <string>
#include <string_view>

namespace llmproxy::crypto {

// OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256.
inline constexpr int kPasswordIterations = 600'000;

// "pbkdf2-sha256$<iterations>$<salt base64>$<hash base64>".
std::string hash_password(std::string_view password, int iterations = kPasswordIterations);

// True when password matches encoded. A malformed encoding never matches.
// Comparison time does not depend on where the hashes differ.
bool verify_password(std::string_view password, std::string_view encoded);

}  // namespace llmproxy::crypto
