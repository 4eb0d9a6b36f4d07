// The dashboard's files as compiled into the binary: the table is generated at
// build time by lib/admin/embed_assets.cmake from lib/admin/dashboard/.
#pragma once

#include <cstddef>

namespace llmproxy::admin::embedded {

struct File {
  const char* path;  // relative to lib/admin/dashboard/, e.g. "app.js"
  const unsigned char* data;
  std::size_t size;
  const char* etag;  // a strong ETag, quotes included: "\"<sha-256 prefix>\""
};

extern const File kFiles[];
extern const std::size_t kFileCount;

}  // namespace llmproxy::admin::embedded
