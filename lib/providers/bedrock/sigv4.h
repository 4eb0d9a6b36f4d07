// AWS Signature Version 4 (header form) for non-S3 services: canonical
// request, string to sign, signing key and the Authorization header. Pure and
// deterministic: the caller supplies the time (as X-Amz-Date).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llmproxy::providers::bedrock::sigv4 {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty when not temporary credentials
};

struct Request {
  std::string method;  // "GET", "POST"
  std::string path;    // as sent on the wire (already percent-encoded), e.g. /model/a%3Ab/converse
  std::string query;   // without '?'; may be empty
  // Every header to sign, including host and x-amz-date (and
  // x-amz-security-token when the credentials have one); names in any case.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string_view payload;
};

struct Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "content-type;host;x-amz-date"
  std::string signature;       // lowercase hex
  std::string authorization;   // the Authorization header's value
};

// 1440938160 → "20150830T123600Z".
std::string amz_date(std::int64_t unix_seconds);
// RFC 3986 percent-encoding of everything but A-Z a-z 0-9 - . _ ~ (and '/'
// when keep_slash), with uppercase hex, as SigV4 requires.
std::string uri_encode(std::string_view s, bool keep_slash);
// The canonical URI for a non-S3 service: every path segment of the wire path
// is encoded once more, so a wire "%3A" is signed as "%253A". Empty → "/".
std::string canonical_uri(std::string_view wire_path);
// Query parameters decoded, re-encoded, sorted by name then value.
std::string canonical_query(std::string_view query);
// HMAC chain "AWS4"+secret → date → region → service → "aws4_request" (raw bytes).
std::string signing_key(std::string_view secret, std::string_view date, std::string_view region,
                        std::string_view service);
// Signs `req`; `amz_date` must equal the request's x-amz-date header. The
// payload hash is x-amz-content-sha256 when that header is present, else the
// SHA-256 of the payload.
Signature sign(const Request& req, const Credentials& creds, std::string_view region,
               std::string_view service, std::string_view amz_date);

}  // namespace llmproxy::providers::bedrock::sigv4
