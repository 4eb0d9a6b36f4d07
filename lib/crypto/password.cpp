#include "lib/crypto/password.h"

#include <openssl/evp.h>

#include <charconv>
#include <stdexcept>

#include "lib/crypto/hash.h"

namespace llmproxy::crypto {
namespace {

constexpr std::string_view kScheme = "pbkdf2-sha256";
constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kHashBytes = 32;
// Bounds on a stored count: below is not a real hash, above would let a
// tampered row make every login burn minutes of CPU.
constexpr int kMinIterations = 1'000;
constexpr int kMaxIterations = 10'000'000;

std::string pbkdf2(std::string_view password, std::string_view salt, int iterations) {
  std::string out(kHashBytes, '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), iterations, EVP_sha256(),
                        static_cast<int>(out.size()),
                        reinterpret_cast<unsigned char*>(out.data())) != 1) {
    throw std::runtime_error("PBKDF2 failed");
  }
  return out;
}

// Splits "a$b$c$d" into exactly four parts.
bool split4(std::string_view s, std::string_view (&parts)[4]) {
  for (int i = 0; i < 3; ++i) {
    std::size_t d = s.find('$');
    if (d == std::string_view::npos) return false;
    parts[i] = s.substr(0, d);
    s.remove_prefix(d + 1);
  }
  parts[3] = s;
  return s.find('$') == std::string_view::npos;
}

}  // namespace

std::string hash_password(std::string_view password, int iterations) {
  if (iterations < kMinIterations || iterations > kMaxIterations) {
    throw std::invalid_argument("PBKDF2 iteration count out of range");
  }
  std::string salt = random_bytes(kSaltBytes);
  return std::string(kScheme) + "$" + std::to_string(iterations) + "$" + base64(salt) + "$" +
         base64(pbkdf2(password, salt, iterations));
}

bool verify_password(std::string_view password, std::string_view encoded) {
  std::string_view parts[4];
  if (!split4(encoded, parts) || parts[0] != kScheme) return false;
  int iterations = 0;
  auto [end, ec] = std::from_chars(parts[1].data(), parts[1].data() + parts[1].size(), iterations);
  if (ec != std::errc() || end != parts[1].data() + parts[1].size() ||
      iterations < kMinIterations || iterations > kMaxIterations) {
    return false;
  }
  std::string salt, expected;
  if (!base64_decode(parts[2], salt) || !base64_decode(parts[3], expected) || salt.empty() ||
      expected.size() != kHashBytes) {
    return false;
  }
  return constant_time_equal(pbkdf2(password, salt, iterations), expected);
}

}  // namespace llmproxy::crypto
