// Hashing, randomness and encodings from OpenSSL.
#pragma once

#include <string>
#include <string_view>

namespace llmproxy::crypto {

// Lowercase hex SHA-256.
std::string sha256_hex(std::string_view data);
// Raw 32-byte SHA-256.
std::string sha256(std::string_view data);
std::string hmac_sha256(std::string_view key, std::string_view data);
// Cryptographically secure random bytes (RAND_bytes); throws on failure.
std::string random_bytes(std::size_t n);
std::string hex(std::string_view bytes);
std::string base64(std::string_view bytes);
std::string base64url(std::string_view bytes);  // no padding
// Returns false on malformed input.
bool base64_decode(std::string_view text, std::string& out);
// Compares in time independent of where the inputs differ.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace llmproxy::crypto
