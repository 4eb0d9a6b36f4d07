#include "lib/admin/dashboard.h"

#include "lib/admin/dashboard_embedded.h"

namespace llmproxy::admin {
namespace {

std::string_view content_type_of(std::string_view path) {
  auto ends = [&](std::string_view ext) { return path.ends_with(ext); };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  if (ends(".ico")) return "image/x-icon";
  if (ends(".json")) return "application/json";
  return "application/octet-stream";
}

}  // namespace

std::optional<Asset> dashboard_asset(std::string_view path) {
  if (path.empty()) path = "index.html";
  for (std::size_t i = 0; i < embedded::kFileCount; ++i) {
    const embedded::File& f = embedded::kFiles[i];
    if (path != f.path) continue;
    return Asset{content_type_of(path),
                 std::string_view(reinterpret_cast<const char*>(f.data), f.size), f.etag};
  }
  return std::nullopt;
}

}  // namespace llmproxy::admin
