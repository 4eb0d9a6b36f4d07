// model add | update | remove | show | list
#include "lib/domain/error.h"
#include "lib/ops/ops.h"
#include "lib/ops/resolve.h"
#include "lib/ops/validate.h"

namespace llmproxy::ops {
namespace {

void apply(Store& store, ProviderModel& m, const ModelSpec& s) {
  if (s.name) m.name = *s.name;
  if (s.remote) m.remote = *s.remote;
  if (s.conn) m.conn_id = resolve_connection(store, *s.conn).id;
  // A price of 0 on update clears it: the model is then free to use.
  auto price = [](const char* flag, const std::optional<double>& given,
                  std::optional<double>& field) {
    if (!given) return;
    check_non_negative(flag, *given);
    field = *given;
  };
  price("--input-price", s.input_price, m.input_price);
  price("--output-price", s.output_price, m.output_price);
  check_name("model name", m.name);
  if (m.remote.empty()) throw invalid("--remote must not be empty");
  for (unsigned char c : m.remote)
    if (std::iscntrl(c)) throw invalid("--remote must not contain control characters");
}

}  // namespace

ProviderModel create_model(Store& store, const ModelSpec& spec) {
  if (!spec.name) throw invalid("--name is required");
  if (!spec.remote) throw invalid("--remote is required");
  if (!spec.conn) throw invalid("--conn-id is required");
  ProviderModel m;
  store.transaction([&] {
    apply(store, m, spec);
    if (store.find_model(m.name)) throw conflict("a model named '" + m.name + "' already exists");
    m.id = store.insert_model(m);
    m = *store.get_model(m.id);
  });
  return m;
}

ProviderModel update_model(Store& store, std::string_view ref, const ModelSpec& spec) {
  ProviderModel m;
  store.transaction([&] {
    m = resolve_model(store, ref);
    apply(store, m, spec);
    if (auto other = store.find_model(m.name); other && other->id != m.id)
      throw conflict("a model named '" + m.name + "' already exists");
    store.update_model(m);
    m = *store.get_model(m.id);
  });
  return m;
}

void remove_model(Store& store, std::string_view ref, bool force) {
  store.transaction([&] {
    ProviderModel m = resolve_model(store, ref);
    if (!force) {
      std::size_t grants = 0;
      for (const Assignment& a : store.list_assignments()) grants += a.model_id == m.id;
      if (grants > 0)
        throw conflict("model '" + m.name + "' is used by " + std::to_string(grants) +
                       " assignment(s); remove them first or pass --force");
    }
    store.delete_model(m.id);
  });
}

ProviderModel get_model(Store& store, std::string_view ref) { return resolve_model(store, ref); }

std::vector<ProviderModel> list_models(Store& store, const std::optional<std::string>& conn) {
  std::optional<Id> conn_id;
  if (conn) conn_id = resolve_connection(store, *conn).id;
  return store.list_models(conn_id);
}

}  // namespace llmproxy::ops
