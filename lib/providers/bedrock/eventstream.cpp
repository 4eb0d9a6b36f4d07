#include "lib/providers/bedrock/eventstream.h"

#include <array>

namespace llmproxy::providers::bedrock::eventstream {
namespace {

constexpr std::size_t kPrelude = 12;  // total length, headers length, prelude CRC
constexpr std::size_t kOverhead = kPrelude + 4;

constexpr std::array<std::uint32_t, 256> make_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr auto kTable = make_table();

std::uint32_t be32(std::string_view s, std::size_t at) {
  auto b = [&](std::size_t i) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + i]));
  };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

void put32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xFF);
}

// Size of a header value of `type` that has no length prefix; -1 for the
// length-prefixed ones, -2 for an unknown type.
int fixed_size(std::uint8_t type) {
  switch (type) {
    case kBoolTrue:
    case kBoolFalse:
      return 0;
    case kByte:
      return 1;
    case kShort:
      return 2;
    case kInt:
      return 4;
    case kLong:
    case kTimestamp:
      return 8;
    case kUuid:
      return 16;
    case kBytes:
    case kString:
      return -1;
    default:
      return -2;
  }
}

}  // namespace

std::string_view Message::header(std::string_view name) const {
  for (const Header& h : headers) {
    if (h.name == name && (h.type == kString || h.type == kBytes)) return h.value;
  }
  return {};
}

std::uint32_t crc32(std::string_view data, std::uint32_t crc) {
  crc = ~crc;
  for (char ch : data) crc = kTable[(crc ^ static_cast<unsigned char>(ch)) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

std::string encode(const Message& m) {
  std::string headers;
  for (const Header& h : m.headers) {
    headers += static_cast<char>(h.name.size());
    headers += h.name;
    headers += static_cast<char>(h.type);
    if (h.type == kString || h.type == kBytes) {
      headers += static_cast<char>((h.value.size() >> 8) & 0xFF);
      headers += static_cast<char>(h.value.size() & 0xFF);
    }
    headers += h.value;
  }
  std::string out;
  put32(out, static_cast<std::uint32_t>(kOverhead + headers.size() + m.payload.size()));
  put32(out, static_cast<std::uint32_t>(headers.size()));
  put32(out, crc32(out));
  out += headers;
  out += m.payload;
  put32(out, crc32(out));
  return out;
}

bool Decoder::feed(std::string_view bytes, std::vector<Message>& out) {
  if (failed()) return false;
  buffer_.append(bytes);
  std::size_t start = 0;
  while (buffer_.size() - start >= kPrelude) {
    std::string_view rest = std::string_view(buffer_).substr(start);
    std::uint32_t total = be32(rest, 0);
    std::uint32_t headers_len = be32(rest, 4);
    if (crc32(rest.substr(0, 8)) != be32(rest, 8)) {
      error_ = "event stream prelude CRC mismatch";
      break;
    }
    if (total < kOverhead || total > kMaxMessage || headers_len > total - kOverhead) {
      error_ = "event stream message has an impossible length";
      break;
    }
    if (rest.size() < total) break;  // wait for the rest
    std::string_view frame = rest.substr(0, total);
    if (crc32(frame.substr(0, total - 4)) != be32(frame, total - 4)) {
      error_ = "event stream message CRC mismatch";
      break;
    }
    Message m;
    if (!parse(frame, m)) break;
    out.push_back(std::move(m));
    start += total;
  }
  if (failed()) {
    buffer_.clear();
    return false;
  }
  buffer_.erase(0, start);
  return true;
}

bool Decoder::parse(std::string_view frame, Message& m) {
  std::uint32_t headers_len = be32(frame, 4);
  std::string_view h = frame.substr(kPrelude, headers_len);
  std::size_t i = 0;
  auto bad = [&](const char* why) {
    error_ = std::string("event stream header ") + why;
    return false;
  };
  while (i < h.size()) {
    Header header;
    std::size_t name_len = static_cast<unsigned char>(h[i++]);
    if (name_len == 0 || i + name_len + 1 > h.size()) return bad("is truncated");
    header.name.assign(h.substr(i, name_len));
    i += name_len;
    header.type = static_cast<std::uint8_t>(h[i++]);
    int size = fixed_size(header.type);
    if (size == -2) return bad("has an unknown value type");
    std::size_t len = static_cast<std::size_t>(size);
    if (size == -1) {
      if (i + 2 > h.size()) return bad("is truncated");
      len = static_cast<std::size_t>(static_cast<unsigned char>(h[i])) << 8 |
            static_cast<unsigned char>(h[i + 1]);
      i += 2;
    }
    if (i + len > h.size()) return bad("is truncated");
    header.value.assign(h.substr(i, len));
    i += len;
    m.headers.push_back(std::move(header));
  }
  m.payload.assign(frame.substr(kPrelude + headers_len, frame.size() - kOverhead - headers_len));
  return true;
}

}  // namespace llmproxy::providers::bedrock::eventstream
