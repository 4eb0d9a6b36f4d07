#include "lib/limits/limiter.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

namespace llmproxy::limits {
namespace {

// Refills a bucket of `capacity` at `per_second` and reports its level.
double refill(double& level, TimeMs& last, double capacity, double per_second, TimeMs now) {
  if (level < 0) {
    level = capacity;
  } else if (now > last) {
    level = std::min(capacity, level + per_second * static_cast<double>(now - last) / 1000.0);
  }
  level = std::min(level, capacity);  // the limit may have been lowered
  last = now;
  return level;
}

}  // namespace

std::pair<TimeMs, TimeMs> window_bounds(TokenWindow w, TimeMs now) {
  using namespace std::chrono;
  constexpr TimeMs kMinute = 60'000, kHour = 3'600'000, kDay = 86'400'000;
  switch (w) {
    case TokenWindow::kMinute: return {now - now % kMinute, now - now % kMinute + kMinute};
    case TokenWindow::kHour: return {now - now % kHour, now - now % kHour + kHour};
    case TokenWindow::kDay: return {now - now % kDay, now - now % kDay + kDay};
    case TokenWindow::kMonth: {
      sys_days day = floor<days>(sys_time<milliseconds>(milliseconds(now)));
      year_month_day ymd{day};
      sys_days first = sys_days{ymd.year() / ymd.month() / 1};
      sys_days next = sys_days{(ymd.year() / ymd.month() + months{1}) / 1};
      return {duration_cast<milliseconds>(first.time_since_epoch()).count(),
              duration_cast<milliseconds>(next.time_since_epoch()).count()};
    }
    case TokenWindow::kTotal: break;
  }
  return {0, std::numeric_limits<TimeMs>::max()};
}

std::string format_reset(double seconds) {
  if (seconds < 1) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%dms", static_cast<int>(std::ceil(seconds * 1000)));
    return buf;
  }
  auto total = static_cast<long long>(std::ceil(seconds));
  long long h = total / 3600, m = total % 3600 / 60, s = total % 60;
  std::string out;
  if (h) out += std::to_string(h) + "h";
  if (h || m) out += std::to_string(m) + "m";
  out += std::to_string(s) + "s";
  return out;
}

Limiter::State& Limiter::state(Id id) {
  std::lock_guard lock(mu_);
  auto& slot = states_[id];
  if (!slot) slot = std::make_unique<State>();
  return *slot;
}

void Limiter::roll_window(State& s, const Assignment& a, TimeMs now) {
  auto [start, end] = window_bounds(a.limits.token_window, now);
  if (s.window != a.limits.token_window || s.window_start != start) {
    // A new window, or the window kind changed: start counting afresh.
    s.window = a.limits.token_window;
    s.window_start = start;
    s.spent = 0;
  }
}

Decision Limiter::admit(const Assignment& a, TimeMs now) {
  const Limits& l = a.limits;
  Decision d;
  if (!l.tps && !l.rpm && !l.token_limit) return d;
  State& s = state(a.id);
  std::lock_guard lock(s.mu);

  if (l.token_limit) {
    roll_window(s, a, now);
    auto [start, end] = window_bounds(l.token_window, now);
    d.limit_tokens = *l.token_limit;
    d.remaining_tokens = std::max<std::int64_t>(0, *l.token_limit - s.spent);
    bool total = l.token_window == TokenWindow::kTotal;
    d.reset_tokens_s = total ? 0 : static_cast<double>(end - now) / 1000.0;
    if (s.spent >= *l.token_limit) {
      d.refusal = Refusal::kTokens;
      if (!total) d.retry_after_s = d.reset_tokens_s;
      d.message = "token limit of " + std::to_string(*l.token_limit) + " per " +
                  std::string(to_string(l.token_window)) + " reached for this key";
      return d;
    }
  }

  double tps_level = 0, rpm_level = 0;
  double tps_cap = l.tps ? std::max(1.0, *l.tps) : 0;
  double rpm_cap = l.rpm ? static_cast<double>(*l.rpm) : 0;
  if (l.tps) tps_level = refill(s.tps.level, s.tps.last, tps_cap, *l.tps, now);
  if (l.rpm) rpm_level = refill(s.rpm.level, s.rpm.last, rpm_cap, rpm_cap / 60.0, now);

  // Report the per-minute budget when there is one, as OpenAI does.
  bool report_rpm = l.rpm.has_value();
  double level = report_rpm ? rpm_level : tps_level;
  double rate = report_rpm ? rpm_cap / 60.0 : (l.tps ? *l.tps : 0);
  if (l.tps || l.rpm) {
    d.limit_requests = static_cast<std::int64_t>(std::ceil(report_rpm ? rpm_cap : tps_cap));
  }

  auto wait_for = [](double lvl, double per_second) {
    return per_second > 0 ? (1.0 - lvl) / per_second : 0.0;
  };
  bool tps_ok = !l.tps || tps_level >= 1.0;
  bool rpm_ok = !l.rpm || rpm_level >= 1.0;
  if (!tps_ok || !rpm_ok) {
    double wait = std::max(tps_ok ? 0.0 : wait_for(tps_level, *l.tps),
                           rpm_ok ? 0.0 : wait_for(rpm_level, rpm_cap / 60.0));
    d.refusal = Refusal::kRate;
    d.retry_after_s = wait;
    d.remaining_requests = static_cast<std::int64_t>(std::floor(std::max(0.0, level)));
    d.reset_requests_s = wait;
    d.message = !tps_ok ? "rate limit of " + std::to_string(*l.tps).substr(0, 6) +
                              " requests per second reached for this key"
                        : "rate limit of " + std::to_string(*l.rpm) +
                              " requests per minute reached for this key";
    return d;
  }
  if (l.tps) s.tps.level -= 1.0;
  if (l.rpm) s.rpm.level -= 1.0;
  if (l.tps || l.rpm) {
    double after = level - 1.0;
    d.remaining_requests = static_cast<std::int64_t>(std::floor(std::max(0.0, after)));
    d.reset_requests_s = rate > 0 ? ((report_rpm ? rpm_cap : tps_cap) - after) / rate : 0;
  }
  return d;
}

void Limiter::charge(const Assignment& a, std::int64_t tokens, TimeMs now) {
  if (!a.limits.token_limit || tokens <= 0) return;
  State& s = state(a.id);
  std::lock_guard lock(s.mu);
  roll_window(s, a, now);
  s.spent += tokens;
}

void Limiter::seed(const Assignment& a, std::int64_t spent, TimeMs now) {
  State& s = state(a.id);
  std::lock_guard lock(s.mu);
  roll_window(s, a, now);
  s.spent = spent;
}

}  // namespace llmproxy::limits
