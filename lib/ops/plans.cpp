// plan add | update | remove | show | list: named limit sets that assignments
// take their limits from (lib/domain/types.h: effective_limits).
#include <algorithm>

#include "lib/domain/error.h"
#include "lib/domain/time.h"
#include "lib/ops/ops.h"
#include "lib/ops/resolve.h"
#include "lib/ops/validate.h"

namespace llmproxy::ops {

namespace {

void check_plan_spec(const PlanSpec& spec) {
  if (spec.limits.plan) throw invalid("--plan does not apply to a plan: plans do not nest");
  if (!spec.name) return;
  check_name("plan name", *spec.name);
  if (*spec.name == "none")
    throw invalid("plan name 'none' is reserved: `--plan none` detaches a plan");
}

void check_plan_name_free(Store& store, const Plan& p) {
  if (auto other = store.find_plan(p.name); other && other->id != p.id)
    throw conflict("a plan named '" + p.name + "' already exists");
}

std::size_t assignments_on(const std::vector<Assignment>& all, Id plan_id) {
  return static_cast<std::size_t>(std::count_if(
      all.begin(), all.end(), [&](const Assignment& a) { return a.plan_id == plan_id; }));
}

PlanView plan_view(Store& store, Plan p) {
  std::size_t n = assignments_on(store.list_assignments(), p.id);
  return {std::move(p), n};
}

}  // namespace

PlanView create_plan(Store& store, const PlanSpec& spec) {
  if (!spec.name) throw invalid("--name is required");
  check_plan_spec(spec);
  Plan p;
  p.name = *spec.name;
  apply_limits(p.limits, spec.limits);
  PlanView out;
  store.transaction([&] {
    check_plan_name_free(store, p);
    out = plan_view(store, *store.get_plan(store.insert_plan(p)));
  });
  return out;
}

PlanView update_plan(Store& store, std::string_view ref, const PlanSpec& spec) {
  check_plan_spec(spec);
  PlanView out;
  store.transaction([&] {
    Plan p = resolve_plan(store, ref);
    if (spec.name) p.name = *spec.name;
    apply_limits(p.limits, spec.limits);
    check_plan_name_free(store, p);
    store.update_plan(p);
    out = plan_view(store, *store.get_plan(p.id));
  });
  return out;
}

void remove_plan(Store& store, std::string_view ref, bool force) {
  store.transaction([&] {
    PlanView v = plan_view(store, resolve_plan(store, ref));
    if (v.assignments > 0 && !force)
      throw conflict("plan '" + v.plan.name + "' is used by " + std::to_string(v.assignments) +
                     " assignment(s); pass --force to detach them and remove it");
    store.delete_plan(v.plan.id);  // detaches its assignments
  });
}

PlanView get_plan(Store& store, std::string_view ref) {
  return plan_view(store, resolve_plan(store, ref));
}

std::vector<PlanView> list_plans(Store& store) {
  std::vector<PlanView> out;
  store.transaction([&] {
    std::vector<Assignment> all = store.list_assignments();
    for (Plan& p : store.list_plans()) {
      std::size_t n = assignments_on(all, p.id);
      out.push_back({std::move(p), n});
    }
  });
  std::sort(out.begin(), out.end(),
            [](const PlanView& a, const PlanView& b) { return a.plan.name < b.plan.name; });
  return out;
}

nlohmann::ordered_json plan_json(const PlanView& v) {
  nlohmann::ordered_json j = {{"id", v.plan.id}, {"name", v.plan.name}};
  nlohmann::ordered_json limits = limits_json(v.plan.limits);
  for (const auto& [field, value] : limits.items()) j[field] = value;
  j["assignments"] = v.assignments;
  j["created_at"] = format_time(v.plan.created_at);
  j["updated_at"] = format_time(v.plan.updated_at);
  return j;
}

}  // namespace llmproxy::ops
