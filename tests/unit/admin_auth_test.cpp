// Password hashing, login tokens and login throttling of the admin API.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "lib/admin/login_throttle.h"
#include "lib/admin/token.h"
#include "lib/crypto/hash.h"
#include "lib/crypto/password.h"

namespace llmproxy {
namespace {

using namespace std::chrono_literals;

// Low iteration counts keep the tests fast; the format carries the count.
constexpr int kFast = 1000;

TEST(Password, VerifiesTheRightPasswordOnly) {
  std::string h = crypto::hash_password("correct horse battery", kFast);
  EXPECT_TRUE(h.starts_with("pbkdf2-sha256$1000$"));
  EXPECT_TRUE(crypto::verify_password("correct horse battery", h));
  EXPECT_FALSE(crypto::verify_password("correct horse batterY", h));
  EXPECT_FALSE(crypto::verify_password("", h));
}

TEST(Password, SaltsEveryHash) {
  EXPECT_NE(crypto::hash_password("same password", kFast),
            crypto::hash_password("same password", kFast));
}

TEST(Password, DefaultIsTheStrongCount) {
  std::string h = crypto::hash_password("x");
  EXPECT_TRUE(h.starts_with("pbkdf2-sha256$600000$")) << h;
  EXPECT_TRUE(crypto::verify_password("x", h));
}

TEST(Password, MalformedOrTamperedEncodingsNeverMatch) {
  std::string h = crypto::hash_password("pw", kFast);
  for (std::string bad :
       {std::string(""), std::string("pw"), std::string("pbkdf2-sha256$1000$$"),
        "scrypt" + h.substr(13), "pbkdf2-sha256$999$" + h.substr(19),
        "pbkdf2-sha256$99999999$" + h.substr(19), h + "$x", h.substr(0, h.size() - 4) + "AAA="}) {
    EXPECT_FALSE(crypto::verify_password("pw", bad)) << bad;
  }
  EXPECT_THROW(crypto::hash_password("pw", 10), std::invalid_argument);
}

std::string b64url_json(const nlohmann::json& j) {
  return crypto::base64url(j.dump());
}

TEST(Token, RoundTripsAndExpires) {
  admin::TokenSigner s("k1");
  TimeMs now = 1'763'900'000'123;
  std::string t = s.issue("alice", now, 60s);
  auto c = s.verify(t, now);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "alice");
  EXPECT_EQ(c->issued_at, now);  // to the millisecond
  EXPECT_EQ(c->expires_at, 1'763'900'060'000);
  EXPECT_TRUE(s.verify(t, now + 59'000));
  EXPECT_FALSE(s.verify(t, now + 60'000));  // expired
  EXPECT_TRUE(admin::TokenSigner::looks_like_token(t));
  EXPECT_FALSE(admin::TokenSigner::looks_like_token("sk-master-key"));
}

TEST(Token, RefusesOtherKeysForgeriesAndAlgNone) {
  admin::TokenSigner s("k1");
  TimeMs now = 1'763'900'000'000;
  std::string t = s.issue("viewer1", now, 60s);
  EXPECT_FALSE(admin::TokenSigner("k2").verify(t, now));

  std::size_t d1 = t.find('.'), d2 = t.rfind('.');
  std::string sig = t.substr(d2);
  // Claims changed, signature kept.
  std::string forged_claims = b64url_json(
      {{"iss", "llm-proxy"}, {"sub", "admin"}, {"iat", 1763900000}, {"exp", 1863900000}});
  EXPECT_FALSE(s.verify(t.substr(0, d1 + 1) + forged_claims + sig, now));
  // alg "none" with an empty signature.
  std::string none = b64url_json({{"alg", "none"}, {"typ", "JWT"}});
  EXPECT_FALSE(s.verify(none + t.substr(d1, d2 - d1) + ".", now));
  // A correctly signed token with another algorithm named is refused too.
  std::string hs512 = b64url_json({{"alg", "HS512"}, {"typ", "JWT"}});
  std::string input = hs512 + t.substr(d1, d2 - d1);
  EXPECT_FALSE(s.verify(input + "." + crypto::base64url(crypto::hmac_sha256("k1", input)), now));
  for (std::string junk :
       std::vector<std::string>{"", "a.b", "a.b.c", "..", t + ".", t.substr(0, t.size() - 2)}) {
    EXPECT_FALSE(s.verify(junk, now)) << junk;
  }
}

TEST(LoginThrottle, BlocksAfterTooManyFailuresUntilTheWindowPasses) {
  admin::LoginThrottle th(
      {.max_failures_per_client = 10, .max_failures_per_username = 3, .window = 60'000ms});
  TimeMs t0 = 1'000'000;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(th.wait_ms("10.0.0.1", "alice", t0 + i), 0);
    th.record_failure("10.0.0.1", "alice", t0 + i);
  }
  // The username is blocked from any address, until the oldest failure ages out.
  EXPECT_EQ(th.wait_ms("10.0.0.2", "alice", t0 + 10), 60'000 - 10);
  EXPECT_GT(th.wait_ms("10.0.0.1", "alice", t0 + 59'999), 0);
  EXPECT_EQ(th.wait_ms("10.0.0.1", "alice", t0 + 60'000), 0);
  // Other users are not affected by alice's failures.
  EXPECT_EQ(th.wait_ms("10.0.0.1", "bob", t0 + 10), 0);
}

TEST(LoginThrottle, BlocksAClientSprayingUsernames) {
  admin::LoginThrottle th(
      {.max_failures_per_client = 4, .max_failures_per_username = 3, .window = 60'000ms});
  for (int i = 0; i < 4; ++i) th.record_failure("10.0.0.9", "user" + std::to_string(i), 100);
  EXPECT_GT(th.wait_ms("10.0.0.9", "someone-new", 200), 0);
  EXPECT_EQ(th.wait_ms("10.0.0.10", "someone-new", 200), 0);
}

}  // namespace
}  // namespace llmproxy
