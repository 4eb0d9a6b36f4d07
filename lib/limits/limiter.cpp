#include "lib/limits/limiter.h"

#include <iostream>

#include "lib/domain/time.h"
#include "lib/limits/shared_ledger.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

namespace llmproxy::limits {
std::pair<TimeMs, TimeMs> window_bounds(TokenWindow w, TimeMs now) {
  using namespace std::chrono;
  constexpr TimeMs kMinute = 60'000, kHour = 3'600'000, kDay = 86'400'000;
  switch (w) {
    case TokenWindow::kMinute:
      return {now - now % kMinute, now - now % kMinute + kMinute};
    case TokenWindow::kHour:
      return {now - now % kHour, now - now % kHour + kHour};
    case TokenWindow::kDay:
      return {now - now % kDay, now - now % kDay + kDay};
    case TokenWindow::kMonth: {
      sys_days day = floor<days>(sys_time<milliseconds>(milliseconds(now)));
      year_month_day ymd{day};
      sys_days first = sys_days{ymd.year() / ymd.month() / 1};
      sys_days next = sys_days{(ymd.year() / ymd.month() + months{1}) / 1};
      return {duration_cast<milliseconds>(first.time_since_epoch()).count(),
              duration_cast<milliseconds>(next.time_since_epoch()).count()};
    }
    case TokenWindow::kTotal:
      break;
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

std::string format_usd(double usd) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.6f", usd);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

namespace {

std::string amount(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string_view per(Slot s) {
  switch (s) {
    case Slot::kTps:
      return "second";
    case Slot::kRpm:
      return "minute";
    case Slot::kRph:
      return "hour";
    default:
      return "day";
  }
}

std::string refusal_message(const Check& c, TokenWindow window) {
  std::string whose = c.scope == Scope::kKey ? " for this key across its models" : " for this key";
  switch (c.slot) {
    case Slot::kTokens:
      return "token limit of " + amount(c.limit) + " per " + std::string(to_string(window)) +
             " reached" + whose;
    case Slot::kBudget:
      return "budget of $" + amount(c.limit / kNanoPerUsd) + " per " +
             std::string(to_string(window)) + " reached" + whose;
    case Slot::kParallel:
      return "the limit of " + amount(c.limit) + " requests in flight at once reached" + whose;
    default:
      return "rate limit of " + amount(c.limit) + " requests per " + std::string(per(c.slot)) +
             " reached" + whose;
  }
}

// The window kind a check's bounds came from (for messages).
TokenWindow window_of(const Check& c) {
  constexpr TimeMs kMinute = 60'000, kHour = 3'600'000, kDay = 86'400'000;
  TimeMs span = c.window_end - c.window_start;
  if (c.window_end == std::numeric_limits<TimeMs>::max()) return TokenWindow::kTotal;
  if (span == kMinute) return TokenWindow::kMinute;
  if (span == kHour) return TokenWindow::kHour;
  if (span == kDay) return TokenWindow::kDay;
  return TokenWindow::kMonth;
}

// Which request limit the headers report: per minute as OpenAI does, else
// the tightest other.
int request_rank(Slot s) {
  switch (s) {
    case Slot::kRpm:
      return 0;
    case Slot::kTps:
      return 1;
    case Slot::kRph:
      return 2;
    case Slot::kRpd:
      return 3;
    default:
      return -1;
  }
}

}  // namespace

Decision describe(const Claim& claim, const Admission& admission) {
  Decision d;
  d.refusal = admission.refusal;
  d.retry_after_s = admission.retry_after_s;
  int best_rank = 99;
  auto floor_of = [](double v) { return static_cast<std::int64_t>(std::floor(std::max(0.0, v))); };
  for (const Check& c : claim) {
    int rank = request_rank(c.slot);
    if (rank >= 0 && rank < best_rank) {
      best_rank = rank;
      d.limit_requests = static_cast<std::int64_t>(std::ceil(c.limit));
      d.remaining_requests = floor_of(c.remaining);
      d.reset_requests_s = c.reset_s;
    } else if (c.slot == Slot::kTokens &&
               (!d.remaining_tokens || floor_of(c.remaining) < *d.remaining_tokens)) {
      d.limit_tokens = static_cast<std::int64_t>(c.limit);
      d.remaining_tokens = floor_of(c.remaining);
      d.reset_tokens_s = c.reset_s;
    } else if (c.slot == Slot::kBudget &&
               (!d.remaining_budget || c.remaining / kNanoPerUsd < *d.remaining_budget)) {
      d.limit_budget = c.limit / kNanoPerUsd;
      d.remaining_budget = std::max(0.0, c.remaining) / kNanoPerUsd;
      d.reset_budget_s = c.reset_s;
    }
  }
  if (admission.refusal == Refusal::kUnavailable) {
    d.message = "limits cannot be checked: the shared limit store is unavailable";
  } else if (admission.failed >= 0) {
    const Check& c = claim.checks[admission.failed];
    d.message = refusal_message(c, window_of(c));
    if (kind_of(c.slot) == Kind::kBucket && d.limit_requests && request_rank(c.slot) != best_rank) {
      // Report the refusing bucket's figures, not the per-minute one's.
      d.limit_requests = static_cast<std::int64_t>(std::ceil(c.limit));
      d.remaining_requests = floor_of(c.remaining);
      d.reset_requests_s = c.reset_s;
    }
  }
  return d;
}

Limiter::Limiter(LimiterOptions options) : options_(std::move(options)) {}
Limiter::~Limiter() = default;

void Limiter::remember_spent(std::vector<SpentWindow> spent) {
  std::lock_guard lock(spent_mu_);
  spent_ = std::move(spent);
}

std::vector<SpentWindow> Limiter::take_spent() {
  std::lock_guard lock(spent_mu_);
  return std::exchange(spent_, {});
}

void Limiter::report_shared(bool up, std::string_view why) {
  int before = up ? gates_down_.fetch_sub(1) : gates_down_.fetch_add(1);
  bool changed = up ? before == 1 : before == 0;
  if (!changed) return;
  if (up) {
    std::cerr << "llm-proxy: shared limits: Redis is back; limits are shared again" << std::endl;
  } else {
    std::cerr << "llm-proxy: shared limits: Redis unavailable (" << why << "); "
              << (options_.redis_fail_open ? "enforcing limits per instance until it is back"
                                           : "refusing requests that need a limit check")
              << std::endl;
  }
}

void Limiter::prepare(Claim& claim, const Assignment* assignment, const VirtualKey* key,
                      const ProviderModel* model, std::string_view body, bool embeddings) const {
  bool key_limited = key && (key->limits.token_limit || key->limits.budget);
  if (!key_limited && (!assignment || assignment->limits == Limits{})) {
    claim = Claim{};
    return;
  }
  std::int64_t reserve = options_.default_completion_reserve;
  if (assignment && assignment->limits.reserve_tokens) reserve = *assignment->limits.reserve_tokens;
  ClaimInput in;
  in.assignment = assignment;
  in.key = key_limited ? key : nullptr;
  in.model = model;
  in.now = now_ms();
  // The estimate is only worth its scan when a window counts tokens or dollars.
  bool needs_estimate = key_limited;
  if (assignment) {
    needs_estimate |=
        assignment->limits.token_limit.has_value() || assignment->limits.budget.has_value();
  }
  if (needs_estimate) in.estimate = estimate_request(body, reserve, embeddings);
  build_claim(in, claim);
}

Gate::Gate(Limiter& limiter, boost::asio::io_context& ioc) : limiter_(limiter) {
  if (limiter.uses_redis()) shared_ = std::make_unique<SharedLedger>(limiter, ioc);
}

Gate::~Gate() = default;

void Gate::close() {
  if (shared_) shared_->close();
}

boost::asio::awaitable<Admission> Gate::admit(Claim& claim) {
  if (shared_) {
    std::optional<Admission> answer = co_await shared_->admit(claim);
    if (answer) co_return *answer;
    if (!limiter_.options().redis_fail_open) {
      Admission refused;
      refused.refusal = Refusal::kUnavailable;
      co_return refused;
    }
  }
  co_return limiter_.local().admit(claim, now_ms());
}

void Gate::settle(Claim& claim, const Actual& actual) {
  if (!claim.admitted) return;
  claim.admitted = false;
  if (claim.shared) {
    shared_->settle(claim, actual);
  } else {
    limiter_.local().settle(claim, actual);
  }
}

}  // namespace llmproxy::limits
