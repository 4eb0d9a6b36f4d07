// usage [--vkey-id] [--since] [--until] [--by]
#include "lib/domain/error.h"
#include "lib/domain/time.h"
#include "lib/ops/ops.h"
#include "lib/ops/resolve.h"

namespace llmproxy::ops {
namespace {

TimeMs parse_bound(const char* flag, const std::string& text, TimeMs now) {
  auto t = parse_time_or_ago(text, now);
  if (!t)
    throw invalid(std::string(flag) + " '" + text +
                  "' is not a time (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, or 30m, 24h, 7d ago)");
  return *t;
}

}  // namespace

storage::UsageQuery usage_query(Store& store, const UsageSpec& spec) {
  storage::UsageQuery q;
  TimeMs now = now_ms();
  if (spec.since) q.since = parse_bound("--since", *spec.since, now);
  if (spec.until) q.until = parse_bound("--until", *spec.until, now);
  if (q.since && q.until && *q.since >= *q.until) throw invalid("--since must be before --until");
  if (spec.vkey) q.vkey_id = resolve_vkey(store, *spec.vkey).id;
  q.limit = spec.limit;
  return q;
}

std::optional<storage::UsageGroupBy> usage_group_by(const UsageSpec& spec) {
  if (!spec.by) return std::nullopt;
  const std::string& by = *spec.by;
  if (by == "day") return storage::UsageGroupBy::kDay;
  if (by == "model") return storage::UsageGroupBy::kModel;
  if (by == "key") return storage::UsageGroupBy::kKey;
  if (by == "connection") return storage::UsageGroupBy::kConnection;
  throw invalid("--by must be day, model, key or connection, not '" + by + "'");
}

}  // namespace llmproxy::ops
