#include "storage/secrets.h"

#include <nlohmann/json.hpp>

#include "lib/domain/error.h"

namespace llmproxy::storage {

std::string seal_connection_secrets(const crypto::SecretBox& box, const Connection& c) {
  nlohmann::json doc = {{"api_key", c.api_key},
                        {"secret_access_key", c.secret_access_key},
                        {"session_token", c.session_token},
                        {"headers", c.headers}};
  return box.seal(doc.dump());
}

void open_connection_secrets(const crypto::SecretBox& box, std::string_view sealed, Connection& c) {
  if (sealed.empty()) return;
  std::string plain;
  try {
    plain = box.open(sealed);
  } catch (const Error& e) {
    throw storage_error("connection '" + c.name + "': " + e.what());
  }
  auto doc = nlohmann::json::parse(plain, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) throw storage_error("connection '" + c.name + "': secrets are corrupt");
  c.api_key = doc.value("api_key", "");
  c.secret_access_key = doc.value("secret_access_key", "");
  c.session_token = doc.value("session_token", "");
  c.headers = doc.value("headers", std::vector<Header>{});
}

}  // namespace llmproxy::storage
