// Choosing and opening a backend from --db / LLM_PROXY_DB / DB_TYPE + DB_DSN.
#include <cstdlib>
#include <filesystem>

#include "lib/domain/error.h"
#include "storage/mongo/mongo_store.h"
#include "storage/postgres/postgres_store.h"
#include "storage/secrets.h"
#include "storage/sqlite/sqlite_store.h"
#include "storage/store.h"

namespace llmproxy::storage {
namespace {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

}  // namespace

Location parse_location(std::string_view url) {
  if (url.empty()) throw invalid("the database location is empty");
  if (url.starts_with("sqlite:")) {
    std::string_view path = url.substr(7);
    // sqlite:///abs/path (standard form) and sqlite:relative/path.
    if (path.starts_with("//")) path.remove_prefix(2);
    if (path.empty()) throw invalid("the SQLite URL '" + std::string(url) + "' has no path");
    return {"sqlite", std::string(path)};
  }
  if (url.starts_with("postgres://") || url.starts_with("postgresql://")) {
    return {"postgres", std::string(url)};
  }
  if (url.starts_with("mongodb://") || url.starts_with("mongodb+srv://")) {
    return {"mongodb", std::string(url)};
  }
  if (auto scheme = url.find("://"); scheme != std::string_view::npos) {
    throw invalid("unsupported database URL scheme '" + std::string(url.substr(0, scheme)) +
                  "' (use sqlite:///path, postgres://… or mongodb://…)");
  }
  return {"sqlite", std::string(url)};  // a plain file path
}

Location resolve_location(const std::optional<std::string>& db_flag) {
  if (db_flag) return parse_location(*db_flag);
  if (auto url = env("LLM_PROXY_DB")) return parse_location(*url);
  auto type = env("DB_TYPE");
  auto dsn = env("DB_DSN");
  if (type || dsn) {
    if (!type || !dsn) throw invalid("DB_TYPE and DB_DSN must be set together");
    if (*type == "sqlite") return dsn->find("://") == std::string::npos && !dsn->starts_with("sqlite:")
                                      ? Location{"sqlite", *dsn}
                                      : parse_location(*dsn);
    if (*type == "postgres" || *type == "postgresql") return {"postgres", *dsn};
    if (*type == "mongodb" || *type == "mongo") return {"mongodb", *dsn};
    throw invalid("DB_TYPE must be sqlite, postgres or mongodb, not '" + *type + "'");
  }
  return {"sqlite", "llm-proxy.db"};
}

crypto::SecretBox secret_box_for(const Location& where) {
  // SQLite: the key file lives beside the database so that backing up the
  // directory keeps the two together; LLM_PROXY_SECRET overrides it.
  // PostgreSQL, MongoDB: no file beside the data to keep a key in, so
  // LLM_PROXY_SECRET or LLM_PROXY_SECRET_FILE, the same for every instance.
  if (where.backend == "sqlite") return crypto::SecretBox::from_env_or_file(where.target + ".key");
  if (where.backend == "postgres") return secret_box_from_env("PostgreSQL");
  if (where.backend == "mongodb") return secret_box_from_env("MongoDB");
  throw invalid("unknown storage backend '" + where.backend + "'");
}

std::unique_ptr<Store> open_store(const Location& where) {
  if (where.backend == "sqlite") {
    std::filesystem::path dir = std::filesystem::path(where.target).parent_path();
    if (!dir.empty() && !std::filesystem::is_directory(dir)) {
      throw storage_error("cannot open SQLite database " + where.target + ": directory " +
                          dir.string() + " does not exist");
    }
    return std::make_unique<SqliteStore>(where.target, secret_box_for(where));
  }
  if (where.backend == "postgres") {
    return std::make_unique<PostgresStore>(where.target, secret_box_for(where));
  }
  if (where.backend == "mongodb") {
    return std::make_unique<MongoStore>(where.target, secret_box_for(where));
  }
  throw invalid("unknown storage backend '" + where.backend + "'");
}

}  // namespace llmproxy::storage
