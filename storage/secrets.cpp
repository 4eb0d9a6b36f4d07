#include "storage/secrets.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

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

crypto::SecretBox secret_box_from_env(std::string_view backend) {
  if (const char* env = std::getenv("LLM_PROXY_SECRET"); env && *env) {
    return crypto::SecretBox::from_passphrase(env);
  }
  const char* file = std::getenv("LLM_PROXY_SECRET_FILE");
  if (!file || !*file) {
    throw storage_error(
        "the " + std::string(backend) +
        " backend needs the key that encrypts provider secrets: set LLM_PROXY_SECRET, or "
        "LLM_PROXY_SECRET_FILE to a file holding it (e.g. made with `openssl rand -hex 32`); "
        "every instance using the database needs the same key");
  }
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  auto space = [](char ch) { return std::isspace(static_cast<unsigned char>(ch)) != 0; };
  while (!text.empty() && space(text.back())) text.pop_back();
  std::size_t start = 0;
  while (start < text.size() && space(text[start])) ++start;
  text.erase(0, start);
  if (!in || text.empty()) {
    throw storage_error("key file " + std::string(file) +
                        " (LLM_PROXY_SECRET_FILE) is missing, empty or unreadable");
  }
  return crypto::SecretBox::from_passphrase(text);
}

}  // namespace llmproxy::storage
