// Unit tests for lib/crypto (hashing, encodings, SecretBox), the virtual-key
// helpers in lib/ops and the time helpers in lib/domain/time.h.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "lib/crypto/hash.h"
#include "lib/crypto/secret_box.h"
#include "lib/domain/error.h"
#include "lib/domain/time.h"
#include "lib/ops/ops.h"

namespace llmproxy {
namespace {

namespace fs = std::filesystem;

void expect_error_kind(const std::function<void()>& fn, ErrorKind kind) {
  try {
    fn();
    ADD_FAILURE() << "expected llmproxy::Error, nothing was thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_STRNE(e.what(), "");
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected llmproxy::Error, got: " << e.what();
  }
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Sets or removes an environment variable for the life of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_.c_str(), old_->c_str(), 1);
    else
      unsetenv(name_.c_str());
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

class TempDir {
 public:
  TempDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/llm-proxy-unit-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error(std::strerror(errno));
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// ---- hashing and encodings --------------------------------------------------------------

TEST(Hash, Sha256KnownVectors) {
  EXPECT_EQ(crypto::sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(crypto::sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(crypto::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  std::string raw = crypto::sha256("abc");
  ASSERT_EQ(raw.size(), 32u);
  EXPECT_EQ(crypto::hex(raw), crypto::sha256_hex("abc"));
  EXPECT_EQ(static_cast<unsigned char>(raw[0]), 0xba);
}

TEST(Hash, HmacSha256Rfc4231) {
  EXPECT_EQ(crypto::hex(crypto::hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Hash, HexIsLowercaseTwoDigitsPerByte) {
  EXPECT_EQ(crypto::hex(std::string("\x00\xff\x10\xab", 4)), "00ff10ab");
  EXPECT_EQ(crypto::hex(""), "");
}

TEST(Hash, RandomBytes) {
  std::string a = crypto::random_bytes(32);
  std::string b = crypto::random_bytes(32);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(b.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_EQ(crypto::random_bytes(0).size(), 0u);
  EXPECT_EQ(crypto::random_bytes(7).size(), 7u);
}

TEST(Hash, ConstantTimeEqual) {
  EXPECT_TRUE(crypto::constant_time_equal("secret", "secret"));
  EXPECT_TRUE(crypto::constant_time_equal("", ""));
  EXPECT_FALSE(crypto::constant_time_equal("secret", "secreT"));
  EXPECT_FALSE(crypto::constant_time_equal("Secret", "secret"));
  EXPECT_FALSE(crypto::constant_time_equal("secret", "secret2"));
  EXPECT_FALSE(crypto::constant_time_equal("secret", ""));
}

TEST(Base64, Rfc4648Vectors) {
  EXPECT_EQ(crypto::base64(""), "");
  EXPECT_EQ(crypto::base64("f"), "Zg==");
  EXPECT_EQ(crypto::base64("fo"), "Zm8=");
  EXPECT_EQ(crypto::base64("foo"), "Zm9v");
  EXPECT_EQ(crypto::base64("foob"), "Zm9vYg==");
  EXPECT_EQ(crypto::base64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(crypto::base64("foobar"), "Zm9vYmFy");
}

TEST(Base64, UrlAlphabetWithoutPadding) {
  const std::string bytes("\xfb\xff\xfe", 3);
  EXPECT_EQ(crypto::base64(bytes), "+//+");
  EXPECT_EQ(crypto::base64url(bytes), "-__-");
  EXPECT_EQ(crypto::base64url("f"), "Zg");
  EXPECT_EQ(crypto::base64url("fo"), "Zm8");
  EXPECT_EQ(crypto::base64url(std::string("\xfb\xff", 2)), "-_8");
  for (int i = 0; i < 50; ++i) {
    std::string s = crypto::base64url(crypto::random_bytes(static_cast<std::size_t>(i)));
    EXPECT_EQ(s.find_first_of("+/="), std::string::npos) << s;
  }
}

TEST(Base64, DecodeKnownText) {
  std::string out;
  ASSERT_TRUE(crypto::base64_decode("Zm9vYmFy", out));
  EXPECT_EQ(out, "foobar");
  ASSERT_TRUE(crypto::base64_decode("Zm9vYg==", out));
  EXPECT_EQ(out, "foob");
  ASSERT_TRUE(crypto::base64_decode("Zm9vYmE=", out));
  EXPECT_EQ(out, "fooba");
  // Unpadded and URL-safe input decode too.
  ASSERT_TRUE(crypto::base64_decode("Zm9vYg", out));
  EXPECT_EQ(out, "foob");
  ASSERT_TRUE(crypto::base64_decode("-_8", out));
  EXPECT_EQ(out, std::string("\xfb\xff", 2));
  ASSERT_TRUE(crypto::base64_decode("", out));
  EXPECT_EQ(out, "");
}

TEST(Base64, RoundTripsEveryLength) {
  for (std::size_t n = 0; n <= 70; ++n) {
    std::string bytes = crypto::random_bytes(n);
    std::string out = "stale";
    ASSERT_TRUE(crypto::base64_decode(crypto::base64(bytes), out)) << n;
    EXPECT_EQ(out, bytes) << n;
    out = "stale";
    ASSERT_TRUE(crypto::base64_decode(crypto::base64url(bytes), out)) << n;
    EXPECT_EQ(out, bytes) << n;
  }
  // All byte values.
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  std::string out;
  ASSERT_TRUE(crypto::base64_decode(crypto::base64(all), out));
  EXPECT_EQ(out, all);
  ASSERT_TRUE(crypto::base64_decode(crypto::base64url(all), out));
  EXPECT_EQ(out, all);
}

TEST(Base64, RejectsCharactersOutsideTheAlphabet) {
  std::string out;
  for (const char* bad : {"!!!!", "Zm9v!", "Zm9v$A==", "Zm 9v", "Zm9v\x01", "Zm9v.Zg", "ä"}) {
    EXPECT_FALSE(crypto::base64_decode(bad, out))
        << "'" << bad << "' decoded to " << out.size() << " bytes";
  }
}

TEST(Base64, RejectsImpossibleLength) {
  // One character left over carries only 6 bits: no byte can end there.
  std::string out;
  for (const char* bad : {"Z", "Zm9vY", "Zm9vYmFyZ"}) {
    EXPECT_FALSE(crypto::base64_decode(bad, out))
        << "'" << bad << "' decoded to " << out.size() << " bytes";
  }
}

TEST(Base64, RejectsMisplacedPadding) {
  std::string out;
  for (const char* bad : {"Zg==Zg==", "Zg=a", "=Zm9", "Zm9v===="}) {
    EXPECT_FALSE(crypto::base64_decode(bad, out))
        << "'" << bad << "' decoded to " << out.size() << " bytes";
  }
}

// ---- SecretBox ------------------------------------------------------------------------------

crypto::SecretBox::Key key_of(unsigned char fill) {
  crypto::SecretBox::Key k;
  k.fill(fill);
  return k;
}

TEST(SecretBox, SealOpenRoundTrip) {
  crypto::SecretBox box(key_of(7));
  std::string binary("\x00\x01\xff\n secret", 11);
  for (const std::string& plain : {std::string("x"), std::string("AIzaSy-PLAINTEXT-SECRET-123"),
                                   binary, std::string(10000, 'k'), std::string("ключ 🔑")}) {
    std::string sealed = box.seal(plain);
    EXPECT_TRUE(sealed.starts_with("v1:")) << sealed;
    if (plain.size() >= 8) {
      EXPECT_EQ(sealed.find(plain), std::string::npos);
    }
    EXPECT_EQ(box.open(sealed), plain);
    // Another box with the same key opens it too.
    EXPECT_EQ(crypto::SecretBox(key_of(7)).open(sealed), plain);
  }
}

TEST(SecretBox, EmptyPlaintextSealsToEmpty) {
  crypto::SecretBox box(key_of(1));
  EXPECT_EQ(box.seal(""), "");
  EXPECT_EQ(box.open(""), "");
}

TEST(SecretBox, SameSecretTwiceGivesDifferentCiphertexts) {
  crypto::SecretBox box(key_of(3));
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) seen.insert(box.seal("same plaintext"));
  EXPECT_EQ(seen.size(), 20u) << "a fresh nonce per message";
  for (const std::string& s : seen) EXPECT_EQ(box.open(s), "same plaintext");
}

TEST(SecretBox, TamperingIsDetected) {
  crypto::SecretBox box(key_of(9));
  const std::string plain = "provider-api-key-123456";
  const std::string sealed = box.seal(plain);
  std::string raw;
  ASSERT_TRUE(crypto::base64_decode(sealed.substr(3), raw));
  ASSERT_EQ(raw.size(), 12 + plain.size() + 16) << "nonce | ciphertext | tag";
  // Flip one bit in the nonce, the ciphertext and the tag in turn.
  for (std::size_t pos : {std::size_t{0}, std::size_t{11}, std::size_t{12}, std::size_t{20},
                          raw.size() - 16, raw.size() - 1}) {
    std::string bad = raw;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x01);
    expect_error_kind([&] { (void)box.open("v1:" + crypto::base64(bad)); }, ErrorKind::kStorage);
  }
  // Truncated, extended, wrong prefix, not base64.
  expect_error_kind([&] { (void)box.open("v1:" + crypto::base64(raw.substr(0, raw.size() - 1))); },
                    ErrorKind::kStorage);
  expect_error_kind([&] { (void)box.open("v1:" + crypto::base64(raw + "x")); },
                    ErrorKind::kStorage);
  expect_error_kind([&] { (void)box.open("v1:" + crypto::base64(raw.substr(0, 20))); },
                    ErrorKind::kStorage);
  expect_error_kind([&] { (void)box.open("v2:" + sealed.substr(3)); }, ErrorKind::kStorage);
  expect_error_kind([&] { (void)box.open(sealed.substr(3)); }, ErrorKind::kStorage);
  expect_error_kind([&] { (void)box.open("v1:!!!not-base64!!!"); }, ErrorKind::kStorage);
  expect_error_kind([&] { (void)box.open(plain); }, ErrorKind::kStorage);
  // The untouched message still opens.
  EXPECT_EQ(box.open(sealed), plain);
}

TEST(SecretBox, DifferentKeyCannotOpen) {
  std::string sealed = crypto::SecretBox(key_of(1)).seal("the secret");
  crypto::SecretBox other(key_of(2));
  expect_error_kind([&] { (void)other.open(sealed); }, ErrorKind::kStorage);
  try {
    (void)other.open(sealed);
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("the secret"), std::string::npos) << e.what();
  }
}

TEST(SecretBox, Passphrase) {
  auto a = crypto::SecretBox::from_passphrase("operator secret");
  auto b = crypto::SecretBox::from_passphrase("operator secret");
  auto c = crypto::SecretBox::from_passphrase("operator secreT");
  std::string sealed = a.seal("value");
  EXPECT_EQ(b.open(sealed), "value");
  expect_error_kind([&] { (void)c.open(sealed); }, ErrorKind::kStorage);
  // Any length works.
  auto longer = crypto::SecretBox::from_passphrase(std::string(1000, 'p'));
  EXPECT_EQ(longer.open(longer.seal("v")), "v");
}

TEST(SecretBox, KeyFileIsCreatedWithMode0600AndReused) {
  ScopedEnv no_secret("LLM_PROXY_SECRET", nullptr);
  TempDir dir;
  const fs::path file = dir.path() / "t.db.key";
  ASSERT_FALSE(fs::exists(file));

  auto first = crypto::SecretBox::from_env_or_file(file.string());
  ASSERT_TRUE(fs::exists(file));
  struct stat st {};
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  const std::string content = read_all(file);
  EXPECT_TRUE(std::regex_match(content, std::regex("[0-9a-f]{64}\n"))) << content;

  std::string sealed = first.seal("api key");
  auto second = crypto::SecretBox::from_env_or_file(file.string());
  EXPECT_EQ(read_all(file), content) << "an existing key file is never rewritten";
  EXPECT_EQ(second.open(sealed), "api key");

  // A different key file is a different key.
  auto other = crypto::SecretBox::from_env_or_file((dir.path() / "other.key").string());
  expect_error_kind([&] { (void)other.open(sealed); }, ErrorKind::kStorage);
  EXPECT_NE(read_all(dir.path() / "other.key"), content);
}

TEST(SecretBox, ExistingKeyFileIsUsed) {
  ScopedEnv no_secret("LLM_PROXY_SECRET", nullptr);
  TempDir dir;
  const fs::path file = dir.path() / "given.key";
  {
    std::ofstream out(file);
    out << "  my-operator-key  \n";
  }
  auto box = crypto::SecretBox::from_env_or_file(file.string());
  EXPECT_EQ(crypto::SecretBox::from_passphrase("my-operator-key").open(box.seal("v")), "v");
}

TEST(SecretBox, EnvironmentSecretWinsAndCreatesNoFile) {
  ScopedEnv secret("LLM_PROXY_SECRET", "from-the-environment");
  TempDir dir;
  const fs::path file = dir.path() / "t.db.key";
  auto box = crypto::SecretBox::from_env_or_file(file.string());
  EXPECT_FALSE(fs::exists(file));
  EXPECT_EQ(crypto::SecretBox::from_passphrase("from-the-environment").open(box.seal("v")), "v");
}

TEST(SecretBox, UnusableKeyFileIsAStorageError) {
  ScopedEnv no_secret("LLM_PROXY_SECRET", nullptr);
  TempDir dir;
  expect_error_kind(
      [&] { (void)crypto::SecretBox::from_env_or_file((dir.path() / "no/such/dir.key").string()); },
      ErrorKind::kStorage);
  const fs::path empty = dir.path() / "empty.key";
  { std::ofstream out(empty); }
  expect_error_kind([&] { (void)crypto::SecretBox::from_env_or_file(empty.string()); },
                    ErrorKind::kStorage);
}

// ---- virtual-key helpers -------------------------------------------------------------------

TEST(VkeyHelpers, GenerateKeyFormat) {
  const std::regex format("sk-[A-Za-z0-9_-]{43}");
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string key = ops::generate_key();
    EXPECT_TRUE(std::regex_match(key, format)) << key;
    seen.insert(key);
  }
  EXPECT_EQ(seen.size(), 100u);
}

// The hint is "<head>...<tail>" taken from the key itself.
std::size_t revealed(const std::string& key, const std::string& hint) {
  auto dots = hint.find("...");
  EXPECT_NE(dots, std::string::npos) << hint;
  if (dots == std::string::npos) return hint.size();
  std::string head = hint.substr(0, dots);
  std::string tail = hint.substr(dots + 3);
  EXPECT_TRUE(key.starts_with(head)) << key << " / " << hint;
  EXPECT_TRUE(key.ends_with(tail)) << key << " / " << hint;
  return head.size() + tail.size();
}

TEST(VkeyHelpers, KeyHintOfAGeneratedKey) {
  for (int i = 0; i < 20; ++i) {
    std::string key = ops::generate_key();
    std::string hint = ops::key_hint(key);
    std::size_t n = revealed(key, hint);
    EXPECT_GT(n, 0u) << hint;
    EXPECT_LE(n, 11u) << hint;
    EXPECT_LE(4 * n, key.size()) << hint;
    EXPECT_TRUE(hint.starts_with("sk-")) << hint;
  }
}

TEST(VkeyHelpers, KeyHintNeverRevealsMoreThanAQuarterOfAShortKey) {
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  for (std::size_t len = 8; len <= 60; ++len) {
    std::string key = alphabet.substr(0, len);
    std::string hint = ops::key_hint(key);
    std::size_t n = revealed(key, hint);
    EXPECT_LE(4 * n, len) << "key of " << len << " characters: hint '" << hint << "' shows " << n;
  }
  EXPECT_EQ(ops::key_hint("sk-proxy-123").find("proxy"), std::string::npos);
}

// ---- time ---------------------------------------------------------------------------------------

constexpr TimeMs kDec31 = 1798675200000;  // 2026-12-31T00:00:00Z
constexpr TimeMs kHour = 3600000;
constexpr TimeMs kDay = 24 * kHour;

TEST(Time, ParsesDatesAndTimes) {
  EXPECT_EQ(parse_time("2026-12-31"), kDec31);
  EXPECT_EQ(parse_time("2026-12-31T12:00"), kDec31 + 12 * kHour);
  EXPECT_EQ(parse_time("2026-12-31T12:00:00Z"), kDec31 + 12 * kHour);
  EXPECT_EQ(parse_time("2026-12-31T12:00:00z"), kDec31 + 12 * kHour);
  EXPECT_EQ(parse_time("2026-12-31 12:00:00"), kDec31 + 12 * kHour);
  EXPECT_EQ(parse_time("2026-12-31T23:59:59Z"), kDec31 + kDay - 1000);
  EXPECT_EQ(parse_time("2026-12-31T12:00:00.250Z"), kDec31 + 12 * kHour);
  EXPECT_EQ(parse_time("1970-01-01"), 0);
  EXPECT_EQ(parse_time("2000-01-01"), TimeMs{946684800000});
  EXPECT_EQ(parse_time("2024-02-29"), TimeMs{1709164800000});
}

TEST(Time, ParsesOffsets) {
  const TimeMs noon = kDec31 + 12 * kHour;
  EXPECT_EQ(parse_time("2026-12-31T14:00:00+02:00"), noon);
  EXPECT_EQ(parse_time("2026-12-31T10:00:00-02:00"), noon);
  EXPECT_EQ(parse_time("2026-12-31T17:30:00+05:30"), noon);
  EXPECT_EQ(parse_time("2026-12-31T14:00+02:00"), noon);
  EXPECT_EQ(parse_time("2026-12-31T12:00:00+00:00"), noon);
  // Crossing midnight.
  EXPECT_EQ(parse_time("2027-01-01T01:00:00+02:00"), kDec31 + 23 * kHour);
}

TEST(Time, RejectsMalformedAndImpossibleTimes) {
  for (const char* bad : {"",
                          "abc",
                          "2026",
                          "2026-12",
                          "2026-1-01",
                          "2026-12-1",
                          "26-12-31",
                          "2026/12/31",
                          "2026-02-30",
                          "2026-02-29",
                          "2026-13-01",
                          "2026-00-10",
                          "2026-04-31",
                          "2026-12-00",
                          "2026-12-31T24:00",
                          "2026-12-31T12:60",
                          "2026-12-31T12",
                          "2026-12-31T",
                          "2026-12-31X",
                          "2026-12-31T12:00:00Zjunk",
                          "2026-12-31 junk",
                          "2026-12-31T12:00:00+2",
                          "24h",
                          "7d"}) {
    EXPECT_EQ(parse_time(bad), std::nullopt) << "'" << bad << "'";
  }
}

TEST(Time, ParseTimeOrAgo) {
  const TimeMs now = kDec31 + 5 * kHour + 1234;
  EXPECT_EQ(parse_time_or_ago("24h", now), now - kDay);
  EXPECT_EQ(parse_time_or_ago("7d", now), now - 7 * kDay);
  EXPECT_EQ(parse_time_or_ago("30m", now), now - 30 * 60000);
  EXPECT_EQ(parse_time_or_ago("90s", now), now - 90000);
  EXPECT_EQ(parse_time_or_ago("0h", now), now);
  // Absolute times still work and ignore now.
  EXPECT_EQ(parse_time_or_ago("2026-12-31", now), kDec31);
  EXPECT_EQ(parse_time_or_ago("2026-12-31T12:00:00Z", now), kDec31 + 12 * kHour);
  for (const char* bad :
       {"", "h", "24", "-5h", "5x", "h24", "2.5h", "24 h", "1e3d", "2026-02-30", "yesterday"}) {
    EXPECT_EQ(parse_time_or_ago(bad, now), std::nullopt) << "'" << bad << "'";
  }
}

TEST(Time, FormatTime) {
  EXPECT_EQ(format_time(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(format_time(kDec31), "2026-12-31T00:00:00Z");
  EXPECT_EQ(format_time(kDec31 + kDay - 1), "2026-12-31T23:59:59Z") << "truncates to seconds";
  EXPECT_EQ(format_time(1709164800000), "2024-02-29T00:00:00Z");
  EXPECT_EQ(format_time(-1), "1969-12-31T23:59:59Z");
  EXPECT_EQ(format_day(kDec31 + 23 * kHour), "2026-12-31");
  EXPECT_EQ(format_day(kDec31 + kDay), "2027-01-01");
}

TEST(Time, FormatParseRoundTrip) {
  for (const char* text : {"2026-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "2000-02-29T12:34:56Z",
                           "2099-06-30T12:00:00Z"}) {
    auto t = parse_time(text);
    ASSERT_TRUE(t.has_value()) << text;
    EXPECT_EQ(format_time(*t), text);
  }
  for (TimeMs t : {TimeMs{0}, kDec31 + 1000, TimeMs{1234567890000}, TimeMs{4102444799000}}) {
    EXPECT_EQ(parse_time(format_time(t)), t) << t;
  }
  TimeMs now = now_ms();
  EXPECT_EQ(parse_time(format_time(now)), now - now % 1000);
}

}  // namespace
}  // namespace llmproxy
