#include "lib/util/json_scan.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace llmproxy::json_scan {
namespace {

class Scanner {
 public:
  Scanner(std::string_view text, std::string& error) : s_(text), error_(error) {}

  bool value(int depth) {
    if (depth > 256) return fail("nesting deeper than 256 levels");
    ws();
    if (i_ >= s_.size()) return fail("unexpected end of input");
    switch (s_[i_]) {
      case '{': return object(depth, nullptr, {}, {});
      case '[': return array(depth);
      case '"': return string();
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default: return number();
    }
  }

  bool object(int depth, bool* top, std::span<const std::string_view> keys, std::span<Span> out) {
    ++i_;  // '{'
    ws();
    if (peek('}')) return ++i_, true;
    for (;;) {
      ws();
      if (!peek('"')) return fail("expected a string key");
      std::size_t key_begin = i_ + 1;
      if (!string()) return false;
      std::string_view key = s_.substr(key_begin, i_ - 1 - key_begin);
      ws();
      if (!peek(':')) return fail("expected ':'");
      ++i_;
      ws();
      std::size_t value_begin = i_;
      if (!value(depth + 1)) return false;
      if (top) {
        for (std::size_t k = 0; k < keys.size(); ++k) {
          if (keys[k] == key) out[k] = Span{value_begin, i_, true};
        }
      }
      ws();
      if (peek(',')) {
        ++i_;
        continue;
      }
      if (peek('}')) return ++i_, true;
      return fail("expected ',' or '}'");
    }
  }

  bool top(std::span<const std::string_view> keys, std::span<Span> out, bool* is_object) {
    ws();
    bool ok;
    if (peek('{')) {
      bool flag = true;
      ok = object(1, &flag, keys, out);
      if (is_object) *is_object = true;
    } else {
      ok = value(1);
      if (is_object) *is_object = false;
    }
    if (!ok) return false;
    ws();
    if (i_ != s_.size()) return fail("unexpected data after the JSON value");
    return true;
  }

 private:
  bool array(int depth) {
    ++i_;  // '['
    ws();
    if (peek(']')) return ++i_, true;
    for (;;) {
      if (!value(depth + 1)) return false;
      ws();
      if (peek(',')) {
        ++i_;
        continue;
      }
      if (peek(']')) return ++i_, true;
      return fail("expected ',' or ']'");
    }
  }

  bool string() {
    ++i_;  // opening quote
    while (i_ < s_.size()) {
      unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') return ++i_, true;
      if (c < 0x20) return fail("control character in string");
      if (c == '\\') {
        if (++i_ >= s_.size()) break;
        char e = s_[i_];
        if (e == 'u') {
          for (int k = 0; k < 4; ++k) {
            if (++i_ >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_])))
              return fail("bad \\u escape");
          }
        } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
          return fail("bad escape in string");
        }
      }
      ++i_;
    }
    return fail("unterminated string");
  }

  bool number() {
    std::size_t start = i_;
    if (peek('-')) ++i_;
    if (peek('0')) {
      ++i_;
    } else if (digit()) {
      while (digit()) ++i_;
    } else {
      i_ = start;
      return fail("unexpected character");
    }
    if (peek('.')) {
      ++i_;
      if (!digit()) return fail("bad number");
      while (digit()) ++i_;
    }
    if (peek('e') || peek('E')) {
      ++i_;
      if (peek('+') || peek('-')) ++i_;
      if (!digit()) return fail("bad number");
      while (digit()) ++i_;
    }
    return true;
  }

  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return fail("unexpected character");
    i_ += word.size();
    return true;
  }

  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t'))
      ++i_;
  }
  bool peek(char c) const { return i_ < s_.size() && s_[i_] == c; }
  bool digit() const { return i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9'; }
  bool fail(const char* why) {
    error_ = std::string(why) + " at byte " + std::to_string(i_);
    return false;
  }

  std::string_view s_;
  std::string& error_;
  std::size_t i_ = 0;
};

}  // namespace

bool scan(std::string_view text, std::span<const std::string_view> keys, std::span<Span> out,
          std::string& error, bool* is_object) {
  for (Span& s : out) s = Span{};
  return Scanner(text, error).top(keys, out, is_object);
}

bool is_true(std::string_view value) { return value == "true"; }

bool decode_string(std::string_view literal, std::string& out) {
  if (literal.size() < 2 || literal.front() != '"') return false;
  if (literal.find('\\') == std::string_view::npos) {  // the common case
    out.assign(literal.substr(1, literal.size() - 2));
    return true;
  }
  auto j = nlohmann::json::parse(literal, nullptr, false);
  if (!j.is_string()) return false;
  out = j.get<std::string>();
  return true;
}

std::string encode_string(std::string_view s) {
  // Fast path for the common case (names, ids, model strings): printable
  // ASCII with nothing to escape. Anything else goes through nlohmann, which
  // escapes control characters and replaces invalid UTF-8.
  bool plain = std::all_of(s.begin(), s.end(), [](char c) {
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
  });
  if (plain) {
    std::string out;
    out.reserve(s.size() + 2);
    out += '"';
    out.append(s);
    out += '"';
    return out;
  }
  return nlohmann::json(std::string(s)).dump(-1, ' ', false,
                                             nlohmann::json::error_handler_t::replace);
}

}  // namespace llmproxy::json_scan
