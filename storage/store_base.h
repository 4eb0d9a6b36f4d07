// The part of the Store contract that is the same whatever the database:
// stamping created/updated times, sealing connection secrets (through
// storage/mappers.h), which write bumps the config version, the messages for
// names already taken, the checks and cascades a database without foreign
// keys leaves to the program, and one consistent read of the whole
// configuration. A backend derives from StoreBase and supplies the primitives
// below: rows in, rows out, transactions, the version counter.
#pragma once

#include <functional>
#include <string>

#include "storage/rows.h"
#include "storage/store.h"

namespace llmproxy::storage {

class StoreBase : public Store {
 public:
  ConfigData load_config() final;

  Id insert_connection(const Connection& c) final;
  void update_connection(const Connection& c) final;
  bool delete_connection(Id id) final;
  std::optional<Connection> get_connection(Id id) final;
  std::optional<Connection> find_connection(std::string_view name) final;
  std::vector<Connection> list_connections() final;

  Id insert_model(const ProviderModel& m) final;
  void update_model(const ProviderModel& m) final;
  bool delete_model(Id id) final;
  std::optional<ProviderModel> get_model(Id id) final;
  std::optional<ProviderModel> find_model(std::string_view name) final;
  std::vector<ProviderModel> list_models(std::optional<Id> conn_id) final;

  Id insert_vkey(const VirtualKey& k) final;
  void update_vkey(const VirtualKey& k) final;
  bool delete_vkey(Id id) final;
  std::optional<VirtualKey> get_vkey(Id id) final;
  std::optional<VirtualKey> find_vkey(std::string_view name) final;
  std::optional<VirtualKey> find_vkey_by_hash(std::string_view key_hash) final;
  std::vector<VirtualKey> list_vkeys() final;

  Id insert_assignment(const Assignment& a) final;
  void update_assignment(const Assignment& a) final;
  bool delete_assignment(Id id) final;
  std::optional<Assignment> get_assignment(Id id) final;
  std::vector<Assignment> list_assignments(std::optional<Id> vkey_id) final;

  Id insert_plan(const Plan& p) final;
  void update_plan(const Plan& p) final;
  bool delete_plan(Id id) final;
  std::optional<Plan> get_plan(Id id) final;
  std::optional<Plan> find_plan(std::string_view name) final;
  std::vector<Plan> list_plans() final;

  Id insert_admin_user(const AdminUser& u) final;
  void update_admin_user(const AdminUser& u) final;
  bool delete_admin_user(Id id) final;
  std::optional<AdminUser> find_admin_user(std::string_view username) final;
  std::vector<AdminUser> list_admin_users() final;

 protected:
  explicit StoreBase(crypto::SecretBox box) : box_(box) {}

  using RowFn = std::function<void(const FieldReader&)>;

  // ---- what each backend supplies ----------------------------------------------
  // Inserts a row of `fields` and returns its new id. A unique constraint
  // the row breaks throws UniqueViolation.
  virtual Id insert_row(const Table& table, const Fields& fields) = 0;
  // Sets `fields` on the row with this id; false when there is none.
  virtual bool update_row(const Table& table, Id id, const Fields& fields) = 0;
  // Removes the rows whose `column` is `id`; returns how many.
  virtual std::int64_t delete_rows(const Table& table, const char* column, Id id) = 0;
  // Hands every row of `table` that matches `where` to `each`, in `order`.
  virtual void select_rows(const Table& table, const Match& where, const Order& order,
                           const RowFn& each) = 0;
  // Adds one to the config version, inside the caller's transaction.
  virtual void bump_config_version() = 0;
  // Runs `read` (which returns the config version it read) so that all it
  // reads belongs to one state of the database.
  virtual void read_consistently(const std::function<std::int64_t()>& read) = 0;
  // True when the database itself refuses dangling references and deletes
  // dependents (SQL foreign keys); false leaves both to this class.
  virtual bool enforces_references() const = 0;

  const crypto::SecretBox& box() const { return box_; }

 private:
  // Runs fn and the config version bump in one transaction; fn's result.
  template <class Fn>
  auto config_write(Fn&& fn);
  template <class T, class Read>
  std::vector<T> select_all(const Table& table, const Match& where, const Order& order,
                            Read&& read);
  bool exists(const Table& table, Id id);
  void check_model_refs(const ProviderModel& m);
  void check_assignment_refs(const Assignment& a);

  crypto::SecretBox box_;
};

}  // namespace llmproxy::storage
