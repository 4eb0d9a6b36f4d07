#include "lib/admin/token.h"

#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>

#include "lib/crypto/hash.h"

namespace llmproxy::admin {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kIssuer = "llm-proxy";

bool base64url_decode(std::string_view text, std::string& out) {
  if (text.find_first_of("+/=") != std::string_view::npos) return false;
  std::string b64(text);
  for (char& ch : b64) {
    if (ch == '-') ch = '+';
    if (ch == '_') ch = '/';
  }
  while (b64.size() % 4 != 0) b64 += '=';
  return crypto::base64_decode(b64, out);
}

std::string encode_part(const Json& j) {
  return crypto::base64url(j.dump());
}

}  // namespace

std::string TokenSigner::issue(std::string_view username, TimeMs now,
                               std::chrono::seconds ttl) const {
  static const std::string header = encode_part(Json{{"alg", "HS256"}, {"typ", "JWT"}});
  // iat keeps milliseconds (NumericDate may be fractional, RFC 7519 §2) so a
  // token is ordered exactly against the user's last change.
  Json claims = {{"iss", kIssuer},
                 {"sub", username},
                 {"iat", static_cast<double>(now) / 1000.0},
                 {"exp", now / 1000 + static_cast<std::int64_t>(ttl.count())}};
  std::string signing_input = header + "." + encode_part(claims);
  return signing_input + "." + crypto::base64url(crypto::hmac_sha256(key_, signing_input));
}

std::optional<TokenClaims> TokenSigner::verify(std::string_view token, TimeMs now) const {
  std::size_t d1 = token.find('.');
  std::size_t d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  // The signature first: nothing unauthenticated is parsed beyond this point.
  std::string signature;
  if (!base64url_decode(token.substr(d2 + 1), signature) ||
      !crypto::constant_time_equal(signature, crypto::hmac_sha256(key_, token.substr(0, d2)))) {
    return std::nullopt;
  }
  std::string header_text, claims_text;
  if (!base64url_decode(token.substr(0, d1), header_text) ||
      !base64url_decode(token.substr(d1 + 1, d2 - d1 - 1), claims_text)) {
    return std::nullopt;
  }
  Json header = Json::parse(header_text, nullptr, false);
  Json claims = Json::parse(claims_text, nullptr, false);
  if (!header.is_object() || header.value("alg", "") != "HS256" || !claims.is_object()) {
    return std::nullopt;
  }
  auto sub = claims.find("sub");
  auto iat = claims.find("iat");
  auto exp = claims.find("exp");
  if (claims.value("iss", "") != kIssuer || sub == claims.end() || !sub->is_string() ||
      iat == claims.end() || !iat->is_number() || exp == claims.end() ||
      !exp->is_number_integer()) {
    return std::nullopt;
  }
  TokenClaims out{sub->get<std::string>(), std::llround(iat->get<double>() * 1000.0),
                  exp->get<std::int64_t>() * 1000};
  if (now >= out.expires_at) return std::nullopt;
  return out;
}

bool TokenSigner::looks_like_token(std::string_view text) {
  int dots = 0;
  for (char ch : text) {
    if (ch == '.') {
      ++dots;
    } else if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') {
      return false;
    }
  }
  return dots == 2;
}

}  // namespace llmproxy::admin
