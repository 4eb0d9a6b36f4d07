// A single-pass JSON validator that also reports where chosen top-level keys'
// values sit in the text. The proxy's hot path uses it instead of building a
// DOM: it must reject malformed bodies and find `model`, `stream` and friends,
// but it forwards the client's bytes unchanged apart from small splices.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace llmproxy::json_scan {

struct Span {
  std::size_t begin = 0;
  std::size_t end = 0;  // one past the value's last byte
  bool found = false;

  std::string_view in(std::string_view text) const { return text.substr(begin, end - begin); }
};

// Validates `text` as exactly one JSON value (RFC 8259; surrounding whitespace
// allowed; nesting up to 256 levels). If it is an object, the value spans of
// the top-level keys named in `keys` are written to the matching `out` slot
// (the last occurrence wins, as in most parsers). Returns false and sets
// `error` (with the byte offset) when the text is not valid JSON.
bool scan(std::string_view text, std::span<const std::string_view> keys, std::span<Span> out,
          std::string& error, bool* is_object = nullptr);

// True for `true`; false for anything else (false, null, absent).
bool is_true(std::string_view value);
// Decodes a JSON string literal (with quotes). Returns false if it is not one.
bool decode_string(std::string_view literal, std::string& out);
// Encodes s as a JSON string literal (with quotes).
std::string encode_string(std::string_view s);

}  // namespace llmproxy::json_scan
