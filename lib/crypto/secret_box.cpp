#include "lib/crypto/secret_box.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "lib/crypto/hash.h"
#include "lib/domain/error.h"

namespace llmproxy::crypto {
namespace {

constexpr std::string_view kPrefix = "v1:";
constexpr std::size_t kNonceLen = 12;
constexpr std::size_t kTagLen = 16;

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

CipherCtx new_ctx() {
  CipherCtx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  if (!ctx) throw storage_error("cannot allocate a cipher context");
  return ctx;
}

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

std::string read_key_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = trim(ss.str());
  if (!in || text.empty()) throw storage_error("key file " + path + " is empty or unreadable");
  return text;
}

}  // namespace

SecretBox SecretBox::from_passphrase(std::string_view secret) {
  // Domain-separated so the same operator secret can safely key other things.
  std::string digest = sha256(std::string("llm-proxy/secret-box/v1:").append(secret));
  Key key;
  std::memcpy(key.data(), digest.data(), key.size());
  return SecretBox(key);
}

SecretBox SecretBox::from_env_or_file(const std::string& key_file) {
  if (const char* env = std::getenv("LLM_PROXY_SECRET"); env && *env) {
    return from_passphrase(env);
  }
  int fd = ::open(key_file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    std::string text = hex(random_bytes(32)) + "\n";
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ok = (::fsync(fd) == 0) && ok;
    ::close(fd);
    if (!ok) {
      ::unlink(key_file.c_str());
      throw storage_error("cannot write key file " + key_file);
    }
  } else if (errno != EEXIST) {
    throw storage_error("cannot create key file " + key_file + ": " + std::strerror(errno));
  }
  return from_passphrase(read_key_file(key_file));
}

std::string SecretBox::seal(std::string_view plaintext) const {
  if (plaintext.empty()) return {};
  std::string nonce = random_bytes(kNonceLen);
  std::string out = nonce;
  out.resize(kNonceLen + plaintext.size() + kTagLen);
  auto* cipher = reinterpret_cast<unsigned char*>(out.data()) + kNonceLen;

  CipherCtx ctx = new_ctx();
  int len = 0;
  if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), bytes(nonce)) != 1 ||
      EVP_EncryptUpdate(ctx.get(), cipher, &len, bytes(plaintext),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), cipher + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagLen,
                          cipher + plaintext.size()) != 1) {
    throw storage_error("AES-256-GCM encryption failed");
  }
  return std::string(kPrefix) + base64(out);
}

std::string SecretBox::open(std::string_view sealed) const {
  if (sealed.empty()) return {};
  std::string raw;
  if (!sealed.starts_with(kPrefix) || !base64_decode(sealed.substr(kPrefix.size()), raw) ||
      raw.size() < kNonceLen + kTagLen) {
    throw storage_error("stored secret is malformed");
  }
  std::size_t text_len = raw.size() - kNonceLen - kTagLen;
  std::string plain(text_len, '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(raw.data());
  auto* out = reinterpret_cast<unsigned char*>(plain.data());

  CipherCtx ctx = new_ctx();
  int len = 0;
  bool ok = EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), nonce) == 1 &&
            EVP_DecryptUpdate(ctx.get(), out, &len, nonce + kNonceLen,
                              static_cast<int>(text_len)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagLen,
                                nonce + kNonceLen + text_len) == 1 &&
            EVP_DecryptFinal_ex(ctx.get(), out + len, &len) == 1;
  if (!ok) {
    throw storage_error(
        "cannot decrypt a stored provider secret: LLM_PROXY_SECRET (or the key file) differs "
        "from the one it was stored with");
  }
  return plain;
}

std::string SecretBox::derive(std::string_view label) const {
  return hmac_sha256(std::string_view(reinterpret_cast<const char*>(key_.data()), key_.size()),
                     label);
}

}  // namespace llmproxy::crypto
