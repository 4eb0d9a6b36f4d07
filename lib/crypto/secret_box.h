// Authenticated encryption of secrets at rest (provider API keys and the like):
// AES-256-GCM with a random 96-bit nonce per message.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace llmproxy::crypto {

class SecretBox {
 public:
  using Key = std::array<unsigned char, 32>;

  explicit SecretBox(const Key& key) : key_(key) {}
  // Derives the key from an operator-supplied secret of any length.
  static SecretBox from_passphrase(std::string_view secret);
  // Loads the key from LLM_PROXY_SECRET if set, otherwise from key_file,
  // creating it (mode 0600, 32 random bytes, hex) when it does not exist.
  static SecretBox from_env_or_file(const std::string& key_file);

  // "v1:" + base64(nonce | ciphertext | tag). Empty plaintext seals to "".
  std::string seal(std::string_view plaintext) const;
  // Throws llmproxy::Error(kStorage) when the data was sealed under another key
  // or has been tampered with.
  std::string open(std::string_view sealed) const;

  // A 32-byte key for another purpose, HMAC-SHA256(key, label): stable for
  // the same key and label, unrelated across labels.
  std::string derive(std::string_view label) const;

 private:
  Key key_;
};

}  // namespace llmproxy::crypto
