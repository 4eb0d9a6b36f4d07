#include "lib/routing/route.h"

namespace llmproxy::routing {
namespace {

const Assignment* find(const std::unordered_map<Id, const Assignment*>& map, Id id) {
  auto it = map.find(id);
  return it == map.end() ? nullptr : it->second;
}

}  // namespace

RouteResult resolve(const config::Snapshot& snapshot, const auth::Principal& who,
                    std::string_view model) {
  if (const config::ModelEntry* m = snapshot.model_by_name(model)) {
    Route route{m->connection, m->model, nullptr, m->model->remote};
    if (who.master) return {RouteStatus::kOk, route};
    route.assignment = find(who.key->by_model, m->model->id);
    if (!route.assignment) route.assignment = find(who.key->by_connection, m->connection->id);
    return {route.assignment ? RouteStatus::kOk : RouteStatus::kForbidden, route};
  }
  auto slash = model.find('/');
  if (slash == std::string_view::npos || slash + 1 >= model.size()) return {};
  const Connection* conn = snapshot.connection_by_name(model.substr(0, slash));
  if (!conn) return {};
  Route route{conn, nullptr, nullptr, std::string(model.substr(slash + 1))};
  if (who.master) return {RouteStatus::kOk, route};
  route.assignment = find(who.key->by_connection, conn->id);
  return {route.assignment ? RouteStatus::kOk : RouteStatus::kForbidden, route};
}

std::vector<config::ModelEntry> visible_models(const config::Snapshot& snapshot,
                                               const auth::Principal& who) {
  std::vector<config::ModelEntry> out;
  for (const ProviderModel& m : snapshot.data().models) {
    const config::ModelEntry* entry = snapshot.model_by_name(m.name);
    if (!entry) continue;
    if (who.master || who.key->by_model.contains(m.id) ||
        who.key->by_connection.contains(m.conn_id)) {
      out.push_back(*entry);
    }
  }
  return out;
}

}  // namespace llmproxy::routing
