// admin add | list | delete | passwd | set-role
#include "lib/crypto/password.h"
#include "lib/domain/error.h"
#include "lib/domain/time.h"
#include "lib/ops/ops.h"

namespace llmproxy::ops {
namespace {

constexpr std::size_t kMaxUsernameLength = 64;
constexpr std::size_t kMaxPasswordBytes = 1024;

AdminUser without_hash(AdminUser u) {
  u.password_hash.clear();
  return u;
}

AdminUser find_or_throw(Store& store, std::string_view username) {
  std::optional<AdminUser> u = store.find_admin_user(username);
  if (!u) throw not_found("admin user '" + std::string(username) + "' not found");
  return std::move(*u);
}

}  // namespace

void check_admin_username(std::string_view username) {
  if (username.empty()) throw invalid("the username must not be empty");
  if (username.size() > kMaxUsernameLength)
    throw invalid("the username is longer than " + std::to_string(kMaxUsernameLength) +
                  " characters");
  for (char c : username) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '@' || c == '-';
    if (!ok)
      throw invalid("the username '" + std::string(username) +
                    "' may contain only letters, digits and . _ @ -");
  }
}

void check_admin_password(std::string_view password) {
  // Characters, not bytes: a UTF-8 continuation byte does not start one.
  std::size_t chars = 0;
  for (unsigned char c : password)
    if ((c & 0xc0) != 0x80) ++chars;
  if (chars < kMinAdminPasswordLength)
    throw invalid("the password must be at least " + std::to_string(kMinAdminPasswordLength) +
                  " characters long");
  if (password.size() > kMaxPasswordBytes)
    throw invalid("the password must be at most " + std::to_string(kMaxPasswordBytes) +
                  " bytes long");
}

AdminRole parse_role(std::string_view text) {
  std::optional<AdminRole> role = parse_admin_role(text);
  if (!role) throw invalid("the role must be admin or viewer, not '" + std::string(text) + "'");
  return *role;
}

AdminUser add_admin_user(Store& store, std::string_view username, AdminRole role,
                         std::string_view password) {
  check_admin_username(username);
  check_admin_password(password);
  // A taken name fails before the deliberately slow hash; the unique index
  // still decides a race.
  if (store.find_admin_user(username))
    throw conflict("an admin user named '" + std::string(username) + "' already exists");
  AdminUser u;
  u.username = std::string(username);
  u.role = role;
  u.password_hash = crypto::hash_password(password);
  AdminUser out;
  store.transaction([&] {
    store.insert_admin_user(u);
    out = find_or_throw(store, u.username);
  });
  return without_hash(std::move(out));
}

std::vector<AdminUser> list_admin_users(Store& store) {
  std::vector<AdminUser> out = store.list_admin_users();
  for (AdminUser& u : out) u.password_hash.clear();
  return out;
}

namespace {

void refuse_losing_the_last_admin(Store& store, const AdminUser& u) {
  if (u.role != AdminRole::kAdmin) return;
  for (const AdminUser& other : store.list_admin_users()) {
    if (other.role == AdminRole::kAdmin && other.id != u.id) return;
  }
  throw conflict("'" + u.username +
                 "' is the last admin user; make another user an admin first (or use the CLI)");
}

}  // namespace

void remove_admin_user(Store& store, std::string_view username, bool keep_an_admin) {
  store.transaction([&] {
    AdminUser u = find_or_throw(store, username);
    if (keep_an_admin) refuse_losing_the_last_admin(store, u);
    store.delete_admin_user(u.id);
  });
}

AdminUser set_admin_password(Store& store, std::string_view username, std::string_view password) {
  check_admin_password(password);
  find_or_throw(store, username);  // an unknown name fails before the slow hash
  std::string hash = crypto::hash_password(password);
  AdminUser out;
  store.transaction([&] {
    AdminUser u = find_or_throw(store, username);
    u.password_hash = hash;
    store.update_admin_user(u);  // new updated_at: tokens issued before it are void
    out = find_or_throw(store, username);
  });
  return without_hash(std::move(out));
}

AdminUser set_admin_role(Store& store, std::string_view username, AdminRole role,
                         bool keep_an_admin) {
  AdminUser out;
  store.transaction([&] {
    AdminUser u = find_or_throw(store, username);
    if (u.role != role) {  // unchanged: the user's tokens stay valid
      if (keep_an_admin) refuse_losing_the_last_admin(store, u);
      u.role = role;
      store.update_admin_user(u);
      u = find_or_throw(store, username);
    }
    out = std::move(u);
  });
  return without_hash(std::move(out));
}

nlohmann::ordered_json admin_user_json(const AdminUser& u) {
  return {
      {"id", u.id},
      {"username", u.username},
      {"role", to_string(u.role)},
      {"created_at", format_time(u.created_at)},
      {"updated_at", format_time(u.updated_at)},
  };
}

}  // namespace llmproxy::ops
