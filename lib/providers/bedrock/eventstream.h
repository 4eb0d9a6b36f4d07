// An incremental decoder for AWS's binary event stream
// (application/vnd.amazon.eventstream), the framing of Bedrock's
// ConverseStream. Each message:
//   u32 total length | u32 headers length | u32 CRC-32 of the first 8 bytes
//   headers: u8 name length, name, u8 value type, value
//   payload
//   u32 CRC-32 of everything before it
// All integers big-endian; CRC-32 is the IEEE (zlib) one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llmproxy::providers::bedrock::eventstream {

enum HeaderType : std::uint8_t {
  kBoolTrue = 0,
  kBoolFalse = 1,
  kByte = 2,
  kShort = 3,
  kInt = 4,
  kLong = 5,
  kBytes = 6,
  kString = 7,
  kTimestamp = 8,
  kUuid = 9,
};

struct Header {
  std::string name;
  std::uint8_t type = kString;
  std::string value;  // string / byte-array contents; raw big-endian bytes otherwise
};

struct Message {
  std::vector<Header> headers;
  std::string payload;

  // The value of a string header, or "" when absent.
  std::string_view header(std::string_view name) const;
};

// CRC-32 (IEEE 802.3, reflected, as zlib's crc32), continuing from `crc`.
std::uint32_t crc32(std::string_view data, std::uint32_t crc = 0);

// Encodes a message with string headers (tests and tools).
std::string encode(const Message& message);

class Decoder {
 public:
  // Largest message accepted; Bedrock's are far smaller.
  static constexpr std::uint32_t kMaxMessage = 16 * 1024 * 1024;

  // Appends the complete messages found in `bytes` to `out`. Returns false
  // once the stream is malformed (bad length, CRC mismatch, bad header); the
  // decoder then stays failed and ignores further input.
  bool feed(std::string_view bytes, std::vector<Message>& out);
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  // Bytes of an incomplete message still waiting for the rest.
  std::size_t pending() const { return buffer_.size(); }

 private:
  bool parse(std::string_view frame, Message& m);

  std::string buffer_;
  std::string error_;
};

}  // namespace llmproxy::providers::bedrock::eventstream
