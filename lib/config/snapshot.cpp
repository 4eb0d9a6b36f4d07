#include "lib/config/snapshot.h"

namespace llmproxy::config {

Snapshot::Snapshot(ConfigData data) : data_(std::move(data)) {
  // The data plane sees the limits that apply: the plan's under the
  // assignment's own.
  std::unordered_map<Id, const Plan*> plans_by_id;
  for (const Plan& p : data_.plans) plans_by_id.emplace(p.id, &p);
  for (Assignment& a : data_.assignments) {
    if (!a.plan_id) continue;
    auto plan = plans_by_id.find(*a.plan_id);
    if (plan != plans_by_id.end()) a.limits = effective_limits(a.limits, &plan->second->limits);
  }
  std::unordered_map<Id, const Connection*> connections_by_id;
  for (const Connection& c : data_.connections) {
    connections_by_name_.emplace(c.name, &c);
    connections_by_id.emplace(c.id, &c);
  }
  for (const ProviderModel& m : data_.models) {
    auto conn = connections_by_id.find(m.conn_id);
    if (conn != connections_by_id.end()) models_.emplace(m.name, ModelEntry{&m, conn->second});
  }
  std::unordered_map<Id, KeyEntry*> keys_by_id;
  for (const VirtualKey& k : data_.vkeys) {
    auto [it, _] = keys_.emplace(k.key_hash, KeyEntry{k, {}, {}});
    keys_by_id.emplace(k.id, &it->second);
  }
  for (const Assignment& a : data_.assignments) {
    auto key = keys_by_id.find(a.vkey_id);
    if (key == keys_by_id.end()) continue;
    if (a.model_id) key->second->by_model.emplace(*a.model_id, &a);
    if (a.conn_id) key->second->by_connection.emplace(*a.conn_id, &a);
  }
}

template <class Map>
static auto* find_in(const Map& map, std::string_view key) {
  auto it = map.find(key);
  return it == map.end() ? nullptr : &it->second;
}

const KeyEntry* Snapshot::key_by_hash(std::string_view hash) const { return find_in(keys_, hash); }

const ModelEntry* Snapshot::model_by_name(std::string_view name) const {
  return find_in(models_, name);
}

const Connection* Snapshot::connection_by_name(std::string_view name) const {
  auto* p = find_in(connections_by_name_, name);
  return p ? *p : nullptr;
}

}  // namespace llmproxy::config
