#include "lib/ops/resolve.h"

#include "lib/domain/error.h"
#include "lib/ops/validate.h"

namespace llmproxy::ops {
namespace {

// Names are never all digits (check_name), so a digit string is an id.
template <class T, class ById, class ByName>
T resolve(std::string_view what, std::string_view ref, ById by_id, ByName by_name) {
  std::optional<T> found = looks_like_id(ref) ? by_id(std::stoll(std::string(ref))) : by_name(ref);
  if (!found) throw not_found(std::string(what) + " '" + std::string(ref) + "' not found");
  return std::move(*found);
}

}  // namespace

Connection resolve_connection(storage::Store& s, std::string_view ref) {
  return resolve<Connection>(
      "connection", ref, [&](Id id) { return s.get_connection(id); },
      [&](std::string_view n) { return s.find_connection(n); });
}

ProviderModel resolve_model(storage::Store& s, std::string_view ref) {
  return resolve<ProviderModel>(
      "model", ref, [&](Id id) { return s.get_model(id); },
      [&](std::string_view n) { return s.find_model(n); });
}

VirtualKey resolve_vkey(storage::Store& s, std::string_view ref) {
  return resolve<VirtualKey>(
      "virtual key", ref, [&](Id id) { return s.get_vkey(id); },
      [&](std::string_view n) { return s.find_vkey(n); });
}

Plan resolve_plan(storage::Store& s, std::string_view ref) {
  return resolve<Plan>(
      "plan", ref, [&](Id id) { return s.get_plan(id); },
      [&](std::string_view n) { return s.find_plan(n); });
}

Assignment resolve_assignment(storage::Store& s, std::string_view id) {
  if (!looks_like_id(id)) throw invalid("assignment id '" + std::string(id) + "' must be a number");
  return resolve<Assignment>(
      "assignment", id, [&](Id i) { return s.get_assignment(i); },
      [](std::string_view) { return std::optional<Assignment>(); });
}

}  // namespace llmproxy::ops
