#include "storage/store_base.h"

#include <type_traits>

#include "lib/domain/time.h"
#include "storage/mappers.h"

namespace llmproxy::storage {
namespace {

// What the store sets: created_at/updated_at on insert (when the caller left
// them zero), updated_at on every update.
Fields inserted(Fields f, TimeMs created_at, TimeMs updated_at) {
  TimeMs now = now_ms();
  f.i64("created_at", created_at ? created_at : now)
      .i64("updated_at", updated_at ? updated_at : now);
  return f;
}

Fields updated(Fields f) {
  f.i64("updated_at", now_ms());
  return f;
}

// Runs a write whose unique violation means `taken` (a message naming what is
// already in use) rather than the database's wording.
template <class Fn>
auto unique_or(const std::string& taken, Fn&& fn) {
  try {
    return fn();
  } catch (const UniqueViolation&) {
    throw conflict(taken);
  }
}

// A virtual key has two unique columns; the violation says which.
template <class Fn>
auto vkey_unique(const VirtualKey& k, Fn&& fn) {
  try {
    return fn();
  } catch (const UniqueViolation& e) {
    if (e.detail().find("key_hash") != std::string::npos)
      throw conflict("that key is already in use");
    throw conflict("a virtual key named '" + k.name + "' already exists");
  }
}

std::string name_taken(std::string_view what, std::string_view name) {
  return std::string(what) + " named '" + std::string(name) + "' already exists";
}

template <class T>
std::optional<T> first(std::vector<T> v) {
  if (v.empty()) return std::nullopt;
  return std::move(v.front());
}

Match by_id(Id id) {
  return {"id", id};
}
Match by_text(const char* column, std::string_view v) {
  return {column, std::string(v)};
}
Match by_optional(const char* column, std::optional<Id> id) {
  return id ? Match{column, *id} : Match{};
}

}  // namespace

template <class Fn>
auto StoreBase::config_write(Fn&& fn) {
  using R = decltype(fn());
  if constexpr (std::is_void_v<R>) {
    transaction([&] {
      fn();
      bump_config_version();  // last: readers reload only after the change
    });
  } else {
    R result{};
    transaction([&] {
      result = fn();
      bump_config_version();
    });
    return result;
  }
}

template <class T, class Read>
std::vector<T> StoreBase::select_all(const Table& table, const Match& where, const Order& order,
                                     Read&& read) {
  std::vector<T> out;
  select_rows(table, where, order, [&](const FieldReader& r) { out.push_back(read(r)); });
  return out;
}

bool StoreBase::exists(const Table& table, Id id) {
  bool found = false;
  select_rows(table, by_id(id), Order{}, [&](const FieldReader&) { found = true; });
  return found;
}

ConfigData StoreBase::load_config() {
  ConfigData data;
  read_consistently([&] {
    data.version = config_version();
    data.connections = list_connections();
    data.models = list_models(std::nullopt);
    data.vkeys = list_vkeys();
    data.assignments = list_assignments(std::nullopt);
    data.plans = list_plans();
    return data.version;
  });
  return data;
}

// ---- connections ----------------------------------------------------------

Id StoreBase::insert_connection(const Connection& c) {
  Fields f = inserted(connection_fields(c, box_), c.created_at, c.updated_at);
  return config_write([&] {
    return unique_or(name_taken("a connection", c.name),
                     [&] { return insert_row(kConnections, f); });
  });
}

void StoreBase::update_connection(const Connection& c) {
  config_write([&] {
    bool found = unique_or(name_taken("a connection", c.name), [&] {
      return update_row(kConnections, c.id, updated(connection_fields(c, box_)));
    });
    if (!found) throw not_found("connection " + std::to_string(c.id));
  });
}

bool StoreBase::delete_connection(Id id) {
  return config_write([&] {
    if (!enforces_references()) {  // dependents first: assignments, models
      for (const ProviderModel& m : list_models(id)) delete_rows(kAssignments, "model_id", m.id);
      delete_rows(kAssignments, "conn_id", id);
      delete_rows(kModels, "conn_id", id);
    }
    return delete_rows(kConnections, "id", id) > 0;
  });
}

std::optional<Connection> StoreBase::get_connection(Id id) {
  return first(select_all<Connection>(kConnections, by_id(id), Order{}, [&](const FieldReader& r) {
    return read_connection(r, box_);
  }));
}

std::optional<Connection> StoreBase::find_connection(std::string_view name) {
  return first(
      select_all<Connection>(kConnections, by_text("name", name), Order{},
                             [&](const FieldReader& r) { return read_connection(r, box_); }));
}

std::vector<Connection> StoreBase::list_connections() {
  return select_all<Connection>(kConnections, Match{}, Order{},
                                [&](const FieldReader& r) { return read_connection(r, box_); });
}

// ---- models -----------------------------------------------------------------

void StoreBase::check_model_refs(const ProviderModel& m) {
  if (enforces_references() || exists(kConnections, m.conn_id)) return;
  throw invalid("model '" + m.name + "': connection " + std::to_string(m.conn_id) +
                " does not exist");
}

Id StoreBase::insert_model(const ProviderModel& m) {
  Fields f = inserted(model_fields(m), m.created_at, m.updated_at);
  return config_write([&] {
    check_model_refs(m);
    return unique_or(name_taken("a model", m.name), [&] { return insert_row(kModels, f); });
  });
}

void StoreBase::update_model(const ProviderModel& m) {
  config_write([&] {
    if (!enforces_references() && !exists(kModels, m.id))
      throw not_found("model " + std::to_string(m.id));
    check_model_refs(m);
    bool found = unique_or(name_taken("a model", m.name),
                           [&] { return update_row(kModels, m.id, updated(model_fields(m))); });
    if (!found) throw not_found("model " + std::to_string(m.id));
  });
}

bool StoreBase::delete_model(Id id) {
  return config_write([&] {
    if (!enforces_references()) delete_rows(kAssignments, "model_id", id);
    return delete_rows(kModels, "id", id) > 0;
  });
}

std::optional<ProviderModel> StoreBase::get_model(Id id) {
  return first(select_all<ProviderModel>(kModels, by_id(id), Order{}, read_model));
}

std::optional<ProviderModel> StoreBase::find_model(std::string_view name) {
  return first(select_all<ProviderModel>(kModels, by_text("name", name), Order{}, read_model));
}

std::vector<ProviderModel> StoreBase::list_models(std::optional<Id> conn_id) {
  return select_all<ProviderModel>(kModels, by_optional("conn_id", conn_id), Order{}, read_model);
}

// ---- virtual keys -------------------------------------------------------------
// The name is checked first so that a clash on both columns names the name.

Id StoreBase::insert_vkey(const VirtualKey& k) {
  Fields f = inserted(vkey_fields(k), k.created_at, k.updated_at);
  return config_write([&] {
    if (find_vkey(k.name)) throw conflict(name_taken("a virtual key", k.name));
    return vkey_unique(k, [&] { return insert_row(kVkeys, f); });
  });
}

void StoreBase::update_vkey(const VirtualKey& k) {
  config_write([&] {
    if (auto other = find_vkey(k.name); other && other->id != k.id)
      throw conflict(name_taken("a virtual key", k.name));
    bool found = vkey_unique(k, [&] { return update_row(kVkeys, k.id, updated(vkey_fields(k))); });
    if (!found) throw not_found("virtual key " + std::to_string(k.id));
  });
}

bool StoreBase::delete_vkey(Id id) {
  return config_write([&] {
    if (!enforces_references()) delete_rows(kAssignments, "vkey_id", id);
    return delete_rows(kVkeys, "id", id) > 0;
  });
}

std::optional<VirtualKey> StoreBase::get_vkey(Id id) {
  return first(select_all<VirtualKey>(kVkeys, by_id(id), Order{}, read_vkey));
}

std::optional<VirtualKey> StoreBase::find_vkey(std::string_view name) {
  return first(select_all<VirtualKey>(kVkeys, by_text("name", name), Order{}, read_vkey));
}

std::optional<VirtualKey> StoreBase::find_vkey_by_hash(std::string_view key_hash) {
  return first(select_all<VirtualKey>(kVkeys, by_text("key_hash", key_hash), Order{}, read_vkey));
}

std::vector<VirtualKey> StoreBase::list_vkeys() {
  return select_all<VirtualKey>(kVkeys, Match{}, Order{}, read_vkey);
}

// ---- assignments ------------------------------------------------------------

// The parents an assignment names must exist (what SQL's foreign keys and
// CHECK say).
void StoreBase::check_assignment_refs(const Assignment& a) {
  if (enforces_references()) return;
  if (a.conn_id.has_value() == a.model_id.has_value())
    throw invalid("an assignment names exactly one of a connection and a model");
  if (!exists(kVkeys, a.vkey_id))
    throw invalid("virtual key " + std::to_string(a.vkey_id) + " does not exist");
  if (a.conn_id && !exists(kConnections, *a.conn_id))
    throw invalid("connection " + std::to_string(*a.conn_id) + " does not exist");
  if (a.model_id && !exists(kModels, *a.model_id))
    throw invalid("model " + std::to_string(*a.model_id) + " does not exist");
  if (a.plan_id && !exists(kPlans, *a.plan_id))
    throw invalid("plan " + std::to_string(*a.plan_id) + " does not exist");
}

Id StoreBase::insert_assignment(const Assignment& a) {
  Fields f = inserted(assignment_fields(a), a.created_at, a.updated_at);
  return config_write([&] {
    check_assignment_refs(a);
    return insert_row(kAssignments, f);
  });
}

void StoreBase::update_assignment(const Assignment& a) {
  config_write([&] {
    if (!enforces_references() && !exists(kAssignments, a.id))
      throw not_found("assignment " + std::to_string(a.id));
    check_assignment_refs(a);
    if (!update_row(kAssignments, a.id, updated(assignment_fields(a))))
      throw not_found("assignment " + std::to_string(a.id));
  });
}

bool StoreBase::delete_assignment(Id id) {
  return config_write([&] { return delete_rows(kAssignments, "id", id) > 0; });
}

std::optional<Assignment> StoreBase::get_assignment(Id id) {
  return first(select_all<Assignment>(kAssignments, by_id(id), Order{}, read_assignment));
}

std::vector<Assignment> StoreBase::list_assignments(std::optional<Id> vkey_id) {
  return select_all<Assignment>(kAssignments, by_optional("vkey_id", vkey_id), Order{},
                                read_assignment);
}

// ---- plans ------------------------------------------------------------------

Id StoreBase::insert_plan(const Plan& p) {
  Fields f = inserted(plan_fields(p), p.created_at, p.updated_at);
  return config_write([&] {
    return unique_or(name_taken("a plan", p.name), [&] { return insert_row(kPlans, f); });
  });
}

void StoreBase::update_plan(const Plan& p) {
  config_write([&] {
    bool found = unique_or(name_taken("a plan", p.name),
                           [&] { return update_row(kPlans, p.id, updated(plan_fields(p))); });
    if (!found) throw not_found("plan " + std::to_string(p.id));
  });
}

// The assignments keep their own limits and lose the plan's (SQL: ON DELETE
// SET NULL). Their updated_at stays, as it does under the foreign key.
bool StoreBase::delete_plan(Id id) {
  return config_write([&] {
    if (!enforces_references()) {
      Fields detached;
      detached.opt_i64("plan_id", std::nullopt);
      for (const Assignment& a :
           select_all<Assignment>(kAssignments, Match{"plan_id", id}, Order{}, read_assignment))
        update_row(kAssignments, a.id, detached);
    }
    return delete_rows(kPlans, "id", id) > 0;
  });
}

std::optional<Plan> StoreBase::get_plan(Id id) {
  return first(select_all<Plan>(kPlans, by_id(id), Order{}, read_plan));
}

std::optional<Plan> StoreBase::find_plan(std::string_view name) {
  return first(select_all<Plan>(kPlans, by_text("name", name), Order{}, read_plan));
}

std::vector<Plan> StoreBase::list_plans() {
  return select_all<Plan>(kPlans, Match{}, Order{}, read_plan);
}

// ---- admin users ----------------------------------------------------------------
// Not configuration (serve's snapshot has no users): no config_version bump,
// and each write is one row, atomic on its own.

Id StoreBase::insert_admin_user(const AdminUser& u) {
  Fields f = inserted(admin_user_fields(u), u.created_at, u.updated_at);
  return unique_or(name_taken("an admin user", u.username),
                   [&] { return insert_row(kAdminUsers, f); });
}

void StoreBase::update_admin_user(const AdminUser& u) {
  bool found = unique_or(name_taken("an admin user", u.username), [&] {
    return update_row(kAdminUsers, u.id, updated(admin_user_fields(u)));
  });
  if (!found) throw not_found("admin user " + std::to_string(u.id));
}

bool StoreBase::delete_admin_user(Id id) {
  return delete_rows(kAdminUsers, "id", id) > 0;
}

std::optional<AdminUser> StoreBase::find_admin_user(std::string_view username) {
  return first(
      select_all<AdminUser>(kAdminUsers, by_text("username", username), Order{}, read_admin_user));
}

std::vector<AdminUser> StoreBase::list_admin_users() {
  return select_all<AdminUser>(kAdminUsers, Match{}, Order{"username", /*bytes=*/true},
                               read_admin_user);
}

}  // namespace llmproxy::storage
